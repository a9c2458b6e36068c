/* libFuzzer target: the qcow2 reader.  Each input is a qcow2 file: it is
 * opened, walked by block status, read, and checked.  Hostile input must
 * only ever give diagnostics: any crash, sanitizer report, leak or hang
 * is a bug. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vab/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Per input, so a valid but huge virtual size cannot make a run slow. */
#define MAX_STEPS 2048
#define MAX_BYTES_READ (4u << 20)
#define READ_CHUNK (256u << 10)

static void read_image(struct vab_reader *r) {
  static uint8_t buf[READ_CHUNK];
  uint64_t size = r->info.virtual_size, offset = 0, total = 0;
  for (int step = 0; step < MAX_STEPS && offset < size; step++) {
    uint64_t run;
    bool is_zero;
    if (r->format->block_status(r, offset, size - offset, &run, &is_zero) < 0)
      return;
    if (run == 0 || run > size - offset)
      abort();  /* the convert loop would never end or overrun */
    if (!is_zero && total < MAX_BYTES_READ) {
      size_t n = run < READ_CHUNK ? (size_t)run : READ_CHUNK;
      if (vab_image_pread(r, buf, n, offset) < 0)
        return;
      total += n;
    }
    offset += run;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int fd = memfd_create("fuzz.qcow2", 0);
  if (fd < 0)
    return 0;
  if (write(fd, data, size) != (ssize_t)size) {
    close(fd);
    return 0;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_reader *r = NULL;
  if (ctx != NULL && vab_image_open(ctx, path, "qcow2", 0, &r) == 0) {
    read_image(r);
    struct vab_check_result result;
    r->format->check(r, &result);
  }
  vab_image_close(r);
  vab_ctx_free(ctx);
  close(fd);
  return 0;
}
