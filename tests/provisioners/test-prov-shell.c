/* The shell step's run half against a fake guest: the script it runs, the
 * environment it passes, and which command a failure points at. */
#include "tests/provisioners/helpers.h"

#define PROLOGUE                                                         \
  "trap 'vab_status=$?; if [ \"$vab_status\" -ne 0 ]; then "            \
  "echo \"vab: inline command $vab_command failed (exit status "        \
  "$vab_status)\" >&2; fi' EXIT\n"                                      \
  "set -e\n"

/* Inline commands run as one script, each numbered; env reaches the
 * guest as NAME=VALUE, in the template's order, values untouched (the
 * guest session quotes them when it stages the environment). */
static void test_inline_env(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: shell\n"
                 "    env:\n"
                 "      GREETING: hello world\n"
                 "      HOSTILE: \"a'; rm -rf / #\"\n"
                 "      EMPTY:\n"
                 "    inline:\n"
                 "      - echo \"$GREETING\"\n"
                 "      - cd /tmp\n");
  assert_int_equal(run_step(fx, 0), 0);
  assert_int_equal(fake_guest_call_count(fx->fake), 1);
  const struct fake_call *s = expect_call(fx, 0, "script", NULL);
  assert_string_equal(s->arg, PROLOGUE "vab_command=1\necho \"$GREETING\"\n"
                                       "vab_command=2\ncd /tmp\n");
  assert_string_equal(s->env[0], "GREETING=hello world");
  assert_string_equal(s->env[1], "HOSTILE=a'; rm -rf / #");
  assert_string_equal(s->env[2], "EMPTY=");
  assert_null(s->env[3]);
}

/* A host script runs as it is, with no prologue and no environment. */
static void test_script_file(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: shell\n"
                 "    script: scripts/setup.sh\n");
  assert_int_equal(run_step(fx, 0), 0);
  const struct fake_call *s = expect_call(fx, 0, "script", NULL);
  assert_string_equal(s->arg, "#!/bin/sh\necho setup\n");
  assert_null(s->env[0]);
}

/* The EXIT trap's marker names the failed command: the error points at
 * its line in the template, with the output as hint. */
static void test_inline_command_fails(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: shell\n"
                 "    inline:\n"
                 "      - 'true'\n"
                 "      - cd /nope\n");
  const char *tail = "sh: 2: cd: can't cd to /nope\n"
                     "vab: inline command 2 failed (exit status 2)";
  fake_guest_script_result(fx->fake, 0, 2, tail);
  assert_int_equal(run_step(fx, 0), -1);
  expect_run_error(fx, VAB_E_PROVISION, 8, 9,
                   "shell: inline command 2 failed in the guest (exit status "
                   "2)",
                   "its last output lines:\nsh: 2: cd: can't cd to /nope\n"
                   "vab: inline command 2 failed (exit status 2)");
}

/* No marker (the shell was killed): the step's own mark, no hint when
 * there was no output. */
static void test_inline_killed(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: shell\n"
                 "    inline: [sleep 1000]\n");
  fake_guest_script_result(fx->fake, 0, 137, "");
  assert_int_equal(run_step(fx, 0), -1);
  expect_run_error(fx, VAB_E_PROVISION, 5, 5,
                   "shell: the script failed in the guest (exit status 137)",
                   "");
}

/* A host script that fails: at its `script:` value, named as written. */
static void test_script_file_fails(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: shell\n"
                 "    script: scripts/setup.sh\n");
  fake_guest_script_result(fx->fake, 0, 1, "setup: no network");
  assert_int_equal(run_step(fx, 0), -1);
  expect_run_error(fx, VAB_E_PROVISION, 6, 13,
                   "shell: scripts/setup.sh failed in the guest (exit status "
                   "1)",
                   "its last output lines:\nsetup: no network");
}

/* The session failing is not the script failing: its error stays. */
static void test_session_fails(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: shell\n"
                 "    inline: [uptime]\n");
  fake_guest_fail(fx->fake, "script");
  assert_int_equal(run_step(fx, 0), -1);
  assert_int_equal(vab_error_count(fx->ctx), 1);
  const struct vab_diag *d = vab_last_error(fx->ctx);
  assert_int_equal(d->code, VAB_E_GUEST);
  assert_string_equal(d->message, "fake guest: script failed");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    FIXTURE_TEST(test_inline_env),         FIXTURE_TEST(test_script_file),
    FIXTURE_TEST(test_inline_command_fails), FIXTURE_TEST(test_inline_killed),
    FIXTURE_TEST(test_script_file_fails),  FIXTURE_TEST(test_session_fails),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
