/* Redaction of registry text before it reaches a message. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common/buf.h"
#include "common/json.h"
#include "publish/redact.h"

/* The longest secret that starts at in[at], or 0. */
static size_t secret_at(const char *in, size_t in_len, size_t at,
                        const char *const *secrets, size_t n_secrets) {
  size_t best = 0;
  for (size_t i = 0; i < n_secrets; i++) {
    if (secrets[i] == NULL)
      continue;
    size_t n = strlen(secrets[i]);
    if (n > best && n <= in_len - at && memcmp(in + at, secrets[i], n) == 0)
      best = n;
  }
  return best;
}

void redact_text(const char *in, size_t in_len, const char *const *secrets,
                 size_t n_secrets, char *out, size_t out_len) {
  if (out_len == 0)
    return;
  out[0] = '\0';
  /* The whole text is redacted first, then cut: a cut can then neither
   * keep the start of a secret nor split a mask. */
  struct buf full = BUF_INIT;
  for (size_t i = 0; i < in_len;) {
    size_t secret = secret_at(in, in_len, i, secrets, n_secrets);
    int r;
    if (secret > 0) {
      r = buf_puts(&full, REDACT_MASK);
      i += secret;
    } else {
      r = buf_putc(&full, in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '?');
      i++;
    }
    if (r < 0) {
      buf_release(&full);
      return;
    }
  }
  static const char ellipsis[] = "...";
  const size_t mask_len = sizeof REDACT_MASK - 1, dots = sizeof ellipsis - 1;
  size_t room = out_len - 1, n = full.len;
  if (n > room) {
    n = room > dots ? room - dots : 0;
    for (size_t back = 1; back < mask_len && back <= n; back++) {
      size_t at = n - back;
      if (full.len - at >= mask_len &&
          memcmp(full.data + at, REDACT_MASK, mask_len) == 0) {
        n = at;
        break;
      }
    }
  }
  if (n > 0)
    memcpy(out, full.data, n);
  if (n < full.len) {
    size_t d = room - n < dots ? room - n : dots;
    memcpy(out + n, ellipsis, d);
    n += d;
  }
  out[n] = '\0';
  buf_release(&full);
}

void redact_error_body(const char *body, size_t len,
                       const char *const *secrets, size_t n_secrets,
                       char *out, size_t out_len) {
  if (out_len == 0)
    return;
  out[0] = '\0';
  if (body == NULL || len == 0)
    return;
  struct buf text = BUF_INIT;
  char err[64];
  struct json_value *root = json_parse(body, len, err, sizeof err);
  const struct json_value *errors = root ? json_get(root, "errors") : NULL;
  bool ok;
  if (errors != NULL && errors->type == JSON_ARRAY && errors->n > 0) {
    const char *code = json_get_string(errors->items[0], "code");
    const char *message = json_get_string(errors->items[0], "message");
    ok = buf_puts(&text, code ? code : "error") == 0 &&
         (message == NULL || (buf_puts(&text, ": ") == 0 &&
                              buf_puts(&text, message) == 0));
  } else {
    /* Plain text such as "404 page not found": its first line. */
    const char *nl = memchr(body, '\n', len);
    ok = buf_append(&text, body, nl ? (size_t)(nl - body) : len) == 0;
  }
  json_free(root);
  if (ok && out_len > 4) {
    /* " (" + text + ")": the brackets stay even when text is cut. */
    out[0] = ' ';
    out[1] = '(';
    redact_text(text.data ? text.data : "", text.len, secrets, n_secrets,
                out + 2, out_len - 3);
    strcat(out, ")");
  }
  buf_release(&text);
}
