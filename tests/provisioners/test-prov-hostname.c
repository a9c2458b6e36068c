/* The hostname step's run half against a fake guest: /etc/hostname, and
 * the /etc/hosts line through a quoted printf argument. */
#include "tests/provisioners/helpers.h"

static void test_hostname(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: hostname\n"
                 "    hostname: web-01.example.org\n");
  assert_int_equal(run_step(fx, 0), 0);
  assert_int_equal(fake_guest_call_count(fx->fake), 2);
  const struct fake_call *w = expect_call(fx, 0, "write", "/etc/hostname");
  assert_string_equal(w->arg, "web-01.example.org\n");
  assert_string_equal(fake_guest_file(fx->fake, "/etc/hostname", NULL),
                      "web-01.example.org\n");
  /* The name is printf's argument, never its format. */
  assert_string_equal(script_text(fx, 0),
                      "set -e\ntouch /etc/hosts\n"
                      "sed -i '/^127\\.0\\.1\\.1[[:space:]]/d' /etc/hosts\n"
                      "printf '127.0.1.1\\t%s\\n' 'web-01.example.org' >> "
                      "/etc/hosts\n");
}

/* The hosts edit failing: at the hostname value. */
static void test_hosts_fails(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: hostname\n"
                 "    hostname: web\n");
  fake_guest_script_result(fx->fake, 0, 4,
                           "sed: couldn't open temporary file");
  assert_int_equal(run_step(fx, 0), -1);
  expect_run_error(fx, VAB_E_PROVISION, 6, 15,
                   "hostname failed in the guest (exit status 4)",
                   "its last output lines:\nsed: couldn't open temporary file");
}

/* /etc/hostname cannot be written: no script runs. */
static void test_write_fails(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: hostname\n"
                 "    hostname: web\n");
  fake_guest_fail(fx->fake, "write");
  assert_int_equal(run_step(fx, 0), -1);
  assert_int_equal(vab_last_error(fx->ctx)->code, VAB_E_GUEST);
  assert_int_equal(fake_guest_count(fx->fake, "script"), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    FIXTURE_TEST(test_hostname),
    FIXTURE_TEST(test_hosts_fails),
    FIXTURE_TEST(test_write_fails),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
