/* libFuzzer target: the build manifest reader (JSON + schema), which
 * `vab verify` and `vab pull` run on files from elsewhere. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "vab/vab.h"
#include "signing/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_manifest m;
  if (vab_manifest_parse(ctx, "fuzz.json", (const char *)data, size, &m) == 0) {
    char *text = vab_manifest_to_json(ctx, &m);
    free(text);
    vab_manifest_release(&m);
  }
  vab_ctx_free(ctx);
  return 0;
}
