/* builder/boottest: boot a real disk under qemu and run the checks.
 *
 * The disk comes from test-boottest-mkdisk.sh (a busybox guest that serves
 * HTTP on port 80 and a banner on 2222, with nothing on 2323).  Passing
 * checks must pass under SeaBIOS and OVMF; failing ones must fail with the
 * check named, expected and seen, and the serial log's tail.  After every
 * test, no qemu may remain and the overlay must be gone. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "builder/boottest.h"
#include "common/subprocess.h"
#include "signing/digest.h"
#include "vab/progress.h"

static char disk[4096];
static char disk_sha256[65];

static int setup_disk(void **state) {
  (void)state;
  if (!subprocess_have_program("qemu-system-x86_64") ||
      !subprocess_have_program("qemu-img"))
    return 0;
  const char *srcdir = getenv("SRCDIR");
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "%s/tests/builder/test-boottest-mkdisk.sh",
           srcdir ? srcdir : ".");
  FILE *p = popen(cmd, "r");
  if (p == NULL)
    return 0;
  if (fgets(disk, sizeof disk, p) == NULL)
    disk[0] = '\0';
  int status = pclose(p);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    disk[0] = '\0';
    return 0;
  }
  disk[strcspn(disk, "\n")] = '\0';
  struct vab_ctx *ctx = vab_ctx_new();
  uint8_t sum[32];
  if (vab_sha256_file(ctx, disk, sum) == 0)
    vab_hex(sum, 32, disk_sha256);
  vab_ctx_free(ctx);
  return 0;
}

/* A work folder with a comma in its name: qemu options must escape it. */
static void make_work_dir(char *out, size_t len) {
  snprintf(out, len, "/var/tmp/vab,boottest-XXXXXX");
  assert_non_null(mkdtemp(out));
}

/* Files left in dir, other than the serial log. */
static int leftover_files(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
        strcmp(e->d_name, "serial.log") == 0)
      continue;
    fprintf(stderr, "left behind: %s/%s\n", dir, e->d_name);
    n++;
  }
  closedir(d);
  return n;
}

/* Processes whose command line mentions dir (our qemu), like pgrep -f. */
static int processes_using(const char *dir) {
  DIR *d = opendir("/proc");
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9')
      continue;
    char path[300], cmdline[8192];
    snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
      continue;
    ssize_t len = read(fd, cmdline, sizeof cmdline - 1);
    close(fd);
    if (len <= 0)
      continue;
    for (ssize_t i = 0; i < len; i++)
      if (cmdline[i] == '\0')
        cmdline[i] = ' ';
    cmdline[len] = '\0';
    if (strstr(cmdline, dir) != NULL) {
      fprintf(stderr, "still running: %s: %s\n", e->d_name, cmdline);
      n++;
    }
  }
  closedir(d);
  return n;
}

static void remove_work_dir(const char *dir) {
  char path[4200];
  snprintf(path, sizeof path, "%s/serial.log", dir);
  unlink(path);
  assert_int_equal(rmdir(dir), 0);
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  static char data[1 << 20];
  size_t n = fread(data, 1, sizeof data - 1, f);
  fclose(f);
  data[n] = '\0';
  for (size_t i = 0; i < n; i++)
    if (data[i] == '\0')
      data[i] = ' ';
  return data;
}

static void assert_disk_untouched(void) {
  struct vab_ctx *ctx = vab_ctx_new();
  uint8_t sum[32];
  char hex[65];
  assert_int_equal(vab_sha256_file(ctx, disk, sum), 0);
  vab_hex(sum, 32, hex);
  assert_string_equal(hex, disk_sha256);
  vab_ctx_free(ctx);
}

static void init_opts(struct vab_boottest_opts *o, const char *work,
                      char *serial, size_t serial_len) {
  snprintf(serial, serial_len, "%s/serial.log", work);
  memset(o, 0, sizeof *o);
  o->disk_path = disk;
  o->disk_format = "raw";
  o->firmware = VAB_FW_BIOS;
  o->accel = VAB_ACCEL_TCG;
  o->cpus = 1;
  o->memory = 512ull << 20;
  o->work_dir = work;
  o->serial_log_path = serial;
}

static void init_test(struct vab_boot_test *t) {
  memset(t, 0, sizeof *t);
  t->mark.file = "web.yaml";
  t->mark.line = 31;
  t->mark.column = 5;
  t->timeout_ms = 150000;
}

static void require_disk(void) {
  if (disk[0] == '\0')
    skip();
}

static void run_passing(enum vab_firmware fw, const char *fw_word) {
  require_disk();
  char work[64], serial[128];
  make_work_dir(work, sizeof work);
  struct vab_boottest_opts o;
  init_opts(&o, work, serial, sizeof serial);
  o.firmware = fw;
  struct vab_boot_test t;
  init_test(&t);
  t.has_http = true;
  t.http_port = 80;
  t.http_path = "/index.html";
  t.http_status = 200;
  t.http_contains = "vab boot test page";
  t.has_tcp = true;
  t.tcp_port = 2222;
  t.serial = "VAB-TEST-READY";

  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_boottest_result res;
  int r = vab_boottest_run(ctx, &o, &t, &res);
  if (r != 0)
    fail_msg("boot test failed: %s", vab_last_error(ctx)->message);
  assert_int_equal(res.http_status, 200);
  assert_true(res.seconds > 0.0 && res.seconds < 150.0);
  /* The firmware asked for is the one that booted. */
  assert_non_null(strstr(read_file(serial), fw_word));
  assert_int_equal(leftover_files(work), 0);
  assert_int_equal(processes_using(work), 0);
  assert_disk_untouched();
  remove_work_dir(work);
  vab_ctx_free(ctx);
}

static void test_bios_boot_passes(void **state) {
  (void)state;
  run_passing(VAB_FW_BIOS, "vab_firmware=bios");
}

static void test_uefi_boot_passes(void **state) {
  (void)state;
  if (access("/usr/share/OVMF/OVMF_CODE_4M.fd", R_OK) != 0 &&
      access("/usr/share/OVMF/OVMF_CODE.fd", R_OK) != 0)
    skip();
  run_passing(VAB_FW_UEFI, "vab_firmware=uefi");
}

static void test_failing_checks_report(void **state) {
  (void)state;
  require_disk();
  char work[64], serial[128];
  make_work_dir(work, sizeof work);
  struct vab_boottest_opts o;
  init_opts(&o, work, serial, sizeof serial);
  struct vab_boot_test t;
  init_test(&t);
  t.timeout_ms = 45000;
  t.has_http = true;
  t.http_port = 80;
  t.http_path = "/";
  t.http_status = 200;
  t.http_contains = "no such text";
  t.has_tcp = true;
  t.tcp_port = 2323;      /* nothing listens there: slirp still accepts */
  t.serial = "NEVER-PRINTED";

  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_boottest_result res;
  assert_int_equal(vab_boottest_run(ctx, &o, &t, &res), -1);
  const struct vab_diag *d = vab_last_error(ctx);
  assert_non_null(d);
  assert_int_equal(d->code, VAB_E_TEST);
  assert_string_equal(d->file, "web.yaml");
  assert_int_equal(d->line, 31);
  const char *m = d->message;
  fprintf(stderr, "%s\n", m);   /* shown by meson on failure */
  const char *head = "boot test failed: not every check passed within 45 s\n";
  assert_true(strncmp(m, head, strlen(head)) == 0);
  assert_non_null(strstr(m, "\n  serial check: expected 'NEVER-PRINTED' on "
                            "the serial console; not in the "));
  assert_non_null(strstr(m, "\n  http check: GET / on guest port 80 "
                            "(127.0.0.1:"));
  assert_non_null(strstr(m, "): expected status 200 and a body containing "
                            "'no such text'; last seen: status 200, body "
                            "'<h1>vab boot test page</h1> '"));
  assert_non_null(strstr(m, "\n  tcp check: guest port 2323 (127.0.0.1:"));
  assert_non_null(strstr(m, "): expected the service to send data; last "
                            "seen: connection closed by the guest without "
                            "data (nothing listening on guest port 2323?)"));
  char tail_head[200];
  snprintf(tail_head, sizeof tail_head,
           "\nlast lines of the serial log '%s':\n", serial);
  const char *tail = strstr(m, tail_head);
  assert_non_null(tail);
  assert_non_null(strstr(tail, "VAB-TEST-READY on "));
  /* No terminal escapes or carriage returns in the message. */
  assert_null(strchr(m, '\x1b'));
  assert_null(strchr(m, '\r'));
  assert_int_equal(res.http_status, 200);
  assert_int_equal(leftover_files(work), 0);
  assert_int_equal(processes_using(work), 0);
  assert_disk_untouched();
  remove_work_dir(work);
  vab_ctx_free(ctx);
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct cancel_after {
  double at;
  struct vab_ctx *ctx;
};

static int cancel_progress(void *opaque, enum vab_phase phase,
                           const char *step, uint64_t done, uint64_t total) {
  struct cancel_after *c = opaque;
  assert_int_equal(phase, VAB_PHASE_TEST);
  assert_int_equal(total, 150000);
  return now_seconds() >= c->at;
}

/* Ctrl-C (here: the progress callback) stops qemu and cleans up. */
static void test_cancel_cleans_up(void **state) {
  (void)state;
  require_disk();
  char work[64], serial[128];
  make_work_dir(work, sizeof work);
  struct vab_boottest_opts o;
  init_opts(&o, work, serial, sizeof serial);
  struct vab_boot_test t;
  init_test(&t);
  t.serial = "NEVER-PRINTED";
  struct vab_ctx *ctx = vab_ctx_new();
  struct cancel_after c = {now_seconds() + 3.0, ctx};
  vab_ctx_set_progress(ctx, cancel_progress, &c);
  double start = now_seconds();
  assert_int_equal(vab_boottest_run(ctx, &o, &t, NULL), -1);
  assert_true(now_seconds() - start < 15.0);
  assert_int_equal(vab_last_error(ctx)->code, VAB_E_CANCELLED);
  assert_int_equal(leftover_files(work), 0);
  assert_int_equal(processes_using(work), 0);
  remove_work_dir(work);
  vab_ctx_free(ctx);
}

static void test_no_checks_is_an_error(void **state) {
  (void)state;
  struct vab_boottest_opts o;
  char serial[128];
  init_opts(&o, "/nonexistent", serial, sizeof serial);
  struct vab_boot_test t;
  init_test(&t);
  struct vab_ctx *ctx = vab_ctx_new();
  assert_int_equal(vab_boottest_run(ctx, &o, &t, NULL), -1);
  const struct vab_diag *d = vab_last_error(ctx);
  assert_int_equal(d->code, VAB_E_USAGE);
  assert_string_equal(d->message,
                      "the boot test has no check (http, tcp or serial)");
  assert_int_equal(d->line, 31);
  vab_ctx_free(ctx);
}

static void test_missing_disk(void **state) {
  (void)state;
  if (!subprocess_have_program("qemu-system-x86_64"))
    skip();
  char work[64], serial[128];
  make_work_dir(work, sizeof work);
  struct vab_boottest_opts o;
  init_opts(&o, work, serial, sizeof serial);
  o.disk_path = "/nonexistent/disk.raw";
  struct vab_boot_test t;
  init_test(&t);
  t.serial = "login:";
  struct vab_ctx *ctx = vab_ctx_new();
  assert_int_equal(vab_boottest_run(ctx, &o, &t, NULL), -1);
  const struct vab_diag *d = vab_last_error(ctx);
  assert_int_equal(d->code, VAB_E_IO);
  assert_int_equal(d->sys_errno, ENOENT);
  assert_string_equal(d->message,
                      "cannot find disk '/nonexistent/disk.raw'");
  assert_int_equal(leftover_files(work), 0);
  remove_work_dir(work);
  vab_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_checks_is_an_error),
      cmocka_unit_test(test_missing_disk),
      cmocka_unit_test(test_bios_boot_passes),
      cmocka_unit_test(test_uefi_boot_passes),
      cmocka_unit_test(test_failing_checks_report),
      cmocka_unit_test(test_cancel_cleans_up),
  };
  return cmocka_run_group_tests(tests, setup_disk, NULL);
}
