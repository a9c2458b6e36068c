/* The boot test.
 *
 * qemu boots a qcow2 overlay whose backing file is the finished disk, so
 * the disk itself is never written.  Each guest port a check needs gets a
 * free port on 127.0.0.1 through user networking (slirp).  Then, about
 * once a second until the timeout, every check that has not passed yet is
 * tried again:
 *
 *   serial  the pattern (plain text) appears in the serial log;
 *   http    GET path over HTTP/1.0 returns the status, and the body holds
 *           the text if one was given (builder/probe.c);
 *   tcp     a connection gets at least one byte from the guest.  slirp
 *           accepts every connection to a forwarded port, even when nothing
 *           listens in the guest (it closes it a moment later), so a bare
 *           connect proves nothing: the service must speak first, as SSH,
 *           SMTP or FTP do.  Web servers take an http check instead.
 *
 * qemu is killed (SIGTERM, then SIGKILL, the whole process group) and the
 * overlay removed on every path out, including cancellation. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "builder/boottest.h"
#include "builder/probe.h"
#include "builder/vm.h"
#include "common/clock.h"
#include "common/buf.h"
#include "common/cleanup.h"
#include "common/io.h"
#include "common/fsutil.h"
#include "common/qemu-name.h"
#include "common/subprocess.h"
#include "vab/progress.h"

#define POLL_INTERVAL_MS 1000
#define HTTP_ATTEMPT_MS 5000     /* one request, connect to last byte */
#define TCP_ATTEMPT_MS 3000      /* one connection, waiting for a byte */
#define HTTP_MAX_RESPONSE (256u * 1024)

struct check {
  bool wanted;
  bool passed;
  char seen[512];     /* what the last attempt saw, for the error */
};

struct boot {
  struct vab_ctx *ctx;
  const struct vab_boottest_opts *opts;
  const struct vab_boot_test *test;
  char overlay[PATH_MAX];       /* "" until created */
  struct vab_vm vm;
  bool vm_started;
  uint16_t http_host_port;
  uint16_t tcp_host_port;
  int serial_fd;
  uint64_t serial_bytes;
  char serial_carry[256];       /* the end of the last read, so a pattern
                                   split between two reads still matches */
  size_t serial_carry_len;
  struct check serial, http, tcp;
  int http_status;
};


static int cancel_cb(void *opaque) { return vab_cancelled(opaque); }

static void log_line_cb(void *opaque, const char *line) {
  vab_log(opaque, VAB_LOG_DEBUG, "qemu-img: %s", line);
}

/* A temporary name in dir ending in suffix, created empty. */
static int make_temp(struct vab_ctx *ctx, const char *dir, const char *suffix,
                     char *out, size_t out_len) {
  int n = snprintf(out, out_len, "%s/vab-boottest-XXXXXX%s", dir, suffix);
  if (n < 0 || (size_t)n >= out_len)
    return vab_error(ctx, VAB_E_USAGE, "work folder path too long: '%s'",
                     dir);
  int fd = mkostemps(out, (int)strlen(suffix), O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    out[0] = '\0';
    return vab_error_errno(ctx, VAB_E_IO, e,
                           "cannot create a temporary file in '%s'", dir);
  }
  close(fd);
  return 0;
}

static int create_overlay(struct boot *b) {
  struct vab_ctx *ctx = b->ctx;
  CLEANUP_FREE char *backing = realpath(b->opts->disk_path, NULL);
  if (backing == NULL)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot find disk '%s'",
                           b->opts->disk_path);
  if (make_temp(ctx, b->opts->work_dir, ".qcow2", b->overlay,
                sizeof b->overlay) < 0)
    return -1;
  /* backing is absolute (no protocol prefix can apply); the overlay's
   * name follows "--" as a plain file name. */
  struct buf overlay = BUF_INIT;
  if (qemu_file_name(&overlay, b->overlay) < 0)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  char *argv[] = {"qemu-img", "create", "-q", "-f", "qcow2",
                  "-F", (char *)b->opts->disk_format, "-b", backing,
                  "--", overlay.data, NULL};
  struct subprocess p;
  int started = subprocess_start(&p, argv, NULL);
  int start_errno = errno;
  buf_release(&overlay);
  if (started < 0)
    return vab_error_errno(ctx, VAB_E_SUBPROCESS, start_errno,
                           "cannot run qemu-img");
  int status = 0;
  if (subprocess_wait(&p, log_line_cb, ctx, cancel_cb, ctx, 60000,
                      &status) < 0) {
    if (errno == ECANCELED)
      return vab_check_cancel(ctx);
    return vab_error_errno(ctx, VAB_E_SUBPROCESS, errno,
                           "qemu-img create of the boot test overlay failed");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    char how[96];
    subprocess_describe_status(status, how, sizeof how);
    return vab_error(ctx, VAB_E_SUBPROCESS,
                     "qemu-img create of an overlay of '%s' failed (%s); "
                     "the build log has its output",
                     b->opts->disk_path, how);
  }
  return 0;
}

/* The serial check: scan what the log gained since the last look. */
static void check_serial(struct boot *b) {
  const char *pattern = b->test->serial;
  size_t plen = strlen(pattern);
  if (b->serial_fd < 0) {
    b->serial_fd =
        open(b->opts->serial_log_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (b->serial_fd < 0) {
      snprintf(b->serial.seen, sizeof b->serial.seen,
               "no serial output (cannot open the log: %s)", strerror(errno));
      return;
    }
  }
  char chunk[65536 + sizeof b->serial_carry];
  for (;;) {
    memcpy(chunk, b->serial_carry, b->serial_carry_len);
    ssize_t n = read(b->serial_fd, chunk + b->serial_carry_len, 65536);
    if (n <= 0)
      break;
    b->serial_bytes += (uint64_t)n;
    size_t len = b->serial_carry_len + (size_t)n;
    if (memmem(chunk, len, pattern, plen) != NULL) {
      b->serial.passed = true;
      return;
    }
    /* Keep the last plen - 1 bytes: a match cannot start earlier. */
    size_t keep = plen > 0 ? plen - 1 : 0;
    if (keep > sizeof b->serial_carry)
      keep = sizeof b->serial_carry;
    if (keep > len)
      keep = len;
    memmove(b->serial_carry, chunk + len - keep, keep);
    b->serial_carry_len = keep;
  }
  snprintf(b->serial.seen, sizeof b->serial.seen,
           "not in the %llu bytes of serial output",
           (unsigned long long)b->serial_bytes);
}

/* Record what an attempt saw.  An attempt the overall deadline cut short
 * that only timed out says less than the attempt before it: keep that. */
static void observe(struct check *c, bool cut_short, bool timed_out,
                    const char *seen) {
  if (cut_short && timed_out && c->seen[0] != '\0')
    return;
  snprintf(c->seen, sizeof c->seen, "%s", seen);
}

static void check_http(struct boot *b, double deadline) {
  const struct vab_boot_test *t = b->test;
  double attempt_end = now_seconds() + HTTP_ATTEMPT_MS / 1000.0;
  bool cut_short = attempt_end > deadline;
  if (cut_short)
    attempt_end = deadline;
  struct probe_http_request req = {
      .port = b->http_host_port,
      .path = t->http_path,
      .want_status = t->http_status,
      .want_text = t->http_contains,
      .max_response = HTTP_MAX_RESPONSE,
      .attempt_ms = HTTP_ATTEMPT_MS,
  };
  struct probe_outcome o;
  probe_http(b->ctx, &req, attempt_end, &o);
  if (o.answered)
    b->http_status = o.http_status;
  if (o.passed)
    b->http.passed = true;
  else
    observe(&b->http, cut_short, o.timed_out, o.seen);
}

static void check_tcp(struct boot *b, double deadline) {
  double attempt_end = now_seconds() + TCP_ATTEMPT_MS / 1000.0;
  bool cut_short = attempt_end > deadline;
  if (cut_short)
    attempt_end = deadline;
  struct probe_outcome o;
  probe_tcp(b->ctx, b->tcp_host_port, b->test->tcp_port, TCP_ATTEMPT_MS,
            attempt_end, &o);
  if (o.passed)
    b->tcp.passed = true;
  else
    observe(&b->tcp, cut_short, o.timed_out, o.seen);
}

static void describe_check(struct buf *m, const struct boot *b,
                           const struct check *c, const char *name) {
  const struct vab_boot_test *t = b->test;
  if (!c->wanted || c->passed)
    return;
  if (c == &b->serial) {
    buf_printf(m, "\n  serial check: expected '%s' on the serial console; "
               "%s", t->serial, c->seen);
  } else if (c == &b->http) {
    const char *path = t->http_path ? t->http_path : "/";
    buf_printf(m, "\n  %s check: GET %s on guest port %u (127.0.0.1:%u): "
               "expected status %u", name, path, t->http_port,
               b->http_host_port, t->http_status);
    if (t->http_contains != NULL)
      buf_printf(m, " and a body containing '%s'", t->http_contains);
    buf_printf(m, "; last seen: %s", c->seen[0] ? c->seen : "nothing yet");
  } else {
    buf_printf(m, "\n  %s check: guest port %u (127.0.0.1:%u): expected "
               "the service to send data; last seen: %s", name, t->tcp_port,
               b->tcp_host_port, c->seen[0] ? c->seen : "nothing yet");
  }
}

static int fail(struct boot *b, const char *what) {
  struct buf m = BUF_INIT;
  buf_printf(&m, "boot test failed: %s", what);
  describe_check(&m, b, &b->serial, "serial");
  describe_check(&m, b, &b->http, "http");
  describe_check(&m, b, &b->tcp, "tcp");
  vab_vm_serial_tail(&m, b->opts->serial_log_path);
  vab_error_at(b->ctx, VAB_E_TEST, &b->test->mark, "%s",
               m.data ? m.data : what);
  buf_release(&m);
  return -1;
}

static void cleanup(struct boot *b) {
  if (b->vm_started)
    vab_vm_stop(&b->vm);
  if (b->serial_fd >= 0)
    close(b->serial_fd);
  if (b->overlay[0] != '\0')
    unlink(b->overlay);
}

static bool all_passed(const struct boot *b) {
  return (!b->serial.wanted || b->serial.passed) &&
         (!b->http.wanted || b->http.passed) &&
         (!b->tcp.wanted || b->tcp.passed);
}

/* qemu on the overlay, forwarding a port to each guest port a check
 * needs (builder/vm.h picks them again when one was taken). */
static int boot(struct boot *b) {
  uint16_t ports[2];
  size_t n = 0;
  if (b->test->has_http)
    ports[n++] = b->test->http_port;
  if (b->test->has_tcp)
    ports[n++] = b->test->tcp_port;
  struct vab_vm_opts vo = {
    .disk_path = b->overlay, .disk_format = "qcow2",
    .firmware = b->opts->firmware, .accel = b->opts->accel,
    .cpus = b->opts->cpus, .memory = b->opts->memory,
    .work_dir = b->opts->work_dir,
    .serial_log_path = b->opts->serial_log_path,
    .guest_ports = ports, .n_ports = n,
  };
  b->vm_started = true;
  if (vab_vm_start(b->ctx, &vo, &b->vm) < 0)
    return -1;
  n = 0;
  if (b->test->has_http)
    b->http_host_port = b->vm.host_ports[n++];
  if (b->test->has_tcp)
    b->tcp_host_port = b->vm.host_ports[n++];
  return 0;
}

int vab_boottest_run(struct vab_ctx *ctx, const struct vab_boottest_opts *opts,
                     const struct vab_boot_test *test,
                     struct vab_boottest_result *result) {
  struct boot b;
  memset(&b, 0, sizeof b);
  b.ctx = ctx;
  b.opts = opts;
  b.test = test;
  b.serial_fd = -1;
  b.serial.wanted = test->serial != NULL && test->serial[0] != '\0';
  b.http.wanted = test->has_http;
  b.tcp.wanted = test->has_tcp;
  if (result != NULL)
    memset(result, 0, sizeof *result);

  if (opts->disk_path == NULL || opts->serial_log_path == NULL)
    return vab_error(ctx, VAB_E_INTERNAL,
                     "boot test started without a disk or a serial log path");
  if (!b.serial.wanted && !b.http.wanted && !b.tcp.wanted)
    return vab_error_at(ctx, VAB_E_USAGE, &test->mark,
                        "the boot test has no check (http, tcp or serial)");
  if (!subprocess_have_program("qemu-system-x86_64") ||
      !subprocess_have_program("qemu-img")) {
    vab_error(ctx, VAB_E_SUBPROCESS,
              "the boot test needs qemu-system-x86_64 and qemu-img");
    vab_diag_hint(ctx, "install the Debian packages qemu-system-x86 and "
                       "qemu-utils, or build with --no-test");
    return -1;
  }
  struct vab_boottest_opts resolved = *opts;
  if (resolved.disk_format == NULL)
    resolved.disk_format = "raw";
  if (resolved.work_dir == NULL)
    resolved.work_dir = "/var/tmp";
  if (resolved.accel == VAB_ACCEL_AUTO) {
    char reason[256];
    if (vab_accel_resolve(ctx, VAB_ACCEL_AUTO, &resolved.accel, reason,
                          sizeof reason) < 0)
      return -1;
  }
  b.opts = &resolved;

  int r = -1;
  if (create_overlay(&b) < 0)
    goto out;

  double timeout = (double)test->timeout_ms / 1000.0;
  vab_log(ctx, VAB_LOG_INFO,
          "boot test: %s, %s, %u CPU(s), %llu MiB, timeout %.0f s",
          resolved.firmware == VAB_FW_UEFI ? "UEFI (OVMF)" : "BIOS (SeaBIOS)",
          resolved.accel == VAB_ACCEL_KVM ? "KVM" : "TCG",
          resolved.cpus ? resolved.cpus : 1,
          (unsigned long long)(resolved.memory / (1024 * 1024)), timeout);
  if (boot(&b) < 0)
    goto out;
  double start = now_seconds();
  double deadline = start + timeout;

  for (;;) {
    vab_vm_drain(&b.vm);
    if (b.serial.wanted && !b.serial.passed) {
      check_serial(&b);
      if (b.serial.passed)
        vab_log(ctx, VAB_LOG_INFO, "boot test: '%s' on the serial console "
                "after %.1f s", test->serial, now_seconds() - start);
    }
    if (b.http.wanted && !b.http.passed) {
      check_http(&b, deadline);
      if (b.http.passed)
        vab_log(ctx, VAB_LOG_INFO, "boot test: GET %s returned %d after "
                "%.1f s", test->http_path ? test->http_path : "/",
                b.http_status, now_seconds() - start);
    }
    if (b.tcp.wanted && !b.tcp.passed) {
      check_tcp(&b, deadline);
      if (b.tcp.passed)
        vab_log(ctx, VAB_LOG_INFO, "boot test: guest port %u answered after "
                "%.1f s", test->tcp_port, now_seconds() - start);
    }
    if (result != NULL)
      result->http_status = b.http_status;
    if (all_passed(&b)) {
      if (result != NULL)
        result->seconds = now_seconds() - start;
      r = 0;
      break;
    }
    int status;
    if (vab_vm_exited(&b.vm, &status)) {
      char how[96], what[512];
      vab_vm_drain(&b.vm);
      subprocess_describe_status(status, how, sizeof how);
      snprintf(what, sizeof what, "qemu exited (%s) after %.0f s%s%s", how,
               now_seconds() - start, vab_vm_last_line(&b.vm)[0] ? ": " : "",
               vab_vm_last_line(&b.vm));
      fail(&b, what);
      break;
    }
    if (now_seconds() >= deadline) {
      char what[128];
      snprintf(what, sizeof what, "not every check passed within %.0f s",
               timeout);
      fail(&b, what);
      break;
    }
    /* Sleep until the next round, watching for Ctrl-C. */
    double next = now_seconds() + POLL_INTERVAL_MS / 1000.0;
    if (next > deadline)
      next = deadline;
    bool cancelled = false;
    while (now_seconds() < next) {
      uint64_t done = (uint64_t)((now_seconds() - start) * 1000);
      if (vab_progress(ctx, VAB_PHASE_TEST, "boot test", done,
                       test->timeout_ms) < 0) {
        cancelled = true;
        break;
      }
      struct timespec ts = {0, 100 * 1000000};
      nanosleep(&ts, NULL);
    }
    if (cancelled)
      break;
  }
out:
  cleanup(&b);
  return r;
}
