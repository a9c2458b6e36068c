/* builder/accel: what AUTO resolves to on this machine, within the probe's
 * deadline, with the reason it gives; the cache; explicit KVM failing. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "builder/accel.h"
#include "common/subprocess.h"
#include "vab/progress.h"

struct log_lines {
  char text[2048];
  int n;
};

static void collect_log(void *opaque, enum vab_log_level level,
                        const char *line) {
  struct log_lines *l = opaque;
  l->n++;
  strncat(l->text, line, sizeof l->text - strlen(l->text) - 2);
  strcat(l->text, "\n");
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What this machine shows: /dev/kvm opens, but a KVM guest hangs.  AUTO
 * must pick TCG within the deadline and say why.  On a machine where KVM
 * works, AUTO must pick KVM with no reason. */
static void test_auto_resolves_in_time(void **state) {
  (void)state;
  if (!subprocess_have_program("qemu-system-x86_64"))
    skip();
  struct vab_ctx *ctx = vab_ctx_new();
  struct log_lines log = {"", 0};
  vab_ctx_set_log(ctx, collect_log, &log);
  enum vab_accel r = VAB_ACCEL_AUTO;
  char reason[256] = "x";
  double start = now_seconds();
  assert_int_equal(vab_accel_resolve(ctx, VAB_ACCEL_AUTO, &r, reason,
                                     sizeof reason), 0);
  double seconds = now_seconds() - start;
  /* 5 s deadline plus up to 5 s for qemu to die after SIGTERM. */
  assert_true(seconds < 11.0);

  int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  int open_errno = errno;
  if (fd < 0) {
    char expected[256];
    snprintf(expected, sizeof expected, "cannot open /dev/kvm: %s",
             strerror(open_errno));
    assert_int_equal(r, VAB_ACCEL_TCG);
    assert_string_equal(reason, expected);
  } else {
    close(fd);
    /* Ask the probe itself, independently of the cache. */
    char direct[256];
    struct vab_ctx *ctx2 = vab_ctx_new();
    int works = vab_accel_probe(ctx2, VAB_ACCEL_KVM, 5000, direct,
                                sizeof direct);
    vab_ctx_free(ctx2);
    if (works == 1) {
      assert_int_equal(r, VAB_ACCEL_KVM);
      assert_string_equal(reason, "");
      assert_non_null(strstr(log.text, "; using KVM\n"));
    } else {
      assert_int_equal(r, VAB_ACCEL_TCG);
      assert_string_equal(direct, reason);
      /* A hang is cut at the deadline; a qemu that dies says how. */
      if (strstr(reason, "timed out") != NULL)
        assert_string_equal(reason,
                            "KVM probe timed out after 5 s (nested KVM?)");
      else
        assert_true(strncmp(reason, "KVM probe failed: qemu ", 23) == 0);
      char logged[300];
      snprintf(logged, sizeof logged, "%s; using TCG\n", reason);
      assert_non_null(strstr(log.text, logged));
      assert_non_null(strstr(log.text, "probing KVM (at most 5 s)\n"));
    }
  }

  /* The second call is answered from the cache: no new probe. */
  struct log_lines log2 = {"", 0};
  vab_ctx_set_log(ctx, collect_log, &log2);
  enum vab_accel again = VAB_ACCEL_AUTO;
  char reason2[256];
  start = now_seconds();
  assert_int_equal(vab_accel_resolve(ctx, VAB_ACCEL_AUTO, &again, reason2,
                                     sizeof reason2), 0);
  assert_true(now_seconds() - start < 0.5);
  assert_int_equal(again, r);
  assert_string_equal(reason2, reason);
  assert_null(strstr(log2.text, "probing KVM"));

  /* An explicit KVM that does not work is an error, not a silent TCG. */
  if (r == VAB_ACCEL_TCG) {
    enum vab_accel k = VAB_ACCEL_AUTO;
    char reason3[256];
    assert_int_equal(vab_accel_resolve(ctx, VAB_ACCEL_KVM, &k, reason3,
                                       sizeof reason3), -1);
    const struct vab_diag *d = vab_last_error(ctx);
    assert_non_null(d);
    assert_int_equal(d->code, VAB_E_UNSUPPORTED);
    char expected[400];
    snprintf(expected, sizeof expected,
             "KVM was requested but does not work: %s", reason);
    assert_string_equal(d->message, expected);
    assert_string_equal(d->hint, "use --accel tcg (slower) or --accel auto");
  }
  vab_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_auto_resolves_in_time),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
