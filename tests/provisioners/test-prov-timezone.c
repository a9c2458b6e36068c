/* The timezone step's run half against a fake guest: the zone must exist
 * in the guest; /etc/localtime links to it, /etc/timezone names it. */
#include "tests/provisioners/helpers.h"

static void test_timezone(void **state) {
  struct fixture *fx = *state;
  fake_guest_add_file(fx->fake, "/usr/share/zoneinfo/Europe/Madrid", "TZif");
  fake_guest_add_file(fx->fake, "/etc/localtime", "old");
  load_steps(fx, "  - type: timezone\n"
                 "    timezone: Europe/Madrid\n");
  assert_int_equal(run_step(fx, 0), 0);
  assert_int_equal(fake_guest_call_count(fx->fake), 4);
  expect_call(fx, 0, "exists", "/usr/share/zoneinfo/Europe/Madrid");
  expect_call(fx, 1, "rm_rf", "/etc/localtime");
  const struct fake_call *l = expect_call(fx, 2, "symlink", "/etc/localtime");
  assert_string_equal(l->arg, "/usr/share/zoneinfo/Europe/Madrid");
  const struct fake_call *w = expect_call(fx, 3, "write", "/etc/timezone");
  assert_string_equal(w->arg, "Europe/Madrid\n");
  /* A link now, not the old file. */
  assert_null(fake_guest_file(fx->fake, "/etc/localtime", NULL));
}

/* No such zone in the guest (no tzdata): an error at the value, and the
 * guest is left alone. */
static void test_zone_missing(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: timezone\n"
                 "    timezone: America/Argentina/Buenos_Aires\n");
  assert_int_equal(run_step(fx, 0), -1);
  expect_run_error(fx, VAB_E_PROVISION, 6, 15,
                   "timezone: the guest has no "
                   "/usr/share/zoneinfo/America/Argentina/Buenos_Aires",
                   "install the 'tzdata' package before this step");
  assert_int_equal(fake_guest_call_count(fx->fake), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    FIXTURE_TEST(test_timezone),
    FIXTURE_TEST(test_zone_missing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
