/* The HTTP transport under the registry session (publish/http.c): one
 * libcurl easy handle, reused so that connections are too, with TLS
 * always verified, time limits, no redirect followed, and the request and
 * response callbacks.  It knows no registry, credentials or retries: the
 * session decides what to send and what an answer means.  The only file
 * of vab that includes curl/curl.h. */
#ifndef VAB_PUBLISH_TRANSPORT_H
#define VAB_PUBLISH_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "common/buf.h"
#include "vab/error.h"

struct vab_sha256;

/* Where a successful (200/206) response body goes instead of memory. */
struct http_sink {
  int fd;
  struct vab_sha256 *hash;
  uint64_t written;
  uint64_t limit;       /* more than this in one answer is an error... */
  uint64_t declared;    /* ...as is more than the blob's declared size */
  uint64_t announced;   /* a Content-Length above those, or 0 */
  bool overflow;        /* either happened: the transfer was stopped */
  bool range_ignored;   /* a 200 to a Range request: nothing written */
  int write_errno;
};

/* Read up to len bytes at offset (0 = the body's first byte) of a request
 * body into buf: the count, 0 at its end, or -1 with errno set. */
typedef ssize_t (*http_read_fn)(void *opaque, uint64_t offset, void *buf,
                                size_t len);

struct http_request {
  const char *method;         /* GET HEAD POST PUT PATCH DELETE */
  const char *url;            /* absolute, or a path under the registry */
  const char *accept;
  const char *content_type;
  const void *body;           /* a memory body... */
  size_t body_len;
  http_read_fn read_body;     /* ...or one read by a callback */
  void *read_opaque;
  uint64_t read_len;          /* the callback's body length */
  bool count_bytes;           /* add the body to the bytes sent */
  uint64_t resume_from;       /* send Range: bytes=N- when non-zero */
  const char *content_range;  /* a PATCH chunk's "START-END", or NULL */
  struct http_sink *sink;
  size_t max_body;            /* memory body cap; 0: 64 KiB */
  bool no_retry;              /* one attempt; the caller recovers */
  const char *progress;       /* progress step label, or NULL */
  uint64_t progress_base, progress_total;
};

struct http_response {
  long status;
  char *location;             /* resolved to an absolute URL */
  char *docker_digest;
  char *range;
  char *content_type;
  char *retry_after;
  struct buf www_authenticate;  /* every challenge header, comma-joined */
  struct buf body;
  bool body_too_large;
  bool timed_out;             /* a connect, deadline or low-speed limit hit */
  char transport_error[512];  /* set when no HTTP answer came */
};

void http_response_release(struct http_response *resp);

/* How one exchange ended. */
enum http_result {
  HTTP_ANSWERED,        /* an HTTP answer came (any status) */
  HTTP_RETRYABLE,       /* the server went away or never answered */
  HTTP_TLS_UNTRUSTED,   /* its certificate did not verify */
  HTTP_TLS_HANDSHAKE,   /* no TLS session (perhaps a plain HTTP server) */
  HTTP_FAILED,          /* anything else: out of memory, a callback's stop */
};

struct http_limits {          /* seconds, and bytes per second */
  long connect_timeout, timeout, low_speed_limit, low_speed_time;
};

/* Makes text from or about the server safe for a message (the session
 * masks its credentials). */
typedef void (*http_scrub_fn)(void *opaque, const char *text, char *out,
                              size_t out_len);

struct http_transport_opts {
  const char *label;          /* "registry HOST", for logged warnings */
  const char *ca_cert;        /* or NULL: the system's */
  struct http_limits limits;
  http_scrub_fn scrub;
  void *scrub_opaque;
};

struct http_transport;

/* libcurl's global set-up, once per process whatever the threads; undone
 * at exit.  http_transport_new() calls it. */
int http_global_init(struct vab_ctx *ctx);

int http_transport_new(struct vab_ctx *ctx,
                       const struct http_transport_opts *opts,
                       struct http_transport **out);
void http_transport_free(struct http_transport *t);

/* One HTTP exchange, following no redirect: authorization (or NULL) is
 * sent as the Authorization header.  On anything but HTTP_ANSWERED,
 * resp->transport_error says why (scrubbed), except when out of memory.
 * *cancelled tells that ctx was cancelled (or the progress callback
 * stopped) during the transfer. */
enum http_result http_perform(struct http_transport *t,
                              const struct http_request *req, const char *url,
                              const char *authorization,
                              struct http_response *resp, bool *cancelled);

/* libcurl's own words for the last failure, not scrubbed. */
const char *http_transport_last_error(const struct http_transport *t);
/* Request body bytes sent with count_bytes, less those rewound. */
uint64_t http_transport_bytes_sent(const struct http_transport *t);

/* URLs, by libcurl's parser; each malloc'd, NULL when out of memory or
 * not a URL. */
/* url with query "name=value" appended (value URL-encoded). */
char *url_append_query(const char *url, const char *name, const char *value);
/* location (absolute or relative) resolved against base. */
char *url_resolve(const char *base, const char *location);
/* Do a and b have the same scheme, host and port? */
bool url_same_origin(const char *a, const char *b);
bool url_is_plain_http(const char *url);
/* text percent-encoded for a form or a query. */
char *url_escape(const char *text);

#endif
