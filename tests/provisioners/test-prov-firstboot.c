/* The firstboot step's run half against a fake guest: numbered scripts in
 * template order, the runner, the unit, and its enabling. */
#include "tests/provisioners/helpers.h"

#define DIR "/var/lib/vab/firstboot"
#define RUNNER "/usr/local/sbin/vab-firstboot"
#define UNIT "/etc/systemd/system/vab-firstboot.service"

static void test_inline(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: firstboot\n"
                 "    inline: [ssh-keygen -A, \"echo 'done'\"]\n");
  assert_int_equal(run_step(fx, 0), 0);
  assert_int_equal(fake_guest_call_count(fx->fake), 9);
  expect_call(fx, 0, "mkdir_p", DIR);
  expect_call(fx, 1, "exists", DIR "/001");
  const struct fake_call *w = expect_call(fx, 2, "write", DIR "/001");
  assert_string_equal(w->arg, "#!/bin/sh\nset -e\nssh-keygen -A\necho 'done'\n");
  assert_int_equal(expect_call(fx, 3, "chmod", DIR "/001")->mode, 0755);
  expect_call(fx, 4, "mkdir_p", "/usr/local/sbin");
  w = expect_call(fx, 5, "write", RUNNER);
  assert_contains(w->arg, "for script in " DIR "/*; do\n");
  assert_contains(w->arg, "rmdir " DIR "\n");
  assert_int_equal(expect_call(fx, 6, "chmod", RUNNER)->mode, 0755);
  w = expect_call(fx, 7, "write", UNIT);
  assert_contains(w->arg, "ConditionPathIsDirectory=" DIR "\n");
  assert_contains(w->arg, "ExecStart=" RUNNER "\n");
  assert_contains(w->arg, "WantedBy=multi-user.target\n");
  const struct fake_call *s = expect_call(fx, 8, "script", NULL);
  assert_string_equal(s->arg, "systemctl enable vab-firstboot.service\n");
}

/* Two steps: the second script gets the next number, after any that the
 * guest already has. */
static void test_numbering(void **state) {
  struct fixture *fx = *state;
  fake_guest_add_file(fx->fake, DIR "/001", "#!/bin/sh\n");
  load_steps(fx, "  - type: firstboot\n"
                 "    inline: [echo two]\n"
                 "  - type: firstboot\n"
                 "    script: scripts/setup.sh\n");
  assert_int_equal(run_step(fx, 0), 0);
  assert_int_equal(run_step(fx, 1), 0);
  assert_string_equal(fake_guest_file(fx->fake, DIR "/002", NULL),
                      "#!/bin/sh\nset -e\necho two\n");
  const struct fake_call *u = fake_guest_find(fx->fake, "upload", 0);
  assert_non_null(u);
  assert_string_equal(u->path, DIR "/003");
  assert_string_equal(u->arg, DATA_DIR "/scripts/setup.sh");
  assert_string_equal(fake_guest_file(fx->fake, DIR "/003", NULL),
                      "#!/bin/sh\necho setup\n");
  assert_int_equal(fake_guest_find(fx->fake, "chmod", 2)->mode, 0755);
  assert_string_equal(fake_guest_find(fx->fake, "chmod", 2)->path,
                      DIR "/003");
}

/* systemctl enable failing: the step's error with its output. */
static void test_enable_fails(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: firstboot\n"
                 "    inline: [uptime]\n");
  fake_guest_script_result(fx->fake, 0, 1, "systemctl: command not found");
  assert_int_equal(run_step(fx, 0), -1);
  expect_run_error(fx, VAB_E_PROVISION, 5, 5,
                   "firstboot: systemctl enable failed in the guest (exit "
                   "status 1)",
                   "its last output lines:\nsystemctl: command not found");
}

/* A failed write stops the step before anything is enabled. */
static void test_write_fails(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: firstboot\n"
                 "    inline: [uptime]\n");
  fake_guest_fail(fx->fake, "write");
  assert_int_equal(run_step(fx, 0), -1);
  assert_int_equal(vab_last_error(fx->ctx)->code, VAB_E_GUEST);
  assert_int_equal(fake_guest_count(fx->fake, "script"), 0);
  assert_int_equal(fake_guest_count(fx->fake, "write"), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    FIXTURE_TEST(test_inline),
    FIXTURE_TEST(test_numbering),
    FIXTURE_TEST(test_enable_fails),
    FIXTURE_TEST(test_write_fails),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
