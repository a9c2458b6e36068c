/* libFuzzer target: a step cache entry as a registry sends it back
 * (vab build --cache-from): the manifest's checks in publish/step-cache.c
 * and the record's in builder/cache.c.  The input is the manifest JSON, a
 * NUL byte, then the record (the config blob).  An entry accepted must
 * list, for every file of its meta, a layer of that name, size and
 * digest, and no other layer. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "builder/cache.h"
#include "publish/step-cache.h"
#include "vab/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char key[] =
  "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *nul = memchr(data, '\0', size);
  if (nul == NULL)
    return 0;
  size_t manifest_len = (size_t)(nul - data);
  struct vab_ctx *ctx = vab_ctx_new();
  if (ctx == NULL)
    return 0;
  struct vab_remote_cache_entry e;
  char record_digest[72];
  uint64_t record_size = 0;
  if (vab_remote_cache_entry_parse(ctx, "step-fuzz", (const char *)data,
                                   manifest_len, &e, record_digest,
                                   &record_size) == 0) {
    size_t record_len = size - manifest_len - 1;
    e.record = malloc(record_len + 1);
    if (e.record != NULL) {
      memcpy(e.record, nul + 1, record_len);
      e.record[record_len] = '\0';
      e.record_len = record_len;
      struct vab_cache_meta meta;
      char why[640];
      if (vab_cache_check_remote(key, &e, &meta, why, sizeof why) == 0) {
        if (meta.n_files != e.n_layers || strcmp(meta.key, key) != 0)
          abort();
        for (size_t i = 0; i < meta.n_files; i++) {
          size_t found = 0;
          for (size_t j = 0; j < e.n_layers; j++)
            found += strcmp(e.layers[j].name, meta.files[i].name) == 0 &&
                     e.layers[j].size == meta.files[i].size &&
                     strcmp(e.layers[j].digest + 7, meta.files[i].sha256) == 0;
          if (found != 1)
            abort();
        }
      }
    }
  }
  vab_remote_cache_entry_release(&e);
  vab_ctx_free(ctx);
  return 0;
}
