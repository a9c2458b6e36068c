/* The image walk of the reader targets (fuzz-image.h). */
#include "fuzz-image.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vab/format.h"

/* Per input. */
#define MAX_RUNS 4096
#define MAX_BYTES_READ (8u << 20)
#define READ_CHUNK (256u << 10)

int fuzz_memfd(const uint8_t *data, size_t size, const char *name,
               char *path, size_t path_len) {
  int fd = memfd_create(name, 0);
  if (fd < 0)
    return -1;
  if (write(fd, data, size) != (ssize_t)size) {
    close(fd);
    return -1;
  }
  snprintf(path, path_len, "/proc/self/fd/%d", fd);
  return fd;
}

static void read_image(struct vab_reader *r) {
  static uint8_t buf[READ_CHUNK];
  uint64_t size = r->info.virtual_size, offset = 0, total = 0;
  for (int runs = 0; runs < MAX_RUNS && offset < size; runs++) {
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

void fuzz_walk_image(const char *path, const char *format) {
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_reader *r = NULL;
  if (ctx != NULL && vab_image_open(ctx, path, format, 0, &r) == 0) {
    read_image(r);
    struct vab_check_result result;
    r->format->check(r, &result);
  }
  vab_image_close(r);
  vab_ctx_free(ctx);
}
