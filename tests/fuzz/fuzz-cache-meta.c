/* libFuzzer target: the step cache's meta record (builder/cache.h), read
 * from a cache folder that other builds, users or a damaged disk may have
 * written.  A record that parses must format back to the same bytes and
 * parse again to the same fields. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "builder/cache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct vab_cache_meta meta, again;
  char err[128];
  if (vab_cache_meta_parse((const char *)data, size, &meta, err,
                           sizeof err) < 0)
    return 0;
  struct buf out = BUF_INIT;
  if (vab_cache_meta_format(&meta, &out) < 0)
    abort();
  if (out.len != size || memcmp(out.data, data, size) != 0)
    abort();
  if (vab_cache_meta_parse(out.data, out.len, &again, err, sizeof err) < 0 ||
      memcmp(&meta, &again, sizeof meta) != 0)
    abort();
  buf_release(&out);
  return 0;
}
