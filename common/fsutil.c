#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"

int mkdir_p(const char *path, mode_t mode, char *failed, size_t failed_len) {
  char *copy = strdup(path);
  if (copy == NULL)
    return -1;
  int r = 0;
  /* Each prefix ending at a '/' in turn, then the whole path. */
  for (char *p = copy + 1;; p++) {
    bool last = *p == '\0';
    if (!last && *p != '/')
      continue;
    *p = '\0';
    if (mkdir(copy, mode) < 0 && errno != EEXIST) {
      if (failed != NULL)
        snprintf(failed, failed_len, "%s", copy);
      r = -1;
      break;
    }
    if (last)
      break;
    *p = '/';
  }
  int saved = errno;
  free(copy);
  errno = saved;
  return r;
}

int open_regular_file(const char *path, struct stat *st, bool *not_regular) {
  *not_regular = false;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0)
    return -1;
  int flags;
  if (fstat(fd, st) < 0)
    goto fail;
  if (!S_ISREG(st->st_mode)) {
    *not_regular = true;
    errno = EINVAL;
    goto fail;
  }
  flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
    goto fail;
  return fd;
fail:;
  int saved = errno;
  close(fd);
  errno = saved;
  return -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  remove(path);  /* a file, or a folder already emptied (FTW_DEPTH) */
  return 0;
}

void remove_tree(const char *path) {
  nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *path_base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

int create_temp_beside(const char *dst, char **tmp) {
  const char *base = path_base_name(dst);
  int dir_len = (int)(base - dst);
  size_t len = strlen(dst) + sizeof "/..vab-XXXXXX";
  *tmp = malloc(len);
  if (*tmp == NULL) {
    errno = ENOMEM;
    return -1;
  }
  snprintf(*tmp, len, "%.*s.%s.vab-XXXXXX", dir_len, dst, base);
  int fd = mkostemp(*tmp, O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    free(*tmp);
    *tmp = NULL;
    errno = e;
  }
  return fd;
}

int sync_parent_folder(const char *path) {
  const char *base = path_base_name(path);
  char *folder = base == path ? strdup(".")
                 : base == path + 1 ? strdup("/")
                                    : strndup(path, (size_t)(base - path - 1));
  if (folder == NULL) {
    errno = ENOMEM;
    return -1;
  }
  int fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int r = fd < 0 || fsync(fd) < 0 ? -1 : 0;
  int e = errno;
  if (fd >= 0)
    close(fd);
  free(folder);
  errno = e;
  return r;
}
