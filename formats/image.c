/* Opening images: probe the format by its magic, open backing chains with
 * a depth limit, and read guest bytes. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
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

/* What a file that is not regular is, for errors. */
static const char *file_kind(mode_t mode) {
  if (S_ISFIFO(mode))
    return "a FIFO";
  if (S_ISBLK(mode))
    return "a block device";
  if (S_ISCHR(mode))
    return "a character device";
  if (S_ISSOCK(mode))
    return "a socket";
  if (S_ISDIR(mode))
    return "a folder";
  return "not a regular file";
}

/* Clear the O_NONBLOCK that opened fd without waiting for a FIFO's
 * writer: reads of regular files and devices then block as usual. */
static int clear_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0)
    return -1;
  return fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
}

/* Open fd as an image (the descriptor is the reader's from here on, even
 * on failure). */
static int image_open_fd(struct vab_ctx *ctx, int fd, const struct stat *st,
                         const char *path, const char *format_name,
                         unsigned flags, unsigned depth,
                         struct vab_reader **out) {
  const struct vab_format *format = NULL;
  if (format_name != NULL) {
    format = vab_format_by_name(format_name);
    if (format == NULL) {
      close(fd);
      return vab_error(ctx, VAB_E_USAGE, "unknown image format '%s'",
                       format_name);
    }
    if (!(format->caps & VAB_FMT_READ)) {
      close(fd);
      return vab_error(ctx, VAB_E_UNSUPPORTED,
                       "vab cannot read %s images ('%s')", format_name, path);
    }
  }
  uint64_t file_size = (uint64_t)st->st_size;
  if (S_ISBLK(st->st_mode)) {
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
  r->open_flags = flags;
  snprintf(r->info.format, sizeof r->info.format, "%s", format->name);
  r->info.file_size = file_size;
  if (format->reader_open(r) < 0) {
    vab_image_close(r);
    return -1;
  }
  *out = r;
  return 0;
}

int vab_image_open(struct vab_ctx *ctx, const char *path,
                   const char *format_name, unsigned flags,
                   struct vab_reader **out) {
  *out = NULL;
  /* O_NONBLOCK: a FIFO must be refused, not waited on. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot open '%s'", path);
  struct stat st;
  if (fstat(fd, &st) < 0) {
    int e = errno;
    close(fd);
    return vab_error_errno(ctx, VAB_E_IO, e, "cannot stat '%s'", path);
  }
  bool device_ok = S_ISBLK(st.st_mode) && !(flags & VAB_OPEN_REGULAR_ONLY);
  if (!S_ISREG(st.st_mode) && !device_ok) {
    close(fd);
    return vab_error(ctx, VAB_E_USAGE, "'%s' is %s, not a regular file%s",
                     path, file_kind(st.st_mode),
                     S_ISBLK(st.st_mode) ? " (block devices are read only "
                                           "when named on the command line)"
                                         : "");
  }
  if (clear_nonblock(fd) < 0) {
    int e = errno;
    close(fd);
    return vab_error_errno(ctx, VAB_E_IO, e, "cannot open '%s'", path);
  }
  return image_open_fd(ctx, fd, &st, path, format_name, flags, 0, out);
}

/* The folder of path, resolved: what confinement compares against.
 * malloc'd, or NULL with errno set. */
static char *real_folder(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir;
  if (slash == NULL)
    dir = strdup(".");
  else if (slash == path)
    dir = strdup("/");
  else
    dir = strndup(path, (size_t)(slash - path));
  if (dir == NULL)
    return NULL;
  char *real = realpath(dir, NULL);
  free(dir);
  return real;
}

/* Is real (a resolved path) inside the resolved folder? */
static bool path_is_beneath(const char *real, const char *folder) {
  size_t n = strlen(folder);
  if (strcmp(folder, "/") == 0)
    return real[0] == '/';
  return strncmp(real, folder, n) == 0 && real[n] == '/';
}

static int refuse(struct vab_reader *parent, const char *what,
                  const char *name, const char *why) {
  return vab_error(parent->ctx, VAB_E_FORMAT, "'%s' names %s '%s', %s",
                   parent->path, what, name, why);
}

int vab_image_open_backing(struct vab_reader *parent, const char *name,
                           const char *format_name, const char *what,
                           struct vab_reader **out) {
  struct vab_ctx *ctx = parent->ctx;
  *out = NULL;
  if (parent->depth + 1 > MAX_BACKING_DEPTH)
    return vab_error(ctx, VAB_E_FORMAT,
                     "backing chain of '%s' is deeper than %d images "
                     "(does it loop?)",
                     parent->path, MAX_BACKING_DEPTH);
  bool trusted = (parent->open_flags & VAB_OPEN_TRUST_BACKING) != 0;
  char *path = vab_image_relative_path(parent->path, name);
  if (path == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  /* Open first, then check what was opened: a check of the name before
   * the open could be raced by a rename.  O_PATH opens nothing (a device's
   * open can have side effects: /dev/watchdog arms a timer); the file is
   * opened for reading only once it passed. */
  int pfd = open(path, O_PATH | O_CLOEXEC);
  if (pfd < 0) {
    int e = errno;
    vab_error_errno(ctx, VAB_E_IO, e, "cannot open %s '%s' of '%s'", what,
                    path, parent->path);
    free(path);
    return -1;
  }
  struct stat st;
  int r = 0;
  if (fstat(pfd, &st) < 0) {
    r = vab_error_errno(ctx, VAB_E_IO, errno, "cannot stat '%s'", path);
  } else if (!S_ISREG(st.st_mode)) {
    char why[96];
    snprintf(why, sizeof why, "which is %s, not a regular file",
             file_kind(st.st_mode));
    r = refuse(parent, what, name, why);
  } else if (!trusted) {
    char *folder = real_folder(parent->path);
    char *real = realpath(path, NULL);
    struct stat real_st;
    if (folder == NULL || real == NULL) {
      r = vab_error_errno(ctx, VAB_E_IO, errno, "cannot resolve %s '%s' of "
                          "'%s'", what, path, parent->path);
    } else if (!path_is_beneath(real, folder)) {
      char why[PATH_MAX + 64];
      snprintf(why, sizeof why, "which resolves to '%s', outside the folder "
               "'%s' of the image", real, folder);
      r = refuse(parent, what, name, why);
      vab_diag_hint(ctx, "if you trust this image's chain, pass "
                    "--trust-backing (vab convert, vab inspect) or set "
                    "'trust_backing: true' under source.image");
    } else if (stat(real, &real_st) < 0 || real_st.st_dev != st.st_dev ||
               real_st.st_ino != st.st_ino) {
      /* The name now leads elsewhere than the file that was opened. */
      r = refuse(parent, what, name, "which changed while vab opened it");
    }
    free(folder);
    free(real);
  }
  int fd = -1;
  if (r == 0) {
    /* The same inode, reopened for reading through its descriptor. */
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", pfd);
    fd = open(self, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    struct stat fd_st;
    if (fd < 0)
      r = vab_error_errno(ctx, VAB_E_IO, errno, "cannot open %s '%s' of '%s'",
                          what, path, parent->path);
    else if (fstat(fd, &fd_st) < 0 || fd_st.st_dev != st.st_dev ||
             fd_st.st_ino != st.st_ino || clear_nonblock(fd) < 0)
      r = refuse(parent, what, name, "which changed while vab opened it");
  }
  close(pfd);
  if (r < 0) {
    if (fd >= 0)
      close(fd);
    free(path);
    return -1;
  }
  int rc = image_open_fd(ctx, fd, &st, path, format_name, parent->open_flags,
                         parent->depth + 1, out);
  if (rc < 0)
    vab_diag_hint(ctx, "'%s' names '%s' as its %s", parent->path, name, what);
  free(path);
  return rc;
}

int vab_image_read_backing(struct vab_reader *r, void *buf, size_t len,
                           uint64_t offset) {
  uint8_t *out = buf;
  size_t n = 0;
  if (r->backing != NULL) {
    uint64_t bsize = r->backing->info.virtual_size;
    if (offset < bsize)
      n = bsize - offset < len ? (size_t)(bsize - offset) : len;
    if (n > 0 && vab_image_pread(r->backing, out, n, offset) < 0)
      return -1;
  }
  memset(out + n, 0, len - n);
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
