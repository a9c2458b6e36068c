/* libFuzzer target: an image manifest as a registry sends it to
 * `vab pull` (strict JSON, descriptors, annotations), then the checks
 * pull makes on each layer title, and writing it back out. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vab/vab.h"
#include "publish/oci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct vab_ctx *ctx = vab_ctx_new();
  struct oci_manifest m;
  if (oci_manifest_parse(ctx, "fuzz", (const char *)data, size, &m) == 0) {
    for (size_t i = 0; i < m.n_layers; i++) {
      const char *title = oci_annotation_get(&m.layers[i], OCI_TITLE);
      if (title != NULL && oci_title_valid(title) &&
          (strchr(title, '/') != NULL || strcmp(title, "..") == 0))
        abort();  /* a title that could leave the folder got through */
    }
    char *json = oci_manifest_to_json(&m);
    free(json);
    oci_manifest_release(&m);
  }
  vab_ctx_free(ctx);
  return 0;
}
