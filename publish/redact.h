/* Text that came from a registry, made fit for a message: every
 * credential vab sent is masked, control characters are replaced and the
 * length is capped.  A hostile or careless registry that echoes the
 * Authorization header back must not put a secret into vab's errors. */
#ifndef VAB_PUBLISH_REDACT_H
#define VAB_PUBLISH_REDACT_H

#include <stddef.h>

#define REDACT_MASK "[redacted]"

/* Copy in[0..in_len) to out (always NUL-terminated, at most out_len - 1
 * bytes): each occurrence of a secret (empty ones are ignored; the
 * longest wins where several match) becomes REDACT_MASK, each byte that
 * is not printable ASCII becomes '?', and a copy cut short ends in
 * "...".  Secrets are matched in the whole input, so a cut never shows
 * part of one. */
void redact_text(const char *in, size_t in_len, const char *const *secrets,
                 size_t n_secrets, char *out, size_t out_len);

/* A registry error body for a message: " (CODE: message)" from the OCI
 * error JSON ({"errors":[{"code","message"}]}), else " (first line)" of a
 * text body, else "" for an empty body; redacted as above. */
void redact_error_body(const char *body, size_t len,
                       const char *const *secrets, size_t n_secrets,
                       char *out, size_t out_len);

#endif
