/* Opening images: probe the format by its magic, open backing chains with
 * a depth limit, and read guest bytes. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vab/error.h"
#include "vab/format.h"
#include "vab/progress.h"
#include "formats/image.h"

uint64_t vab_writer_sector_size(struct vab_writer *w, const char *format) {
  uint64_t size = (w->virtual_size + 511) & ~(uint64_t)511;
  if (size != w->virtual_size)
    vab_log(w->ctx, VAB_LOG_WARNING,
            "%s: virtual size %llu bytes is not a whole number of 512-byte "
            "sectors; writing %llu bytes (the last %llu read as zeros)",
            format, (unsigned long long)w->virtual_size,
            (unsigned long long)size,
            (unsigned long long)(size - w->virtual_size));
  return size;
}

/* Deeper chains are refused: a chain that names itself would recurse
 * forever, and no real build stacks this many layers. */
#define MAX_BACKING_DEPTH 16

/* The reader and a copy of its path, freed together. */
struct image {
  struct vab_reader reader;
  char path[];
};

/* By the first bytes, then by the last 512 (formats with a trailer only),
 * else raw. */
static const struct vab_format *probe_format(int fd, const uint8_t *head,
                                             size_t len, uint64_t file_size) {
  for (size_t i = 0; i < vab_format_count(); i++) {
    const struct vab_format *f = vab_format_at(i);
    if ((f->caps & VAB_FMT_READ) && f->probe != NULL &&
        f->probe(head, len, file_size))
      return f;
  }
  uint8_t tail[512];
  if (file_size >= sizeof tail &&
      pread(fd, tail, sizeof tail, (off_t)(file_size - sizeof tail)) ==
          (ssize_t)sizeof tail) {
    for (size_t i = 0; i < vab_format_count(); i++) {
      const struct vab_format *f = vab_format_at(i);
      if ((f->caps & VAB_FMT_READ) && f->probe_tail != NULL &&
          f->probe_tail(tail, sizeof tail, file_size))
        return f;
    }
  }
  return vab_format_by_name("raw");
}

int vab_image_open(struct vab_ctx *ctx, const char *path,
                   const char *format_name, unsigned depth,
                   struct vab_reader **out) {
  *out = NULL;
  if (depth > MAX_BACKING_DEPTH)
    return vab_error(ctx, VAB_E_FORMAT,
                     "backing chain of '%s' is deeper than %d images "
                     "(does it loop?)",
                     path, MAX_BACKING_DEPTH);
  const struct vab_format *format = NULL;
  if (format_name != NULL) {
    format = vab_format_by_name(format_name);
    if (format == NULL)
      return vab_error(ctx, VAB_E_USAGE, "unknown image format '%s'",
                       format_name);
    if (!(format->caps & VAB_FMT_READ))
      return vab_error(ctx, VAB_E_UNSUPPORTED,
                       "vab cannot read %s images ('%s')", format_name, path);
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot open '%s'", path);
  struct stat st;
  if (fstat(fd, &st) < 0) {
    int e = errno;
    close(fd);
    return vab_error_errno(ctx, VAB_E_IO, e, "cannot stat '%s'", path);
  }
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    close(fd);
    return vab_error(ctx, VAB_E_USAGE, "'%s' is not a regular file", path);
  }
  uint64_t file_size = (uint64_t)st.st_size;
  if (S_ISBLK(st.st_mode)) {
    off_t end = lseek(fd, 0, SEEK_END);
    file_size = end > 0 ? (uint64_t)end : 0;
  }
  if (format == NULL) {
    uint8_t head[4096];
    ssize_t n = pread(fd, head, sizeof head, 0);
    if (n < 0) {
      int e = errno;
      close(fd);
      return vab_error_errno(ctx, VAB_E_IO, e, "cannot read '%s'", path);
    }
    format = probe_format(fd, head, (size_t)n, file_size);
  }
  size_t path_len = strlen(path);
  struct image *img = calloc(1, sizeof *img + path_len + 1);
  if (img == NULL) {
    close(fd);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  memcpy(img->path, path, path_len + 1);
  struct vab_reader *r = &img->reader;
  r->format = format;
  r->ctx = ctx;
  r->fd = fd;
  r->path = img->path;
  r->file_size = file_size;
  r->depth = depth;
  snprintf(r->info.format, sizeof r->info.format, "%s", format->name);
  r->info.file_size = file_size;
  if (format->reader_open(r) < 0) {
    vab_image_close(r);
    return -1;
  }
  *out = r;
  return 0;
}

void vab_image_close(struct vab_reader *r) {
  if (r == NULL)
    return;
  if (r->format->reader_close != NULL)
    r->format->reader_close(r);
  vab_image_close(r->backing);
  if (r->fd >= 0)
    close(r->fd);
  free((struct image *)((char *)r - offsetof(struct image, reader)));
}

int vab_image_pread(struct vab_reader *r, void *buf, size_t len,
                    uint64_t offset) {
  uint64_t size = r->info.virtual_size;
  if (offset > size || len > size - offset)
    return vab_error(r->ctx, VAB_E_INTERNAL,
                     "read of %zu bytes at %llu is past the end of '%s'", len,
                     (unsigned long long)offset, r->path);
  return r->format->pread(r, buf, len, offset);
}

int vab_image_block_status(struct vab_reader *r, uint64_t offset,
                           uint64_t len, uint64_t *run, bool *is_zero) {
  if (r->format->block_status == NULL) {
    *run = len;
    *is_zero = false;
    return 0;
  }
  if (r->format->block_status(r, offset, len, run, is_zero) < 0)
    return -1;
  if (*run == 0 || *run > len)
    return vab_error(r->ctx, VAB_E_INTERNAL,
                     "%s reader returned a bad block status run",
                     r->format->name);
  return 0;
}

char *vab_image_relative_path(const char *image_path, const char *name) {
  if (name[0] == '/')
    return strdup(name);
  const char *slash = strrchr(image_path, '/');
  if (slash == NULL)
    return strdup(name);
  size_t dir_len = (size_t)(slash - image_path) + 1;
  size_t name_len = strlen(name);
  char *out = malloc(dir_len + name_len + 1);
  if (out == NULL)
    return NULL;
  memcpy(out, image_path, dir_len);
  memcpy(out + dir_len, name, name_len + 1);
  return out;
}
