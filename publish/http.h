/* One registry session over libcurl: connection reuse, TLS always
 * verified, plain HTTP only for loopback hosts or --insecure, the auth
 * dance (anonymous, Basic, Bearer tokens with scopes), retries with
 * backoff, and redirects that never carry credentials to another host. */
#ifndef VAB_PUBLISH_HTTP_H
#define VAB_PUBLISH_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"
#include "vab/error.h"

struct blob_source;
struct vab_registry_opts;
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

struct http_request {
  const char *method;         /* GET HEAD POST PUT PATCH DELETE */
  const char *url;            /* absolute, or a path under the registry */
  const char *accept;
  const char *content_type;
  const void *body;           /* a memory body... */
  size_t body_len;
  const struct blob_source *src;  /* ...or a range of a blob */
  uint64_t src_offset, src_len;
  bool count_bytes;           /* add the body to the session's blob bytes */
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

struct registry;

/* Connect to host for repo: pick https (or plain http where allowed),
 * find credentials and log in as GET /v2/ asks.  push asks for
 * pull,push access. */
int registry_open(struct vab_ctx *ctx, const char *host, const char *repo,
                  const struct vab_registry_opts *opts, bool push,
                  struct registry **out);
void registry_close(struct registry *reg);

struct vab_ctx *registry_ctx(const struct registry *reg);
const char *registry_host(const struct registry *reg);
const char *registry_repo(const struct registry *reg);
uint64_t registry_bytes_sent(const struct registry *reg);

/* Send req; 0 when an HTTP answer other than 401 came back (any status:
 * the caller judges it), -1 with an error recorded otherwise.  With
 * no_retry, a transport failure returns -1 with resp->transport_error set
 * and nothing recorded, so the caller can resume. */
int registry_request(struct registry *reg, const struct http_request *req,
                     struct http_response *resp);
void http_response_release(struct http_response *resp);

/* Record "WHAT: HTTP 404 (BLOB_UNKNOWN: blob unknown to registry)". */
int registry_http_error(struct registry *reg, const struct http_response *resp,
                        const char *fmt, ...) VAB_PRINTF(3, 4);

/* text from the registry (a header, a digest, a title) made safe for a
 * message: credentials masked, control characters replaced, capped. */
void registry_scrub(const struct registry *reg, const char *text, char *out,
                    size_t out_len);

/* Attempts a caller that recovers by itself (no_retry) should make, and
 * the wait before attempt number attempt + 1 (a Retry-After value of up
 * to 30 s wins; may be NULL), cancellable; logs why. */
#define REGISTRY_RETRY_ATTEMPTS 6
/* ... and after a request that hit a time limit, which already waited. */
#define REGISTRY_TIMEOUT_ATTEMPTS 2
int registry_wait_before_retry(struct registry *reg, int attempt,
                               const char *why, const char *retry_after);

/* url with query "name=value" appended (value URL-encoded); malloc'd. */
char *url_append_query(const char *url, const char *name, const char *value);

#endif
