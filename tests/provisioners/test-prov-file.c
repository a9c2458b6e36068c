/* The file step's run half against a fake guest: what reaches the guest,
 * quoted, and how its failures are reported. */
#include "tests/provisioners/helpers.h"

/* Inline content: the parent folder, the file, then owner and mode in one
 * script, every value quoted and after "--". */
static void test_content(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: file\n"
                 "    destination: /etc/motd.d/banner\n"
                 "    content: \"hello\\n\"\n"
                 "    mode: \"0600\"\n"
                 "    owner: www-data:adm\n");
  assert_int_equal(run_step(fx, 0), 0);
  assert_int_equal(fake_guest_call_count(fx->fake), 3);
  expect_call(fx, 0, "mkdir_p", "/etc/motd.d");
  const struct fake_call *w = expect_call(fx, 1, "write", "/etc/motd.d/banner");
  assert_int_equal(w->arg_len, 6);
  assert_string_equal(w->arg, "hello\n");
  const struct fake_call *s = expect_call(fx, 2, "script", NULL);
  assert_string_equal(s->arg, "set -e\n"
                              "chown -- 'www-data:adm' '/etc/motd.d/banner'\n"
                              "chmod 0600 -- '/etc/motd.d/banner'\n");
  assert_null(s->env[0]);
}

/* A destination made to break out of its quotes stays one word. */
static void test_hostile_destination(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: file\n"
                 "    destination: \"/srv/a'; rm -rf / #\"\n"
                 "    content: x\n");
  assert_int_equal(run_step(fx, 0), 0);
  /* The parent is up to the value's last '/', taken literally. */
  expect_call(fx, 0, "mkdir_p", "/srv/a'; rm -rf ");
  expect_call(fx, 1, "write", "/srv/a'; rm -rf / #");
  assert_string_equal(script_text(fx, 0),
                      "set -e\n"
                      "chown -- 'root:root' '/srv/a'\\''; rm -rf / #'\n"
                      "chmod 0644 -- '/srv/a'\\''; rm -rf / #'\n");
}

/* A file of the root folder: the parent is "/", not "". */
static void test_parent_is_root(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: file\n"
                 "    destination: /motd\n"
                 "    content: x\n");
  assert_int_equal(run_step(fx, 0), 0);
  expect_call(fx, 0, "mkdir_p", "/");
  expect_call(fx, 1, "write", "/motd");
}

/* A host file is uploaded as it is, with the default mode 0644. */
static void test_source_file(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: file\n"
                 "    source: scripts/setup.sh\n"
                 "    destination: /usr/local/bin/setup\n"
                 "    owner: \"0:0\"\n");
  assert_int_equal(run_step(fx, 0), 0);
  assert_int_equal(fake_guest_call_count(fx->fake), 3);
  expect_call(fx, 0, "mkdir_p", "/usr/local/bin");
  const struct fake_call *u = expect_call(fx, 1, "upload",
                                          "/usr/local/bin/setup");
  assert_string_equal(u->arg, DATA_DIR "/scripts/setup.sh");
  assert_string_equal(fake_guest_file(fx->fake, "/usr/local/bin/setup", NULL),
                      "#!/bin/sh\necho setup\n");
  assert_string_equal(script_text(fx, 0),
                      "set -e\n"
                      "chown -- '0:0' '/usr/local/bin/setup'\n"
                      "chmod 0644 -- '/usr/local/bin/setup'\n");
}

/* A folder is staged, merged into destination, owned recursively, and
 * keeps its files' modes when the step gives none. */
static void test_source_folder(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: file\n"
                 "    source: files/site\n"
                 "    destination: /var/www/html\n"
                 "    owner: www-data\n");
  assert_int_equal(run_step(fx, 0), 0);
  assert_int_equal(fake_guest_call_count(fx->fake), 4);
  expect_call(fx, 0, "mkdir_p", "/var/www");
  expect_call(fx, 1, "mkdir_p", "/tmp/.vab-file");
  const struct fake_call *c = expect_call(fx, 2, "copy_in", "/tmp/.vab-file");
  assert_string_equal(c->arg, DATA_DIR "/files/site");
  assert_string_equal(script_text(fx, 0),
                      "set -e\n"
                      "mkdir -p -- '/var/www/html'\n"
                      "cp -a -- /tmp/.vab-file/'site'/. '/var/www/html'\n"
                      "rm -rf /tmp/.vab-file\n"
                      "chown -R -- 'www-data' '/var/www/html'\n");
}

/* With a mode, a folder's files get it too. */
static void test_source_folder_mode(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: file\n"
                 "    source: files/site\n"
                 "    destination: /srv/site\n"
                 "    mode: \"0750\"\n");
  assert_int_equal(run_step(fx, 0), 0);
  assert_contains(script_text(fx, 0), "\nchmod 0750 -- '/srv/site'\n");
}

/* A failed upload is the step's error, at its destination; nothing more
 * happens in the guest. */
static void test_upload_fails(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: file\n"
                 "    source: scripts/setup.sh\n"
                 "    destination: /usr/local/bin/setup\n");
  fake_guest_fail(fx->fake, "upload");
  assert_int_equal(run_step(fx, 0), -1);
  expect_run_error(fx, VAB_E_PROVISION, 7, 18,
                   "file: cannot write '/usr/local/bin/setup' in the guest",
                   NULL);
  assert_int_equal(fake_guest_count(fx->fake, "script"), 0);
}

/* chown failing in the guest (an owner the guest does not have): an
 * error at the step with the script's last lines. */
static void test_script_fails(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: file\n"
                 "    destination: /etc/motd\n"
                 "    content: x\n"
                 "    owner: nginx\n");
  fake_guest_script_result(fx->fake, 0, 1, "chown: invalid user: 'nginx'");
  assert_int_equal(run_step(fx, 0), -1);
  expect_run_error(fx, VAB_E_PROVISION, 5, 5,
                   "file failed in the guest (exit status 1)",
                   "its last output lines:\nchown: invalid user: 'nginx'");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    FIXTURE_TEST(test_content),        FIXTURE_TEST(test_hostile_destination),
    FIXTURE_TEST(test_parent_is_root), FIXTURE_TEST(test_source_file),
    FIXTURE_TEST(test_source_folder),  FIXTURE_TEST(test_source_folder_mode),
    FIXTURE_TEST(test_upload_fails),   FIXTURE_TEST(test_script_fails),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
