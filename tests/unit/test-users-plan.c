/* provisioners/users: what the users step does with a name the guest
 * already has, for every name Debian's base-passwd reserves, and the
 * account command it runs for it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/buf.h"
#include "provisioners/users.h"

/* A fresh Debian guest: base-passwd's group.master and passwd.master
 * (group and user names with their ids), as a bootstrap installs them. */
static const char debian_group[] =
    "root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nadm:x:4:\ntty:x:5:\n"
    "disk:x:6:\nlp:x:7:\nmail:x:8:\nnews:x:9:\nuucp:x:10:\nman:x:12:\n"
    "proxy:x:13:\nkmem:x:15:\ndialout:x:20:\nfax:x:21:\nvoice:x:22:\n"
    "cdrom:x:24:\nfloppy:x:25:\ntape:x:26:\nsudo:x:27:\naudio:x:29:\n"
    "dip:x:30:\nwww-data:x:33:\nbackup:x:34:\noperator:x:37:\nlist:x:38:\n"
    "irc:x:39:\nsrc:x:40:\nshadow:x:42:\nutmp:x:43:\nvideo:x:44:\n"
    "sasl:x:45:\nplugdev:x:46:\nstaff:x:50:\ngames:x:60:\nusers:x:100:\n"
    "nogroup:x:65534:\n";
static const char debian_passwd[] =
    "root:x:0:0:root:/root:/bin/bash\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "bin:x:2:2:bin:/bin:/usr/sbin/nologin\n"
    "sys:x:3:3:sys:/dev:/usr/sbin/nologin\n"
    "sync:x:4:65534:sync:/bin:/bin/sync\n"
    "games:x:5:60:games:/usr/games:/usr/sbin/nologin\n"
    "man:x:6:12:man:/var/cache/man:/usr/sbin/nologin\n"
    "lp:x:7:7:lp:/var/spool/lpd:/usr/sbin/nologin\n"
    "mail:x:8:8:mail:/var/mail:/usr/sbin/nologin\n"
    "news:x:9:9:news:/var/spool/news:/usr/sbin/nologin\n"
    "uucp:x:10:10:uucp:/var/spool/uucp:/usr/sbin/nologin\n"
    "proxy:x:13:13:proxy:/bin:/usr/sbin/nologin\n"
    "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
    "backup:x:34:34:backup:/var/backups:/usr/sbin/nologin\n"
    "list:x:38:38:Mailing List Manager:/var/list:/usr/sbin/nologin\n"
    "irc:x:39:39:ircd:/run/ircd:/usr/sbin/nologin\n"
    "_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    "admin:x:1000:1000::/home/admin:/bin/bash\n";

/* The groups base-passwd reserves with no user of that name. */
static const char *const group_only[] = {
  "adm", "tty", "disk", "kmem", "dialout", "fax", "voice", "cdrom",
  "floppy", "tape", "sudo", "audio", "dip", "operator", "src", "shadow",
  "utmp", "video", "sasl", "plugdev", "staff", "users", "nogroup", NULL,
};
/* Its users (all system accounts) but root. */
static const char *const system_users[] = {
  "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news",
  "uucp", "proxy", "www-data", "backup", "list", "irc", "_apt", "nobody",
  NULL,
};

static char *command_for(const char *name, bool has_uid, uint32_t uid) {
  struct users_plan plan;
  char why[256] = "";
  if (users_plan_for(name, has_uid, uid, debian_passwd, debian_group, &plan,
                     why, sizeof why) < 0) {
    fprintf(stderr, "%s: %s\n", name, why);
    fail();
  }
  struct buf b = BUF_INIT;
  assert_int_equal(users_account_command(&b, &plan, has_uid, uid), 0);
  char *text = strdup(b.data != NULL ? b.data : "");
  buf_release(&b);
  return text;
}

static void test_reserved_group_names(void **state) {
  (void)state;
  for (size_t i = 0; group_only[i] != NULL; i++) {
    struct users_plan plan;
    char why[256] = "";
    assert_int_equal(users_plan_for(group_only[i], false, 0, debian_passwd,
                                    debian_group, &plan, why, sizeof why),
                     0);
    /* Never -U (fails: the group exists) and never -g NAME (would join a
     * privileged group such as disk, shadow or sudo). */
    assert_int_equal(plan.action, USERS_CREATE_IN_USERS);
    char *cmd = command_for(group_only[i], false, 0);
    assert_string_equal(cmd, "useradd -m -N -g users -s \"$user_shell\" -- "
                             "\"$name\"\n");
    free(cmd);
  }
  char *cmd = command_for("operator", true, 1500);
  assert_string_equal(cmd, "useradd -m -N -g users -u 1500 -s \"$user_shell\" "
                           "-- \"$name\"\n");
  free(cmd);
}

static void test_system_accounts_refused(void **state) {
  (void)state;
  for (size_t i = 0; system_users[i] != NULL; i++) {
    struct users_plan plan;
    char why[256] = "";
    assert_int_equal(users_plan_for(system_users[i], false, 0, debian_passwd,
                                    debian_group, &plan, why, sizeof why),
                     -1);
    assert_non_null(strstr(why, "is a system account of the guest"));
  }
  char why[256] = "";
  struct users_plan plan;
  assert_int_equal(users_plan_for("www-data", false, 0, debian_passwd,
                                  debian_group, &plan, why, sizeof why), -1);
  assert_string_equal(why, "'www-data' is a system account of the guest (uid "
                           "33); a users step does not take it over");
}

static void test_new_root_and_regular(void **state) {
  (void)state;
  char *cmd = command_for("deploy", false, 0);
  assert_string_equal(cmd, "useradd -m -U -s \"$user_shell\" -- \"$name\"\n");
  free(cmd);
  cmd = command_for("root", false, 0);
  assert_string_equal(cmd, "");
  free(cmd);
  /* A regular account from an image source is updated in place. */
  cmd = command_for("admin", true, 1000);
  assert_string_equal(cmd, "usermod -s \"$user_shell\" -- \"$name\"\n");
  free(cmd);
  /* A name that is a prefix of an entry is not that entry. */
  cmd = command_for("ww", false, 0);
  assert_string_equal(cmd, "useradd -m -U -s \"$user_shell\" -- \"$name\"\n");
  free(cmd);
}

static void test_conflicts(void **state) {
  (void)state;
  struct users_plan plan;
  char why[256] = "";
  assert_int_equal(users_plan_for("admin", true, 1001, debian_passwd,
                                  debian_group, &plan, why, sizeof why), -1);
  assert_string_equal(why, "user 'admin' exists in the guest with uid 1000, "
                           "not 1001");
  assert_int_equal(users_plan_for("deploy", true, 33, debian_passwd,
                                  debian_group, &plan, why, sizeof why), -1);
  assert_string_equal(why, "uid 33 of 'deploy' already belongs to 'www-data' "
                           "in the guest");
  /* A same-named group and no "users" to fall back on. */
  assert_int_equal(users_plan_for("staff", false, 0, "", "staff:x:50:\n",
                                  &plan, why, sizeof why), -1);
  assert_string_equal(why, "the guest has a group 'staff' but no group "
                           "'users' to put user 'staff' in instead");
  /* No files at all (an odd image): a plain create. */
  assert_int_equal(users_plan_for("deploy", false, 0, NULL, NULL, &plan, why,
                                  sizeof why), 0);
  assert_int_equal(plan.action, USERS_CREATE);
}

/* The installed base-passwd, when there is one: every group in its
 * group.master that is not also a user in its passwd.master is created
 * in "users". */
static char *slurp(const char *path) {
  FILE *f = fopen(path, "re");
  if (f == NULL)
    return NULL;
  static char text[2][16384];
  static int which;
  char *out = text[which++ % 2];
  size_t n = fread(out, 1, sizeof text[0] - 1, f);
  out[n] = '\0';
  fclose(f);
  return out;
}

static void test_installed_base_passwd(void **state) {
  (void)state;
  char *group = slurp("/usr/share/base-passwd/group.master");
  char *passwd = slurp("/usr/share/base-passwd/passwd.master");
  if (group == NULL || passwd == NULL)
    skip();
  size_t created = 0, refused = 0;
  for (char *line = group; *line != '\0';) {
    char *end = strchr(line, '\n');
    char *colon = strchr(line, ':');
    if (colon == NULL || (end != NULL && colon > end))
      break;
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)(colon - line), line);
    struct users_plan plan;
    char why[256] = "";
    int r = users_plan_for(name, false, 0, passwd, group, &plan, why,
                           sizeof why);
    char key[80];
    snprintf(key, sizeof key, "\n%s:", name);
    bool is_user = strncmp(passwd, key + 1, strlen(key + 1)) == 0 ||
                   strstr(passwd, key) != NULL;
    if (strcmp(name, "root") == 0) {
      assert_int_equal(plan.action, USERS_ROOT);
    } else if (is_user) {
      assert_int_equal(r, -1);
      refused++;
    } else {
      assert_int_equal(r, 0);
      assert_int_equal(plan.action, USERS_CREATE_IN_USERS);
      created++;
    }
    if (end == NULL)
      break;
    line = end + 1;
  }
  assert_true(created >= 20);
  assert_true(refused >= 10);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_reserved_group_names),
    cmocka_unit_test(test_system_accounts_refused),
    cmocka_unit_test(test_new_root_and_regular),
    cmocka_unit_test(test_conflicts),
    cmocka_unit_test(test_installed_base_passwd),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
