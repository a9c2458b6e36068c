/* libFuzzer target: a registry's error body (JSON or text) and any text
 * from a registry, through the parser and the redactor that make it fit
 * for a message.  Input: one byte for the output size, one byte for the
 * number of secrets (0-4), that many '\n'-ended secrets, then the body.
 * Beyond memory errors, it checks what redaction promises: the output is
 * NUL-terminated within its size, printable ASCII only, and shows no
 * secret (for secrets the mask and the replacements cannot spell). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "publish/redact.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SECRETS 4

/* Letters and digits only, and not part of the mask itself. */
static bool checkable(const char *s) {
  if (s[0] == '\0' || strstr(REDACT_MASK, s) != NULL)
    return false;
  for (const char *p = s; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
          (*p >= '0' && *p <= '9')))
      return false;
  return true;
}

static void check(const char *out, size_t out_len, const char *const *secrets,
                  size_t n) {
  size_t len = strnlen(out, out_len);
  if (len >= out_len)
    abort();  /* not terminated within the buffer */
  for (size_t i = 0; i < len; i++)
    if (out[i] < 0x20 || out[i] >= 0x7f)
      abort();
  for (size_t i = 0; i < n; i++)
    if (checkable(secrets[i]) && strstr(out, secrets[i]) != NULL)
      abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  size_t out_len = 1 + data[0] * 2;
  size_t n = data[1] % (MAX_SECRETS + 1);
  data += 2;
  size -= 2;
  char *copy = malloc(size + 1);
  if (copy == NULL)
    return 0;
  memcpy(copy, data, size);
  copy[size] = '\0';
  const char *secrets[MAX_SECRETS];
  size_t found = 0;
  char *p = copy, *end = copy + size;
  while (found < n) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL)
      break;
    *nl = '\0';
    secrets[found++] = p;
    p = nl + 1;
  }
  const char *body = p;
  size_t body_len = (size_t)(end - p);
  char *out = malloc(out_len);
  if (out != NULL) {
    redact_error_body(body, body_len, secrets, found, out, out_len);
    check(out, out_len, secrets, found);
    redact_text(body, body_len, secrets, found, out, out_len);
    check(out, out_len, secrets, found);
  }
  free(out);
  free(copy);
  return 0;
}
