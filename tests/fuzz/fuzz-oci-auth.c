/* libFuzzer target: what a registry or a token server sends during
 * login, and the credential files vab reads.  The first byte picks the
 * parser: WWW-Authenticate challenges, a token answer, or auth.json. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vab/vab.h"
#include "publish/auth.h"
#include "publish/base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  uint8_t which = data[0] % 4;
  data++;
  size--;
  /* Headers and base64 text are NUL-terminated strings in vab. */
  char *text = malloc(size + 1);
  if (text == NULL)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  if (which == 0) {
    struct auth_challenges ch = {0};
    auth_parse_challenges(text, &ch);
    for (size_t i = 0; i < ch.n; i++) {
      auth_challenge_param(&ch.items[i], "realm");
      auth_challenge_param(&ch.items[i], "scope");
    }
    auth_find_challenge(&ch, "bearer");
    auth_challenges_release(&ch);
  } else if (which == 1) {
    char *token = NULL;
    long expires = 0;
    if (auth_parse_token_response((const char *)data, size, &token,
                                  &expires) == 0)
      free(token);
  } else if (which == 2) {
    struct vab_ctx *ctx = vab_ctx_new();
    struct registry_creds c;
    bool found = false;
    if (auth_creds_from_json(ctx, "fuzz.json", (const char *)data, size,
                             "reg.example:5000", &c, &found) == 0)
      registry_creds_release(&c);
    vab_ctx_free(ctx);
  } else {
    uint8_t *out = NULL;
    size_t len = 0;
    if (base64_decode(text, &out, &len) == 0) {
      char *again = base64_encode(out, len);
      if (again == NULL || strcmp(again, text) != 0)
        abort();  /* decode then encode must give the input back */
      free(again);
      free(out);
    }
  }
  free(text);
  return 0;
}
