/* The reboot step against a fake guest: one reboot call, nothing else;
 * the builder VM's guest (not booted) refuses it; its schema half always
 * boots, with a 10 minute default timeout, and takes no keys. */
#include "tests/provisioners/helpers.h"

static const struct vab_guest_ssh endpoint = {
  .host = "127.0.0.1", .port = 2222, .user = "root",
  .identity_file = "/run/vab/id", .known_hosts_file = "/run/vab/known_hosts",
};

static void test_reboot(void **state) {
  struct fixture *fx = *state;
  fake_guest_set_booted(fx->fake, &endpoint);
  load_steps(fx, "  - type: reboot\n");
  assert_int_equal(run_step(fx, 0), 0);
  assert_int_equal(fake_guest_call_count(fx->fake), 1);
  expect_call(fx, 0, "reboot", NULL);
  const struct vab_step_type *t = fx->t->steps[0].step_type;
  assert_true(t->flags & VAB_STEP_BOOTED);
  assert_int_equal(t->booted_timeout_ms, 10u * 60 * 1000);
  assert_null(t->keys[0]);
  assert_null(t->inputs);
}

/* The guest's error stands (the builder adds the step's location). */
static void test_not_booted(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: reboot\n");
  assert_int_equal(run_step(fx, 0), -1);
  const struct vab_diag *d = vab_last_error(fx->ctx);
  assert_int_equal(d->code, VAB_E_GUEST);
  assert_string_equal(d->message, "fake guest: not booted");
}

static void test_reboot_fails(void **state) {
  struct fixture *fx = *state;
  fake_guest_set_booted(fx->fake, &endpoint);
  fake_guest_fail(fx->fake, "reboot");
  load_steps(fx, "  - type: reboot\n");
  assert_int_equal(run_step(fx, 0), -1);
  assert_string_equal(vab_last_error(fx->ctx)->message,
                      "fake guest: reboot failed");
  expect_call(fx, 0, "reboot", NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    FIXTURE_TEST(test_reboot),
    FIXTURE_TEST(test_not_booted),
    FIXTURE_TEST(test_reboot_fails),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
