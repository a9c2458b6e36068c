/* Finding the appliance's qemu among this process's children
 * (builder/qemu-child.c): only the one that attaches the session's disk. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "builder/qemu-child.h"

#define CMDLINE(s) s, sizeof s - 1

static void test_cmdline_matches_whole_file_option(void **state) {
  (void)state;
  const char *disk = "/w/disk.raw";
  assert_true(qemu_cmdline_uses_disk(
      CMDLINE("qemu-kvm\0-drive\0file=/w/disk.raw,cache=unsafe,id=hd0\0"),
      disk));
  assert_true(qemu_cmdline_uses_disk(
      CMDLINE("qemu\0-drive\0format=raw,file=/w/disk.raw\0"), disk));
  /* A boot test's overlay, a longer name, another option's file. */
  assert_false(qemu_cmdline_uses_disk(
      CMDLINE("qemu\0-drive\0file=/w/boot-1.qcow2,format=qcow2\0"), disk));
  assert_false(qemu_cmdline_uses_disk(
      CMDLINE("qemu\0-drive\0file=/w/disk.raw.old,format=raw\0"), disk));
  assert_false(qemu_cmdline_uses_disk(
      CMDLINE("qemu\0-drive\0backing.file=/w/disk.raw\0"), disk));
  assert_false(qemu_cmdline_uses_disk(CMDLINE("qemu\0/w/disk.raw\0"), disk));
  /* A ',' in the name is ",," on the command line. */
  assert_true(qemu_cmdline_uses_disk(
      CMDLINE("qemu\0-drive\0file=/w/a,,b,format=raw\0"), "/w/a,b"));
  assert_false(qemu_cmdline_uses_disk(
      CMDLINE("qemu\0-drive\0file=/w/a,,b,format=raw\0"), "/w/a"));
  /* A relative name, as given or with "./". */
  assert_true(qemu_cmdline_uses_disk(
      CMDLINE("qemu\0-drive\0file=./w/disk.raw,format=raw\0"), "w/disk.raw"));
  assert_true(qemu_cmdline_uses_disk(
      CMDLINE("qemu\0-drive\0file=w/disk.raw,format=raw\0"), "w/disk.raw"));
  /* An argument cut short (no final NUL) is not read past the end. */
  assert_false(qemu_cmdline_uses_disk(CMDLINE("qemu\0file=/w/disk.raw"),
                                      disk));
}

static pid_t start_fake_qemu(const char *script, const char *drive) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    execl(script, script, "-drive", drive, (char *)NULL);
    _exit(127);
  }
  return pid;
}

static bool has_pid(const pid_t *pids, size_t n, pid_t pid) {
  for (size_t i = 0; i < n; i++)
    if (pids[i] == pid)
      return true;
  return false;
}

/* Two qemu children, the session's and a boot test's: only the first is
 * found. */
static void test_finds_only_the_sessions_qemu(void **state) {
  (void)state;
  char dir[] = "/tmp/vab-test-qemu-child-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char script[128], disk[128], drive_disk[160], drive_boot[160];
  /* The command name of a script run by its #! line is its file name. */
  snprintf(script, sizeof script, "%s/qemu-system-x86_64", dir);
  snprintf(disk, sizeof disk, "%s/disk.raw", dir);
  snprintf(drive_disk, sizeof drive_disk, "file=%s,cache=unsafe", disk);
  snprintf(drive_boot, sizeof drive_boot, "file=%s/boot.qcow2,format=qcow2",
           dir);
  FILE *f = fopen(script, "w");
  assert_non_null(f);
  fputs("#!/bin/sh\nwhile :; do sleep 1; done\n", f);
  assert_int_equal(fclose(f), 0);
  assert_int_equal(chmod(script, 0755), 0);

  pid_t session = start_fake_qemu(script, drive_disk);
  pid_t boot = start_fake_qemu(script, drive_boot);
  pid_t found[8];
  size_t n = 0;
  for (int tries = 0; tries < 100 && n == 0; tries++) {
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    n = qemu_children_using_disk(disk, found, 8);
  }
  assert_int_equal(n, 1);
  assert_true(has_pid(found, n, session));
  assert_false(has_pid(found, n, boot));
  /* Asked for the boot test's file, it finds the boot test's only. */
  char boot_file[160];
  snprintf(boot_file, sizeof boot_file, "%s/boot.qcow2", dir);
  n = qemu_children_using_disk(boot_file, found, 8);
  assert_int_equal(n, 1);
  assert_true(has_pid(found, n, boot));

  kill(session, SIGKILL);
  kill(boot, SIGKILL);
  assert_int_equal(waitpid(session, NULL, 0), session);
  assert_int_equal(waitpid(boot, NULL, 0), boot);
  unlink(script);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_cmdline_matches_whole_file_option),
    cmocka_unit_test(test_finds_only_the_sessions_qemu),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
