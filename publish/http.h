/* One registry session over the HTTP transport (publish/transport.h):
 * https first and plain HTTP only for loopback hosts or --insecure, the
 * auth dance (anonymous, Basic, Bearer tokens with scopes), retries with
 * backoff, and redirects that never carry credentials to another host.
 * Request bodies come from memory or a read callback, so the session
 * knows nothing of blobs. */
#ifndef VAB_PUBLISH_HTTP_H
#define VAB_PUBLISH_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "publish/transport.h"
#include "vab/error.h"

struct vab_registry_opts;

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

#endif
