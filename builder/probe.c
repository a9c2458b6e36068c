/* The boot test's http and tcp probes (see probe.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "builder/probe.h"
#include "common/buf.h"
#include "common/clock.h"

/* Connect to 127.0.0.1:port, waiting at most until deadline. */
static int connect_local(uint16_t port, double deadline, char *why,
                         size_t why_len, bool *timed_out) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    snprintf(why, why_len, "cannot create a socket: %s", strerror(errno));
    return -1;
  }
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
    if (errno != EINPROGRESS) {
      snprintf(why, why_len, "connection failed: %s", strerror(errno));
      close(fd);
      return -1;
    }
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    int wait_ms = (int)((deadline - now_seconds()) * 1000);
    int err = 0;
    socklen_t elen = sizeof err;
    if (wait_ms < 0 || poll(&pfd, 1, wait_ms) <= 0) {
      *timed_out = true;
      snprintf(why, why_len, "connection timed out");
      close(fd);
      return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0) {
      snprintf(why, why_len, "cannot learn how the connection went: %s",
               strerror(errno));
      close(fd);
      return -1;
    }
    if (err != 0) {
      snprintf(why, why_len, "connection failed: %s", strerror(err));
      close(fd);
      return -1;
    }
  }
  return fd;
}

/* Read into out until EOF, the cap or the deadline.  Returns 1 at EOF, 0
 * at the deadline, the cap or a cancel, -1 on an error (errno set). */
static int read_until(const struct vab_ctx *ctx, int fd, struct buf *out,
                      size_t cap, double deadline) {
  char chunk[4096];
  while (out->len < cap) {
    int wait_ms = (int)((deadline - now_seconds()) * 1000);
    if (wait_ms <= 0 || vab_cancelled(ctx))
      return 0;
    if (wait_ms > 100)
      wait_ms = 100;   /* notice Ctrl-C quickly */
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int r = poll(&pfd, 1, wait_ms);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -1;
    if (r == 0)
      continue;
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n < 0)
      return -1;
    if (n == 0)
      return 1;
    if (buf_append(out, chunk, (size_t)n) < 0)
      return -1;
  }
  return 0;
}

/* Printable excerpt of data for an error message. */
static void excerpt(const char *data, size_t len, char *out, size_t out_len) {
  size_t i = 0, j = 0;
  for (; i < len && j + 4 < out_len; i++) {
    unsigned char c = (unsigned char)data[i];
    out[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : ' ';
  }
  if (i < len) {
    memcpy(out + j, "...", 3);
    j += 3;
  }
  out[j] = '\0';
}

void probe_http(const struct vab_ctx *ctx, const struct probe_http_request *q,
                double deadline, struct probe_outcome *o) {
  memset(o, 0, sizeof *o);
  char *seen = o->seen;
  size_t seen_len = sizeof o->seen;
  int fd = connect_local(q->port, deadline, seen, seen_len, &o->timed_out);
  if (fd < 0)
    return;
  struct buf req = BUF_INIT, resp = BUF_INIT;
  const char *path = q->path != NULL && q->path[0] != '\0' ? q->path : "/";
  if (buf_printf(&req,
                 "GET %s%s HTTP/1.0\r\nHost: 127.0.0.1:%u\r\n"
                 "User-Agent: vab-boottest\r\nAccept: */*\r\n"
                 "Connection: close\r\n\r\n",
                 path[0] == '/' ? "" : "/", path, q->port) < 0) {
    snprintf(seen, seen_len, "out of memory");
    goto out;
  }
  /* The request is small: a loopback socket takes it at once. */
  if (send(fd, req.data, req.len, MSG_NOSIGNAL) != (ssize_t)req.len) {
    snprintf(seen, seen_len, "cannot send the request: %s", strerror(errno));
    goto out;
  }
  int r = read_until(ctx, fd, &resp, q->max_response, deadline);
  if (r < 0) {
    snprintf(seen, seen_len, "reading the response failed: %s",
             strerror(errno));
    goto out;
  }
  int major, minor, status;
  if (resp.len == 0) {
    o->timed_out = r == 0;
    if (r == 1)
      snprintf(seen, seen_len,
               "connection closed without a response (nothing listening "
               "yet?)");
    else
      snprintf(seen, seen_len, "no response within the attempt's %g s",
               q->attempt_ms / 1000.0);
    goto out;
  }
  if (sscanf(resp.data, "HTTP/%d.%d %d", &major, &minor, &status) != 3) {
    char ex[80];
    excerpt(resp.data, resp.len, ex, sizeof ex);
    snprintf(seen, seen_len, "a response that is not HTTP: '%s'", ex);
    goto out;
  }
  o->answered = true;
  o->http_status = status;
  const char *body = memmem(resp.data, resp.len, "\r\n\r\n", 4);
  size_t body_len = 0;
  if (body != NULL) {
    body += 4;
    body_len = resp.len - (size_t)(body - resp.data);
  } else {
    body = "";
  }
  char ex[160];
  excerpt(body, body_len, ex, sizeof ex);
  if ((unsigned)status != q->want_status) {
    snprintf(seen, seen_len, "status %d, body '%s'", status, ex);
    goto out;
  }
  if (q->want_text != NULL &&
      memmem(body, body_len, q->want_text, strlen(q->want_text)) == NULL) {
    if (r == 0 && resp.len >= q->max_response)
      snprintf(seen, seen_len,
               "status %d, text not in the first %zu bytes, body '%s'",
               status, q->max_response, ex);
    else
      snprintf(seen, seen_len, "status %d, body '%s'", status, ex);
    goto out;
  }
  o->passed = true;
out:
  close(fd);
  buf_release(&req);
  buf_release(&resp);
}

void probe_tcp(const struct vab_ctx *ctx, uint16_t port, uint16_t guest_port,
               int attempt_ms, double deadline, struct probe_outcome *o) {
  memset(o, 0, sizeof *o);
  int fd = connect_local(port, deadline, o->seen, sizeof o->seen,
                         &o->timed_out);
  if (fd < 0)
    return;
  struct buf data = BUF_INIT;
  int r = read_until(ctx, fd, &data, 1, deadline);
  if (data.len > 0) {
    o->passed = true;
  } else if (r == 1) {
    snprintf(o->seen, sizeof o->seen,
             "connection closed by the guest without data "
             "(nothing listening on guest port %u?)",
             guest_port);
  } else if (r < 0) {
    snprintf(o->seen, sizeof o->seen, "reading failed: %s", strerror(errno));
  } else {
    o->timed_out = true;
    snprintf(o->seen, sizeof o->seen,
             "connected, but no data within %g s (a tcp check needs a "
             "service that speaks first, such as SSH; use an http check "
             "for web servers)",
             attempt_ms / 1000.0);
  }
  close(fd);
  buf_release(&data);
}
