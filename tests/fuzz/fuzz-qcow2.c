/* libFuzzer target: the qcow2 reader.  Each input is a qcow2 file: it is
 * opened, walked by block status, read, and checked.  Hostile input must
 * only ever give diagnostics: any crash, sanitizer report, leak or hang
 * is a bug. */
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include "fuzz-image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[64];
  int fd = fuzz_memfd(data, size, "fuzz.qcow2", path, sizeof path);
  if (fd < 0)
    return 0;
  fuzz_walk_image(path, "qcow2");
  close(fd);
  return 0;
}
