/* The services step's run half against a fake guest: one systemctl line
 * per verb, unit names quoted after "--". */
#include "tests/provisioners/helpers.h"

static void test_verbs(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: services\n"
                 "    enable: [nginx, \"getty@tty2.service\"]\n"
                 "    disable: [apt-daily.timer]\n"
                 "    mask: [\"systemd-networkd-wait-online\"]\n");
  assert_int_equal(run_step(fx, 0), 0);
  assert_int_equal(fake_guest_call_count(fx->fake), 1);
  assert_string_equal(script_text(fx, 0),
                      "set -e\n"
                      "systemctl enable -- 'nginx' 'getty@tty2.service'\n"
                      "systemctl disable -- 'apt-daily.timer'\n"
                      "systemctl mask -- 'systemd-networkd-wait-online'\n");
}

/* A verb with no units has no line. */
static void test_one_verb(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: services\n"
                 "    mask: ssh\n");
  assert_int_equal(run_step(fx, 0), 0);
  assert_string_equal(script_text(fx, 0),
                      "set -e\nsystemctl mask -- 'ssh'\n");
}

/* systemctl failing: the step's error, with its output as hint. */
static void test_systemctl_fails(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: services\n"
                 "    enable: [nginx]\n");
  fake_guest_script_result(fx->fake, 0, 1,
                           "Failed to enable unit: Unit file nginx.service "
                           "does not exist.");
  assert_int_equal(run_step(fx, 0), -1);
  expect_run_error(fx, VAB_E_PROVISION, 5, 5,
                   "services: systemctl failed in the guest (exit status 1)",
                   "its last output lines:\nFailed to enable unit: Unit file "
                   "nginx.service does not exist.");
}

/* A failure with no output: no hint. */
static void test_silent_failure(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: services\n"
                 "    disable: [cron]\n");
  fake_guest_script_result(fx->fake, 0, 5, "");
  assert_int_equal(run_step(fx, 0), -1);
  expect_run_error(fx, VAB_E_PROVISION, 5, 5,
                   "services: systemctl failed in the guest (exit status 5)",
                   "");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    FIXTURE_TEST(test_verbs),
    FIXTURE_TEST(test_one_verb),
    FIXTURE_TEST(test_systemctl_fails),
    FIXTURE_TEST(test_silent_failure),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
