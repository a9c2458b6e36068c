/* Whole small files: read one with a size cap, write one atomically.
 * Manifests, signatures, keys, VM definitions and auth files go through
 * these. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/io.h"
#include "core/files.h"

int vab_read_small_file(struct vab_ctx *ctx, const char *path, size_t max,
                        uint8_t **data, size_t *len) {
  /* Never blocks: a FIFO given as a key, manifest or auth file is refused. */
  struct stat st;
  bool not_regular;
  int fd = open_regular_file(path, &st, &not_regular);
  if (fd < 0 && not_regular)
    return vab_error(ctx, VAB_E_IO, "'%s' is not a regular file", path);
  if (fd < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot open '%s'", path);
  if ((uint64_t)st.st_size > max) {
    close(fd);
    return vab_error(ctx, VAB_E_IO, "'%s' is too large (%lld bytes, at most %zu)",
                     path, (long long)st.st_size, max);
  }
  uint8_t *buf = malloc((size_t)st.st_size + 1);
  if (buf == NULL) {
    close(fd);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  size_t done = (size_t)st.st_size;
  ssize_t n = read_full(fd, buf, done);
  if (n < 0 || (size_t)n != done) {
    int e = n < 0 ? errno : EIO;
    free(buf);
    close(fd);
    return vab_error_errno(ctx, VAB_E_IO, e, "cannot read '%s'", path);
  }
  close(fd);
  buf[done] = 0;
  *data = buf;
  *len = done;
  return 0;
}

int vab_commit_temp(struct vab_ctx *ctx, int fd, const char *tmp,
                    const char *path, uint64_t *size) {
  enum temp_commit_step failed;
  struct stat st;
  if (commit_temp(fd, tmp, path, &st, &failed) == 0) {
    if (size != NULL)
      *size = (uint64_t)st.st_size;
    return 0;
  }
  switch (failed) {
  case TEMP_COMMIT_SYNC:
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot sync '%s'", tmp);
  case TEMP_COMMIT_RENAME:
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot rename '%s' to '%s'",
                           tmp, path);
  case TEMP_COMMIT_CLOSE:
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot close '%s'", path);
  case TEMP_COMMIT_SYNC_FOLDER:
    break;
  }
  return vab_error_errno(ctx, VAB_E_IO, errno, "cannot sync the folder of '%s'",
                         path);
}

int vab_write_file_atomic(struct vab_ctx *ctx, const char *path,
                          const void *data, size_t len, unsigned mode) {
  /* mkostemp makes it 0600, so a key is never readable by others. */
  char *tmp = NULL;
  int fd = create_temp_beside(path, &tmp);
  if (fd < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno,
                           "cannot create a file beside '%s'", path);
  if (fchmod(fd, mode) < 0 || write_full(fd, data, len) < 0) {
    int e = errno;
    unlink(tmp);
    close(fd);
    free(tmp);
    return vab_error_errno(ctx, VAB_E_IO, e, "cannot write '%s'", path);
  }
  int r = vab_commit_temp(ctx, fd, tmp, path, NULL);
  free(tmp);
  return r;
}
