/* File sinks: appends with pwrite() at the current end, holes by moving
 * the end without writing (the core truncates the file to its end).
 *
 * Appends start the kernel's writeback every WRITEBACK_STEP bytes
 * (sync_file_range, a hint), so that the fsync() before the final rename
 * finds little left to write and dirty pages do not pile up in memory
 * for a large image. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "common/io.h"
#include "vab/format.h"

static int fd_pwrite_all(struct vab_sink *s, const void *buf, size_t len,
                         uint64_t offset) {
  if (pwrite_full(s->fd, buf, len, offset) < 0)
    return vab_error_errno(s->ctx, VAB_E_IO, errno,
                           "cannot write '%s' (%zu bytes at offset %llu)",
                           s->name != NULL ? s->name : "the output", len,
                           (unsigned long long)offset);
  return 0;
}

#define WRITEBACK_STEP (32u << 20)

static int fd_write(struct vab_sink *s, const void *buf, size_t len) {
  if (fd_pwrite_all(s, buf, len, s->offset) < 0)
    return -1;
  s->offset += len;
  if (s->offset - s->writeback_from >= WRITEBACK_STEP) {
    (void)sync_file_range(s->fd, (off_t)s->writeback_from,
                          (off_t)(s->offset - s->writeback_from),
                          SYNC_FILE_RANGE_WRITE);
    s->writeback_from = s->offset;
  }
  return 0;
}

static int fd_skip(struct vab_sink *s, uint64_t len) {
  s->offset += len;
  return 0;
}

void vab_sink_init_fd(struct vab_sink *s, struct vab_ctx *ctx, int fd) {
  s->write = fd_write;
  s->pwrite = fd_pwrite_all;
  s->skip = fd_skip;
  s->offset = 0;
  s->writeback_from = 0;
  s->ctx = ctx;
  s->opaque = NULL;
  s->fd = fd;
  s->name = NULL;
}

int vab_sink_write(struct vab_sink *s, const void *buf, size_t len) {
  return s->write(s, buf, len);
}

int vab_sink_pwrite(struct vab_sink *s, const void *buf, size_t len,
                    uint64_t offset) {
  if (s->pwrite == NULL)
    return vab_error(s->ctx, VAB_E_INTERNAL,
                     "positioned write on a stream sink");
  return s->pwrite(s, buf, len, offset);
}

/* A stream sink has no holes: it gets the zeros written out. */
int vab_sink_skip(struct vab_sink *s, uint64_t len) {
  if (s->skip != NULL)
    return s->skip(s, len);
  static const uint8_t zeros[65536];
  while (len > 0) {
    size_t n = len < sizeof zeros ? (size_t)len : sizeof zeros;
    if (s->write(s, zeros, n) < 0)
      return -1;
    len -= n;
  }
  return 0;
}
