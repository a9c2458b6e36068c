/* builder/ssh and the booted guest's SSH operations (builder/booted.c).
 *
 * The pure parts: ssh's argv (every option the communicator relies on),
 * the known_hosts line, the environment's quoting.  The guest operations
 * run against tests/builder/fake-ssh.sh first on PATH, which executes the
 * remote command on this host: what each op sends must do what it says,
 * and the step's timeout must stop a call that runs too long. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "builder/booted.h"
#include "builder/ssh.h"
#include "common/buf.h"
#include "common/clock.h"
#include "vab/vab.h"

/* ssh-keygen -t ed25519 of a throwaway key. */
#define ED25519_KEY                                                       \
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG/o3NaC9vVPhtj2vA0I8UKVKiPUvJgJ17rE7" \
  "zkWhZHl"

static char tmp[256];

static int setup(void **state) {
  (void)state;
  snprintf(tmp, sizeof tmp, "/tmp/vab-test-ssh-XXXXXX");
  assert_non_null(mkdtemp(tmp));
  char path[1024];
  snprintf(path, sizeof path, "%s/bin", tmp);
  assert_int_equal(mkdir(path, 0755), 0);
  snprintf(path, sizeof path, "%s/bin/ssh", tmp);
  assert_int_equal(symlink(FAKE_SSH, path), 0);
  snprintf(path, sizeof path, "%s/root", tmp);
  assert_int_equal(mkdir(path, 0755), 0);
  setenv("FAKE_ROOT", path, 1);
  snprintf(path, sizeof path, "%s/ssh.log", tmp);
  setenv("FAKE_SSH_LOG", path, 1);
  char *old = getenv("PATH");
  snprintf(path, sizeof path, "%s/bin:%s", tmp, old ? old : "/usr/bin:/bin");
  setenv("PATH", path, 1);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
  assert_int_equal(system(cmd), 0);
  return 0;
}

static bool has_pair(char **argv, const char *opt, const char *value) {
  for (size_t i = 0; argv[i] != NULL && argv[i + 1] != NULL; i++)
    if (strcmp(argv[i], opt) == 0 && strcmp(argv[i + 1], value) == 0)
      return true;
  return false;
}

static void test_argv(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_ssh s;
  memset(&s, 0, sizeof s);
  s.ctx = ctx;
  snprintf(s.dir, sizeof s.dir, "/var/tmp/vab-ssh-abc");
  snprintf(s.identity, sizeof s.identity, "/var/tmp/vab-ssh-abc/id_ed25519");
  snprintf(s.known_hosts, sizeof s.known_hosts,
           "/var/tmp/vab-ssh-abc/known_hosts");
  s.port = 40222;
  char **argv = NULL;
  assert_int_equal(vab_ssh_argv(ctx, &s, "echo 'a b'", &argv), 0);
  size_t n = 0;
  while (argv[n] != NULL)
    n++;
  assert_string_equal(argv[0], "ssh");
  /* No user or system configuration, no agent, no ~/.ssh. */
  assert_true(has_pair(argv, "-F", "none"));
  assert_true(has_pair(argv, "-o", "BatchMode=yes"));
  assert_true(has_pair(argv, "-o", "StrictHostKeyChecking=yes"));
  assert_true(has_pair(argv, "-o",
                       "UserKnownHostsFile=/var/tmp/vab-ssh-abc/known_hosts"));
  assert_true(has_pair(argv, "-o", "GlobalKnownHostsFile=/dev/null"));
  assert_true(has_pair(argv, "-o", "IdentitiesOnly=yes"));
  assert_true(has_pair(argv, "-o", "IdentityAgent=none"));
  assert_true(has_pair(argv, "-o",
                       "IdentityFile=/var/tmp/vab-ssh-abc/id_ed25519"));
  assert_true(has_pair(argv, "-o", "ConnectTimeout=10"));
  assert_true(has_pair(argv, "-o", "ServerAliveInterval=5"));
  assert_true(has_pair(argv, "-p", "40222"));
  assert_true(has_pair(argv, "-l", "root"));
  /* The host, then "--", then the command as one word. */
  assert_true(n >= 3);
  assert_string_equal(argv[n - 3], "127.0.0.1");
  assert_string_equal(argv[n - 2], "--");
  assert_string_equal(argv[n - 1], "echo 'a b'");
  vab_ssh_argv_free(argv);
  /* A folder ssh would split or expand is refused. */
  snprintf(s.identity, sizeof s.identity, "/var/tmp/a b/id_ed25519");
  assert_int_equal(vab_ssh_argv(ctx, &s, "true", &argv), -1);
  snprintf(s.identity, sizeof s.identity, "/var/tmp/a%%d/id_ed25519");
  assert_int_equal(vab_ssh_argv(ctx, &s, "true", &argv), -1);
  vab_ctx_free(ctx);
}

static void test_known_hosts_line(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct buf b = BUF_INIT;
  assert_int_equal(vab_ssh_known_hosts_line(ctx, &b, "127.0.0.1", 40222,
                                            ED25519_KEY " root@web\n"), 0);
  assert_string_equal(b.data, "[127.0.0.1]:40222 " ED25519_KEY "\n");
  buf_release(&b);
  static const char *const bad[] = {
    "", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", ED25519_KEY "AAAA",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDv2IhMH2vFeFTUTvSQQxPXmWELbDrlEg"
    "EmwH+R4ivz\n7", ED25519_KEY "\n[evil]:22 ssh-ed25519",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct buf o = BUF_INIT;
    int r = vab_ssh_known_hosts_line(ctx, &o, "127.0.0.1", 22, bad[i]);
    /* The last one: only the first line is the key, and it is valid, but
     * nothing after it reaches the file. */
    if (i == 5) {
      assert_int_equal(r, 0);
      assert_null(strstr(o.data, "evil"));
    } else {
      assert_int_equal(r, -1);
      assert_int_equal(vab_last_error(ctx)->code, VAB_E_GUEST);
    }
    buf_release(&o);
  }
  vab_ctx_free(ctx);
}

static void test_export_env(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct buf b = BUF_INIT;
  const char *const env[] = {"A=it's", "B=$(rm -rf /)", "C=", "D=x=y\nz",
                             NULL};
  assert_int_equal(vab_ssh_export_env(ctx, &b, env), 0);
  assert_string_equal(b.data, "export A='it'\\''s'\n"
                              "export B='$(rm -rf /)'\n"
                              "export C=''\n"
                              "export D='x=y\nz'\n");
  /* And sh reads back the same values. */
  struct buf sh = BUF_INIT;
  assert_int_equal(buf_puts(&sh, b.data), 0);
  assert_int_equal(buf_puts(&sh, "[ \"$A\" = \"it's\" ] && "
                                 "[ \"$B\" = '$(rm -rf /)' ] && "
                                 "[ \"$D\" = 'x=y\nz' ]"), 0);
  char *argv[] = {"sh", "-c", sh.data, NULL};
  (void)argv;
  FILE *p = popen("sh", "w");
  assert_non_null(p);
  fputs(sh.data, p);
  assert_int_equal(pclose(p), 0);
  buf_release(&sh);
  buf_release(&b);
  const char *const bad[] = {"1A=x", NULL};
  struct buf o = BUF_INIT;
  assert_int_equal(vab_ssh_export_env(ctx, &o, bad), -1);
  const char *const bad2[] = {"A;B=x", NULL};
  assert_int_equal(vab_ssh_export_env(ctx, &o, bad2), -1);
  buf_release(&o);
  vab_ctx_free(ctx);
}

static struct vab_booted *new_booted(struct vab_ctx *ctx) {
  struct vab_booted_opts o = {.work_dir = tmp, .disk_format = "qcow2"};
  struct vab_booted *b = NULL;
  if (vab_booted_new(ctx, &o, &b) < 0)
    fail_msg("booted: %s", vab_last_error(ctx)->message);
  return b;
}

static void guest_path(char *out, size_t len, const char *name) {
  snprintf(out, len, "%s/root/%s", tmp, name);
}

static char *read_host(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return NULL;
  static char text[4096];
  size_t n = fread(text, 1, sizeof text - 1, f);
  text[n] = '\0';
  fclose(f);
  return text;
}

static void test_ops_over_fake_ssh(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_booted *b = new_booted(ctx);
  struct vab_guest *g = vab_booted_guest(b);
  vab_booted_begin_step(b, "provisioner 1 (shell) at t.yaml:5:5", 60000);
  char dir[512], file[600], link[600];
  guest_path(dir, sizeof dir, "etc/it's here");
  assert_int_equal(vab_guest_mkdir_p(g, dir), 0);
  snprintf(file, sizeof file, "%s/a file", dir);
  assert_int_equal(vab_guest_write(g, file, "x\0y", 3), 0);
  struct stat st;
  assert_int_equal(stat(file, &st), 0);
  assert_int_equal(st.st_size, 3);
  char *data = NULL;
  size_t len = 0;
  assert_int_equal(vab_guest_read(g, file, &data, &len), 0);
  assert_int_equal(len, 3);
  assert_memory_equal(data, "x\0y", 3);
  free(data);
  assert_int_equal(vab_guest_chmod(g, 0640, file), 0);
  assert_int_equal(stat(file, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0640);
  bool exists = false;
  assert_int_equal(vab_guest_exists(g, file, &exists), 0);
  assert_true(exists);
  snprintf(link, sizeof link, "%s/link", dir);
  assert_int_equal(vab_guest_symlink(g, "nowhere", link), 0);
  assert_int_equal(vab_guest_exists(g, link, &exists), 0);
  assert_true(exists);   /* a dangling link counts */
  assert_int_equal(vab_guest_rm_rf(g, link), 0);
  assert_int_equal(vab_guest_exists(g, link, &exists), 0);
  assert_false(exists);
  /* upload and copy_in (a folder, by name). */
  char src[600];
  snprintf(src, sizeof src, "%s/src", tmp);
  assert_int_equal(mkdir(src, 0755), 0);
  snprintf(file, sizeof file, "%s/src/f.txt", tmp);
  FILE *f = fopen(file, "w");
  fputs("hello\n", f);
  fclose(f);
  char dst[600];
  snprintf(dst, sizeof dst, "%s/uploaded", dir);
  assert_int_equal(vab_guest_upload(g, file, dst), 0);
  assert_string_equal(read_host(dst), "hello\n");
  assert_int_equal(vab_guest_copy_in(g, src, dir), 0);
  snprintf(dst, sizeof dst, "%s/src/f.txt", dir);
  assert_string_equal(read_host(dst), "hello\n");
  /* A script: its env quoted, its output kept, its status passed on, and
   * its folder gone after it. */
  const char *const env[] = {"GREETING=it's $HOME", NULL};
  int status = -1;
  assert_int_equal(vab_guest_script(g, "#!/bin/sh\necho \"$GREETING\"\n"
                                       "echo \"$HOME $LANG\"\nexit 3\n",
                                    env, &status), 0);
  assert_int_equal(status, 3);
  assert_string_equal(vab_guest_output_tail(g),
                      "it's $HOME\n/root C.UTF-8");
  snprintf(dst, sizeof dst, "%s/root/run-vab-step", tmp);
  assert_int_equal(access(dst, F_OK), -1);
  /* A failing op names what failed. */
  guest_path(file, sizeof file, "no/such/file");
  assert_int_equal(vab_guest_read(g, file, &data, &len), -1);
  assert_non_null(strstr(vab_last_error(ctx)->message, "reading '"));
  /* The endpoint: the build's key and known_hosts. */
  struct vab_guest_ssh ep;
  assert_int_equal(vab_guest_ssh_endpoint(g, &ep), 0);
  assert_string_equal(ep.host, "127.0.0.1");
  assert_string_equal(ep.user, "root");
  assert_int_equal(access(ep.identity_file, R_OK), 0);
  assert_non_null(strstr(ep.known_hosts_file, "/known_hosts"));
  /* Every call went through the options above. */
  char *log = read_host(getenv("FAKE_SSH_LOG"));
  assert_non_null(strstr(log, "StrictHostKeyChecking=yes\n"));
  assert_non_null(strstr(log, "\n-F\nnone\n"));
  /* The key folder is private, and gone with the guest. */
  char keydir[600];
  snprintf(keydir, sizeof keydir, "%s", ep.identity_file);
  *strrchr(keydir, '/') = '\0';
  assert_int_equal(stat(keydir, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);
  vab_booted_free(b);
  assert_int_equal(access(keydir, F_OK), -1);
  vab_ctx_free(ctx);
}

static void test_reboot_waits_for_a_new_boot(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_booted *b = new_booted(ctx);
  struct vab_guest *g = vab_booted_guest(b);
  char id[600];
  snprintf(id, sizeof id, "%s/root/boot_id", tmp);
  FILE *f = fopen(id, "w");
  fputs("first-boot\n", f);
  fclose(f);
  vab_booted_begin_step(b, "reboot step", 60000);
  assert_int_equal(vab_guest_reboot(g), 0);
  assert_non_null(strstr(read_host(id), "rebooted-"));
  vab_booted_free(b);
  vab_ctx_free(ctx);
}

static void test_timeout_kills_the_call(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_booted *b = new_booted(ctx);
  struct vab_guest *g = vab_booted_guest(b);
  vab_booted_begin_step(b, "provisioner 2 (shell) at t.yaml:9:5", 1500);
  double start = now_seconds();
  int status = 0;
  assert_int_equal(vab_guest_script(g, "sleep 30\n", NULL, &status), -1);
  assert_true(now_seconds() - start < 10);
  assert_string_equal(vab_last_error(ctx)->message,
                      "provisioner 2 (shell) at t.yaml:9:5: the script did "
                      "not finish within the step's timeout (1500ms)");
  /* The time is the step's: a later call fails at once. */
  assert_int_equal(vab_guest_mkdir_p(g, "/nonexistent-x"), -1);
  vab_booted_free(b);
  vab_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_argv),
    cmocka_unit_test(test_known_hosts_line),
    cmocka_unit_test(test_export_env),
    cmocka_unit_test(test_ops_over_fake_ssh),
    cmocka_unit_test(test_reboot_waits_for_a_new_boot),
    cmocka_unit_test(test_timeout_kills_the_call),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
