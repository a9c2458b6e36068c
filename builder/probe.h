/* The boot test's probes: one attempt of an http or tcp check against a
 * port on 127.0.0.1, with a deadline (builder/boottest.c forwards the
 * guest's ports there and calls these about once a second).  They know no
 * qemu and no guest, so tests run them against a small local server.
 *
 *   http  GET path over HTTP/1.0; passes when the status is the one wanted
 *         and the body holds the text, if one was given;
 *   tcp   passes when the connection brings at least one byte: the service
 *         must speak first (SSH, SMTP, FTP), since slirp accepts every
 *         connection to a forwarded port whether or not the guest listens.
 *
 * A failed attempt says what it saw, in words for the boot test's error. */
#ifndef VAB_BUILDER_PROBE_H
#define VAB_BUILDER_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vab/error.h"

struct probe_http_request {
  uint16_t port;              /* on 127.0.0.1 */
  const char *path;           /* NULL or "": "/" */
  unsigned want_status;
  const char *want_text;      /* NULL: any body */
  size_t max_response;        /* bytes read at most */
  int attempt_ms;             /* the attempt's length, for the messages */
};

struct probe_outcome {
  bool passed;
  bool timed_out;             /* the attempt ran out of time */
  bool answered;              /* an HTTP status line came back */
  int http_status;            /* when answered */
  char seen[512];             /* what a failed attempt saw */
};

/* One attempt of each check, until deadline (now_seconds() time); both
 * also end early when ctx is cancelled. */
void probe_http(const struct vab_ctx *ctx, const struct probe_http_request *req,
                double deadline, struct probe_outcome *out);
/* guest_port and attempt_ms are only for the messages. */
void probe_tcp(const struct vab_ctx *ctx, uint16_t port, uint16_t guest_port,
               int attempt_ms, double deadline, struct probe_outcome *out);

#endif
