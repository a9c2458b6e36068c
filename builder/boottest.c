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
#define SERIAL_TAIL_LINES 20
#define QEMU_START_ATTEMPTS 3    /* a free port can be taken before use */

/* OVMF from Debian's ovmf package: 4 MiB builds first. */
static const char *const ovmf_pairs[][2] = {
    {"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
    {"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"},
};

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
  char vars[PATH_MAX];          /* OVMF variables copy, "" if none */
  const char *ovmf_code;
  struct subprocess qemu;
  char qemu_lines[3][256];      /* qemu's last lines of output */
  char qemu_partial[256];
  size_t qemu_partial_len;
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


/* A value inside a qemu -drive/-chardev option list: ',' is written ",,". */
static int qemu_escape(struct buf *b, const char *value) {
  for (const char *p = value; *p; p++) {
    if (*p == ',' && buf_putc(b, ',') < 0)
      return -1;
    if (buf_putc(b, *p) < 0)
      return -1;
  }
  return 0;
}

/* A port that was free on 127.0.0.1 a moment ago. */
static int find_free_port(struct vab_ctx *ctx, uint16_t *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot create a socket");
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
      getsockname(fd, (struct sockaddr *)&addr, &len) < 0) {
    int e = errno;
    close(fd);
    return vab_error_errno(ctx, VAB_E_IO, e,
                           "cannot find a free port on 127.0.0.1");
  }
  close(fd);
  *port = ntohs(addr.sin_port);
  return 0;
}

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

static int copy_file(struct vab_ctx *ctx, const char *src, const char *dst) {
  CLEANUP_CLOSE int in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot open '%s'", src);
  CLEANUP_CLOSE int out =
      open(dst, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
  if (out < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot open '%s'", dst);
  char buf[65536];
  for (;;) {
    ssize_t n = read_full(in, buf, sizeof buf);
    if (n < 0)
      return vab_error_errno(ctx, VAB_E_IO, errno, "cannot read '%s'", src);
    if (n == 0)
      return 0;
    if (write_full(out, buf, (size_t)n) < 0)
      return vab_error_errno(ctx, VAB_E_IO, errno, "cannot write '%s'", dst);
  }
}

/* UEFI: find OVMF and give this boot its own copy of the variables. */
static int prepare_ovmf(struct boot *b) {
  for (size_t i = 0; i < sizeof ovmf_pairs / sizeof ovmf_pairs[0]; i++) {
    if (access(ovmf_pairs[i][0], R_OK) != 0 ||
        access(ovmf_pairs[i][1], R_OK) != 0)
      continue;
    b->ovmf_code = ovmf_pairs[i][0];
    if (make_temp(b->ctx, b->opts->work_dir, "-vars.fd", b->vars,
                  sizeof b->vars) < 0)
      return -1;
    return copy_file(b->ctx, ovmf_pairs[i][1], b->vars);
  }
  vab_error(b->ctx, VAB_E_UNSUPPORTED,
            "the UEFI boot test needs OVMF, and '%s' was not found",
            ovmf_pairs[0][0]);
  vab_diag_hint(b->ctx, "install the Debian package ovmf");
  return -1;
}

static void free_argv(char **argv) {
  for (size_t i = 0; argv[i] != NULL; i++)
    free(argv[i]);
}

static int start_qemu(struct boot *b) {
  const struct vab_boottest_opts *o = b->opts;
  const struct vab_boot_test *t = b->test;
  struct vab_ctx *ctx = b->ctx;
  char *argv[48] = {NULL};
  size_t n = 0;
  struct buf drive = BUF_INIT, serial = BUF_INIT, net = BUF_INIT;
  struct buf code = BUF_INIT, vars = BUF_INIT;
  int r = -1;

#define ARG(s)                                                      \
  do {                                                              \
    if ((argv[n++] = strdup(s)) == NULL)                            \
      goto nomem;                                                   \
  } while (0)

  unsigned cpus = o->cpus ? o->cpus : 1;
  uint64_t mib = o->memory / (1024 * 1024);
  if (mib < 256)
    mib = 256;
  char number[32];

  ARG("qemu-system-x86_64");
  if (o->accel == VAB_ACCEL_KVM) {
    ARG("-accel");
    ARG("kvm");
    ARG("-cpu");
    ARG("host");
  } else {
    ARG("-accel");
    ARG("tcg");
  }
  ARG("-m");
  snprintf(number, sizeof number, "%llu", (unsigned long long)mib);
  ARG(number);
  ARG("-smp");
  snprintf(number, sizeof number, "%u", cpus);
  ARG(number);
  ARG("-nodefaults");
  ARG("-display");
  ARG("none");
  ARG("-monitor");
  ARG("none");

  if (o->firmware == VAB_FW_UEFI) {
    if (buf_puts(&code, "if=pflash,format=raw,unit=0,readonly=on,file=") < 0 ||
        qemu_option_file_name(&code, b->ovmf_code) < 0 ||
        buf_puts(&vars, "if=pflash,format=raw,unit=1,file=") < 0 ||
        qemu_option_file_name(&vars, b->vars) < 0)
      goto nomem;
    ARG("-drive");
    ARG(code.data);
    ARG("-drive");
    ARG(vars.data);
  }

  if (buf_puts(&serial, "file,id=serial0,path=") < 0 ||
      qemu_escape(&serial, o->serial_log_path) < 0)
    goto nomem;
  ARG("-chardev");
  ARG(serial.data);
  ARG("-serial");
  ARG("chardev:serial0");

  if (buf_puts(&drive, "if=virtio,format=qcow2,cache=unsafe,file=") < 0 ||
      qemu_option_file_name(&drive, b->overlay) < 0)
    goto nomem;
  ARG("-drive");
  ARG(drive.data);

  if (buf_puts(&net, "user,id=net0") < 0)
    goto nomem;
  if (t->has_http &&
      buf_printf(&net, ",hostfwd=tcp:127.0.0.1:%u-:%u", b->http_host_port,
                 t->http_port) < 0)
    goto nomem;
  if (t->has_tcp &&
      buf_printf(&net, ",hostfwd=tcp:127.0.0.1:%u-:%u", b->tcp_host_port,
                 t->tcp_port) < 0)
    goto nomem;
  ARG("-netdev");
  ARG(net.data);
  ARG("-device");
  ARG("virtio-net-pci,netdev=net0");
#undef ARG

  memset(b->qemu_lines, 0, sizeof b->qemu_lines);
  b->qemu_partial_len = 0;
  if (subprocess_start(&b->qemu, argv, NULL) < 0) {
    vab_error_errno(ctx, VAB_E_SUBPROCESS, errno,
                    "cannot start qemu-system-x86_64");
    goto out;
  }
  fcntl(b->qemu.output_fd, F_SETFL,
        fcntl(b->qemu.output_fd, F_GETFL) | O_NONBLOCK);
  r = 0;
  goto out;
nomem:
  vab_error(ctx, VAB_E_NOMEM, "out of memory");
out:
  free_argv(argv);
  buf_release(&drive);
  buf_release(&serial);
  buf_release(&net);
  buf_release(&code);
  buf_release(&vars);
  return r;
}

static void qemu_line(struct boot *b, const char *line) {
  vab_log(b->ctx, VAB_LOG_DEBUG, "qemu: %s", line);
  memmove(b->qemu_lines[0], b->qemu_lines[1], sizeof b->qemu_lines[0] * 2);
  snprintf(b->qemu_lines[2], sizeof b->qemu_lines[2], "%s", line);
}

/* Read what qemu wrote so far without blocking; log it line by line. */
static void drain_qemu_output(struct boot *b) {
  if (b->qemu.output_fd < 0)
    return;
  char chunk[1024];
  for (;;) {
    ssize_t n = read(b->qemu.output_fd, chunk, sizeof chunk);
    if (n <= 0)
      break;
    for (ssize_t i = 0; i < n; i++) {
      char c = chunk[i];
      if (c == '\n' || b->qemu_partial_len == sizeof b->qemu_partial - 1) {
        b->qemu_partial[b->qemu_partial_len] = '\0';
        if (b->qemu_partial_len > 0)
          qemu_line(b, b->qemu_partial);
        b->qemu_partial_len = 0;
      }
      if (c != '\n' && c != '\r')
        b->qemu_partial[b->qemu_partial_len++] = c;
    }
  }
}

/* Has qemu exited?  Reaps it and fills status if so. */
static bool qemu_exited(struct boot *b, int *status) {
  if (b->qemu.pid <= 0)
    return true;
  pid_t r = waitpid(b->qemu.pid, status, WNOHANG);
  if (r == b->qemu.pid) {
    b->qemu.pid = 0;
    return true;
  }
  return false;
}

static void stop_qemu(struct boot *b) {
  if (b->qemu.pid > 0 || b->qemu.output_fd >= 0) {
    drain_qemu_output(b);
    subprocess_kill(&b->qemu);
  }
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

/* Append the serial log's last lines to b, without terminal escapes. */
static void append_serial_tail(struct buf *out, const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    buf_printf(out, "\nserial log '%s': %s", path, strerror(errno));
    return;
  }
  struct stat st;
  char *data = malloc(65536);
  ssize_t n = -1;
  if (data != NULL && fstat(fd, &st) == 0) {
    off_t start = st.st_size > 65536 ? st.st_size - 65536 : 0;
    n = pread(fd, data, 65536, start);
  }
  close(fd);
  if (n < 0) {
    buf_printf(out, "\nserial log '%s': cannot read it", path);
    free(data);
    return;
  }
  /* Clean copy: drop ESC [ ... letter sequences and control bytes. */
  size_t len = 0;
  for (ssize_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)data[i];
    if (c == 0x1b) {
      if (i + 1 < n && data[i + 1] == '[') {
        i += 2;
        while (i < n && !((data[i] >= 'A' && data[i] <= 'Z') ||
                          (data[i] >= 'a' && data[i] <= 'z')))
          i++;
      }
      continue;
    }
    if (c == '\n' || c == '\t' || c >= 0x20)
      data[len++] = (char)c;
  }
  while (len > 0 && data[len - 1] == '\n')
    len--;
  size_t start = len;
  int lines = 0;
  while (start > 0) {
    if (data[start - 1] == '\n' && ++lines == SERIAL_TAIL_LINES)
      break;
    start--;
  }
  while (start < len && data[start] == '\n')
    start++;
  if (len == 0) {
    buf_printf(out, "\nserial log '%s' is empty", path);
  } else {
    buf_printf(out, "\nlast lines of the serial log '%s':\n", path);
    buf_append(out, data + start, len - start);
  }
  free(data);
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
  append_serial_tail(&m, b->opts->serial_log_path);
  vab_error_at(b->ctx, VAB_E_TEST, &b->test->mark, "%s",
               m.data ? m.data : what);
  buf_release(&m);
  return -1;
}

static void cleanup(struct boot *b) {
  stop_qemu(b);
  if (b->serial_fd >= 0)
    close(b->serial_fd);
  if (b->overlay[0] != '\0')
    unlink(b->overlay);
  if (b->vars[0] != '\0')
    unlink(b->vars);
}

static bool all_passed(const struct boot *b) {
  return (!b->serial.wanted || b->serial.passed) &&
         (!b->http.wanted || b->http.passed) &&
         (!b->tcp.wanted || b->tcp.passed);
}

/* Start qemu; when a forwarded port was taken between the probe and
 * qemu's bind, pick new ports and try again. */
static int boot(struct boot *b) {
  for (int attempt = 1;; attempt++) {
    if ((b->test->has_http && find_free_port(b->ctx, &b->http_host_port) < 0) ||
        (b->test->has_tcp && find_free_port(b->ctx, &b->tcp_host_port) < 0))
      return -1;
    if (start_qemu(b) < 0)
      return -1;
    /* A bad forwarding rule makes qemu exit at once. */
    int status = 0;
    for (int i = 0; i < 10 && !qemu_exited(b, &status); i++) {
      struct timespec ts = {0, 50 * 1000000};
      nanosleep(&ts, NULL);
    }
    drain_qemu_output(b);
    if (b->qemu.pid > 0)
      return 0;
    stop_qemu(b);
    bool port_taken = strstr(b->qemu_lines[2], "host forwarding") != NULL;
    if (!port_taken || attempt == QEMU_START_ATTEMPTS) {
      char how[96];
      subprocess_describe_status(status, how, sizeof how);
      return vab_error(b->ctx, VAB_E_SUBPROCESS,
                       "qemu-system-x86_64 failed to start (%s): %s", how,
                       b->qemu_lines[2][0] ? b->qemu_lines[2] : "no output");
    }
  }
}

int vab_boottest_run(struct vab_ctx *ctx, const struct vab_boottest_opts *opts,
                     const struct vab_boot_test *test,
                     struct vab_boottest_result *result) {
  struct boot b;
  memset(&b, 0, sizeof b);
  b.ctx = ctx;
  b.opts = opts;
  b.test = test;
  b.qemu.pid = 0;
  b.qemu.output_fd = -1;
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
  if (resolved.firmware == VAB_FW_UEFI && prepare_ovmf(&b) < 0)
    goto out;
  /* This boot's output only, in a new file: a link planted at the name
   * is replaced, so qemu does not write through it. */
  int serial_fd = create_replacing(resolved.serial_log_path, 0644);
  if (serial_fd < 0) {
    vab_error_errno(ctx, VAB_E_IO, errno, "cannot create the serial log '%s'",
                    resolved.serial_log_path);
    goto out;
  }
  close(serial_fd);

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
    drain_qemu_output(&b);
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
    if (qemu_exited(&b, &status)) {
      char how[96], what[512];
      drain_qemu_output(&b);
      subprocess_describe_status(status, how, sizeof how);
      snprintf(what, sizeof what, "qemu exited (%s) after %.0f s%s%s", how,
               now_seconds() - start, b.qemu_lines[2][0] ? ": " : "",
               b.qemu_lines[2]);
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
