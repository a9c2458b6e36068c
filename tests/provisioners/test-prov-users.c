/* The users step's run half against a fake guest: what it decides from
 * the guest's /etc/passwd and /etc/group, the script for each user, and
 * root's lock. */
#include "tests/provisioners/helpers.h"

/* Debian's base-passwd, abridged: operator and staff are groups with no
 * user of that name; www-data is a system account. */
#define PASSWD                                                  \
  "root:x:0:0:root:/root:/bin/bash\n"                           \
  "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"      \
  "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
#define GROUP                                                   \
  "root:x:0:\nadm:x:4:\nwww-data:x:33:\noperator:x:37:\n"       \
  "staff:x:50:\nusers:x:100:\n"

#define KEY "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOexampleexampleexample"

static void guest_files(struct fixture *fx, const char *passwd,
                        const char *group) {
  fake_guest_add_file(fx->fake, "/etc/passwd", passwd);
  fake_guest_add_file(fx->fake, "/etc/group", group);
}

/* `operator` is a privileged group of Debian's: the user gets primary
 * group users and joins only the groups the template lists. */
static void test_operator(void **state) {
  struct fixture *fx = *state;
  guest_files(fx, PASSWD, GROUP);
  load_steps(fx, "  - type: users\n"
                 "    users:\n"
                 "      - name: operator\n"
                 "        groups: [adm]\n");
  assert_int_equal(run_step(fx, 0), 0);
  assert_int_equal(fake_guest_call_count(fx->fake), 4);
  expect_call(fx, 0, "read", "/etc/passwd");
  expect_call(fx, 1, "read", "/etc/group");
  const char *script = expect_call(fx, 2, "script", NULL)->arg;
  assert_string_equal(script,
                      "set -e\nname='operator'\nuser_shell='/bin/bash'\n"
                      "useradd -m -N -g users -s \"$user_shell\" -- "
                      "\"$name\"\n"
                      "usermod -a -G 'adm' -- \"$name\"\n");
  assert_lacks(script, "-U");
  assert_lacks(script, "operator'\nuseradd -m -g");
  assert_lacks(script, "-G 'operator");
  /* root is locked by default, in its own script. */
  assert_string_equal(expect_call(fx, 3, "script", NULL)->arg,
                      "set -e\nusermod -L root\n");
}

/* A new name gets a group of its own; uid, sudo, keys and a password
 * that reaches chpasswd only as a SHA-512 hash. */
static void test_new_user(void **state) {
  struct fixture *fx = *state;
  guest_files(fx, PASSWD, GROUP);
  load_steps(fx, "  - type: users\n"
                 "    lock_root: false\n"
                 "    users:\n"
                 "      - name: alice\n"
                 "        uid: 1500\n"
                 "        groups: [adm, staff]\n"
                 "        shell: /bin/zsh\n"
                 "        sudo: true\n"
                 "        password: s3cret-pass\n"
                 "        ssh_authorized_keys: [\"" KEY " alice@laptop\"]\n");
  assert_int_equal(run_step(fx, 0), 0);
  assert_int_equal(fake_guest_count(fx->fake, "script"), 1);
  const char *script = script_text(fx, 0);
  assert_contains(script, "set -e\nname='alice'\nuser_shell='/bin/zsh'\n"
                          "useradd -m -U -u 1500 -s \"$user_shell\" -- "
                          "\"$name\"\n"
                          "usermod -a -G 'adm,staff' -- \"$name\"\n"
                          "chpasswd -e <<'VAB_END'\nalice:$6$");
  assert_lacks(script, "s3cret-pass");
  assert_contains(script, "\"/etc/sudoers.d/vab-$name\"\n");
  assert_contains(script, "cat >> \"$home/.ssh/authorized_keys\" <<'VAB_END'\n"
                          KEY " alice@laptop\nVAB_END\n");
  assert_contains(script, "chmod 0600 -- \"$home/.ssh/authorized_keys\"\n");
}

/* A shell written to break out of its quotes stays one word. */
static void test_hostile_shell(void **state) {
  struct fixture *fx = *state;
  guest_files(fx, PASSWD, GROUP);
  load_steps(fx, "  - type: users\n"
                 "    lock_root: false\n"
                 "    users:\n"
                 "      - name: bob\n"
                 "        shell: \"/bin/sh'; rm -rf / #\"\n");
  assert_int_equal(run_step(fx, 0), 0);
  assert_contains(script_text(fx, 0),
                  "\nuser_shell='/bin/sh'\\''; rm -rf / #'\n");
}

/* A regular account the guest has is updated, not created; every user
 * is planned on the files as they are then. */
static void test_existing_user(void **state) {
  struct fixture *fx = *state;
  guest_files(fx, PASSWD "debian:x:1000:1000::/home/debian:/bin/bash\n",
              GROUP "debian:x:1000:\n");
  load_steps(fx, "  - type: users\n"
                 "    lock_root: false\n"
                 "    users:\n"
                 "      - name: debian\n"
                 "      - name: carol\n");
  assert_int_equal(run_step(fx, 0), 0);
  assert_int_equal(fake_guest_count(fx->fake, "read"), 4);
  assert_contains(script_text(fx, 0),
                  "\nusermod -s \"$user_shell\" -- \"$name\"\n");
  assert_lacks(script_text(fx, 0), "useradd");
  assert_contains(script_text(fx, 1), "\nuseradd -m -U -s \"$user_shell\"");
}

/* A system account is refused at its name, before any script runs. */
static void test_system_account(void **state) {
  struct fixture *fx = *state;
  guest_files(fx, PASSWD, GROUP);
  load_steps(fx, "  - type: users\n"
                 "    users:\n"
                 "      - name: www-data\n");
  assert_int_equal(run_step(fx, 0), -1);
  expect_run_error(fx, VAB_E_PROVISION, 7, 15,
                   "users: 'www-data' is a system account of the guest (uid "
                   "33); a users step does not take it over",
                   "choose another name; docs/template.md (users) says which "
                   "names vab creates, updates or refuses");
  assert_int_equal(fake_guest_count(fx->fake, "script"), 0);
}

/* useradd failing: at the user's mapping, with its output; the next user
 * and root's lock do not happen. */
static void test_useradd_fails(void **state) {
  struct fixture *fx = *state;
  guest_files(fx, PASSWD, GROUP);
  load_steps(fx, "  - type: users\n"
                 "    users:\n"
                 "      - name: alice\n"
                 "      - name: bob\n");
  fake_guest_script_result(fx->fake, 0, 9,
                           "useradd: user 'alice' already exists");
  assert_int_equal(run_step(fx, 0), -1);
  expect_run_error(fx, VAB_E_PROVISION, 7, 9,
                   "users failed in the guest (exit status 9)",
                   "its last output lines:\n"
                   "useradd: user 'alice' already exists");
  assert_int_equal(fake_guest_count(fx->fake, "script"), 1);
}

/* Locking root failing: at lock_root. */
static void test_lock_fails(void **state) {
  struct fixture *fx = *state;
  guest_files(fx, PASSWD, GROUP);
  load_steps(fx, "  - type: users\n"
                 "    lock_root: true\n"
                 "    users:\n"
                 "      - name: alice\n");
  fake_guest_script_result(fx->fake, 1, 1, "usermod: cannot lock /etc/shadow");
  assert_int_equal(run_step(fx, 0), -1);
  expect_run_error(fx, VAB_E_PROVISION, 6, 16,
                   "users: locking root failed in the guest (exit status 1)",
                   "its last output lines:\nusermod: cannot lock /etc/shadow");
}

/* The guest's /etc/group cannot be read: the session's error, no script. */
static void test_unreadable_group(void **state) {
  struct fixture *fx = *state;
  fake_guest_add_file(fx->fake, "/etc/passwd", PASSWD);
  load_steps(fx, "  - type: users\n"
                 "    users:\n"
                 "      - name: alice\n");
  assert_int_equal(run_step(fx, 0), -1);
  assert_int_equal(vab_last_error(fx->ctx)->code, VAB_E_GUEST);
  assert_string_equal(vab_last_error(fx->ctx)->message,
                      "fake guest: read: no /etc/group");
  assert_int_equal(fake_guest_count(fx->fake, "script"), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    FIXTURE_TEST(test_operator),       FIXTURE_TEST(test_new_user),
    FIXTURE_TEST(test_hostile_shell),  FIXTURE_TEST(test_existing_user),
    FIXTURE_TEST(test_system_account), FIXTURE_TEST(test_useradd_fails),
    FIXTURE_TEST(test_lock_fails),     FIXTURE_TEST(test_unreadable_group),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
