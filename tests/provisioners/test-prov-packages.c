/* The packages step's run half against a fake guest: one apt-get script,
 * names quoted after "--", and apt's failure at the step. */
#include "tests/provisioners/helpers.h"

#define DPKG_OPTS                                                     \
  "-y -q -o Dpkg::Options::=--force-confdef "                         \
  "-o Dpkg::Options::=--force-confold"

static void test_install_and_remove(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: packages\n"
                 "    install: [nginx, \"libstdc++6:amd64=12.2.0-14\"]\n"
                 "    remove: [nano]\n");
  assert_int_equal(run_step(fx, 0), 0);
  assert_int_equal(fake_guest_call_count(fx->fake), 1);
  const struct fake_call *s = expect_call(fx, 0, "script", NULL);
  assert_string_equal(s->arg,
                      "set -e\n"
                      "apt-get update -q\n"
                      "apt-get install " DPKG_OPTS
                      " -- 'nginx' 'libstdc++6:amd64=12.2.0-14'\n"
                      "apt-get remove --purge " DPKG_OPTS " -- 'nano'\n"
                      "apt-get autoremove --purge -y -q\n"
                      "apt-get clean\n");
  /* apt-get never asks: the session's environment sees to that, the step
   * adds nothing. */
  assert_null(s->env[0]);
}

/* Installing only: no remove and no autoremove. */
static void test_install_only(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: packages\n"
                 "    install: curl\n");
  assert_int_equal(run_step(fx, 0), 0);
  assert_string_equal(script_text(fx, 0),
                      "set -e\n"
                      "apt-get update -q\n"
                      "apt-get install " DPKG_OPTS " -- 'curl'\n"
                      "apt-get clean\n");
}

/* Removing only: no update, since nothing is downloaded. */
static void test_remove_only(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: packages\n"
                 "    remove: [nano, vim-tiny]\n");
  assert_int_equal(run_step(fx, 0), 0);
  const char *script = script_text(fx, 0);
  assert_lacks(script, "apt-get update");
  assert_contains(script, "apt-get remove --purge " DPKG_OPTS
                          " -- 'nano' 'vim-tiny'\n");
}

/* apt-get failing: the step's error, with apt's last lines. */
static void test_apt_fails(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: packages\n"
                 "    install: [nginx-ful]\n");
  fake_guest_script_result(fx->fake, 0, 100,
                           "E: Unable to locate package nginx-ful");
  assert_int_equal(run_step(fx, 0), -1);
  expect_run_error(fx, VAB_E_PROVISION, 5, 5,
                   "packages: apt-get failed in the guest (exit status 100)",
                   "its last output lines:\n"
                   "E: Unable to locate package nginx-ful");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    FIXTURE_TEST(test_install_and_remove), FIXTURE_TEST(test_install_only),
    FIXTURE_TEST(test_remove_only),        FIXTURE_TEST(test_apt_fails),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
