#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
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

static int open_regular(const char *path, int extra_flags, struct stat *st,
                        bool *not_regular) {
  *not_regular = false;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY |
                extra_flags);
  if (fd < 0) {
    /* O_NOFOLLOW on a symbolic link. */
    if (errno == ELOOP && (extra_flags & O_NOFOLLOW))
      *not_regular = true;
    return -1;
  }
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

int open_regular_file(const char *path, struct stat *st, bool *not_regular) {
  return open_regular(path, 0, st, not_regular);
}

int open_regular_file_nofollow(const char *path, struct stat *st,
                               bool *not_regular) {
  return open_regular(path, O_NOFOLLOW, st, not_regular);
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  remove(path);  /* a file, or a folder already emptied (FTW_DEPTH) */
  return 0;
}

/* FTW_MOUNT: a file system mounted inside the tree (a guest's disk, a bind
 * mount someone left there) is not ours to empty: stop at its mount point. */
void remove_tree(const char *path) {
  nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

const char *path_base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/* The folder part of path, malloc'd ("." for a bare name). */
static char *folder_of(const char *path) {
  const char *base = path_base_name(path);
  if (base == path)
    return strdup(".");
  if (base == path + 1)
    return strdup("/");
  return strndup(path, (size_t)(base - path - 1));
}

/* Remove the entries of a folder named ".HEAD" SEP "XXXXXX" whose owner
 * is gone: regular files (folders false) or folders (true, removed whole;
 * parent is the folder's path).  Each owner holds an exclusive flock on
 * its entry for as long as it lives, and the kernel drops it when the
 * process dies (SIGKILL included), so a lock taken here with LOCK_NB
 * proves the owner dead, whatever its pid became.  Called with the folder
 * locked, so no owner is between creating its entry and locking it.
 * Links, and entries of the other type, are left alone. */
static void remove_unlocked(int dir_fd, const char *parent, const char *head,
                            const char *sep, bool folders) {
  int scan_fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (scan_fd < 0)
    return;
  DIR *dir = fdopendir(scan_fd);
  if (dir == NULL) {
    close(scan_fd);
    return;
  }
  size_t head_len = strlen(head), sep_len = strlen(sep);
  int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
              (folders ? O_DIRECTORY : O_NONBLOCK | O_NOCTTY);
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    const char *name = e->d_name;
    if (name[0] != '.' || strncmp(name + 1, head, head_len) != 0 ||
        strncmp(name + 1 + head_len, sep, sep_len) != 0 ||
        strlen(name + 1 + head_len + sep_len) != 6)
      continue;
    int fd = openat(dir_fd, name, flags);
    if (fd < 0)
      continue;
    struct stat st;
    char *path = NULL;
    if (fstat(fd, &st) == 0 && (folders ? S_ISDIR(st.st_mode)
                                        : S_ISREG(st.st_mode)) &&
        flock(fd, LOCK_EX | LOCK_NB) == 0) {
      if (!folders)
        unlinkat(dir_fd, name, 0);
      else if (asprintf(&path, "%s/%s", parent, name) >= 0)
        remove_tree(path);
    }
    free(path);
    close(fd);
  }
  closedir(dir);
}

/* Open folder and take its lock, which orders cleaners and writers: a
 * writer's temporary is locked before any cleaner can see it.  Best
 * effort: -1 for a folder that cannot be opened; *locked false when it
 * stays locked for 2 s (anyone who can read it can lock it), and then it
 * gets no cleaning this time. */
static int lock_folder(const char *folder, bool *locked) {
  int dir_fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  *locked = false;
  for (int tries = 0; dir_fd >= 0 && !*locked && tries < 200; tries++) {
    *locked = flock(dir_fd, LOCK_EX | LOCK_NB) == 0;
    if (!*locked) {
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  }
  return dir_fd;
}

/* The end of a creation under the folder's lock (dir_fd, or -1): drop the
 * lock; on failure (fd -1) free *name, NULL it and set errno to err. */
static int created(int dir_fd, int fd, char **name, int err) {
  if (dir_fd >= 0)
    close(dir_fd);
  if (fd < 0) {
    free(*name);
    *name = NULL;
    errno = err;
  }
  return fd;
}

int create_temp_beside(const char *dst, char **tmp) {
  const char *base = path_base_name(dst);
  int dir_len = (int)(base - dst);
  size_t len = strlen(dst) + sizeof "/..vab-XXXXXX";
  *tmp = malloc(len);
  char *folder = folder_of(dst);
  if (*tmp == NULL || folder == NULL) {
    free(*tmp);
    free(folder);
    *tmp = NULL;
    errno = ENOMEM;
    return -1;
  }
  snprintf(*tmp, len, "%.*s.%s.vab-XXXXXX", dir_len, dst, base);
  bool dir_locked;
  int dir_fd = lock_folder(folder, &dir_locked);
  free(folder);
  if (dir_locked)
    remove_unlocked(dir_fd, NULL, base, ".vab-", false);
  /* mkostemp creates with O_EXCL: a planted link at the name is never
   * followed. */
  int fd = mkostemp(*tmp, O_CLOEXEC);
  int e = errno;
  if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
    e = errno;
    close(fd);
    unlink(*tmp);
    fd = -1;
  }
  return created(dir_fd, fd, tmp, e);
}

int create_locked_folder(const char *parent, const char *prefix,
                         char **path) {
  *path = NULL;
  if (asprintf(path, "%s/.%s-XXXXXX", parent, prefix) < 0) {
    *path = NULL;
    errno = ENOMEM;
    return -1;
  }
  bool dir_locked;
  int dir_fd = lock_folder(parent, &dir_locked);
  if (dir_locked)
    remove_unlocked(dir_fd, parent, prefix, "-", true);
  int fd = -1;
  int e = 0;
  if (mkdtemp(*path) == NULL) {
    e = errno;
  } else {
    fd = open(*path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) {
      e = errno;
      if (fd >= 0)
        close(fd);
      fd = -1;
      rmdir(*path);
    }
  }
  return created(dir_fd, fd, path, e);
}

int create_replacing(const char *path, mode_t mode) {
  char *tmp = NULL;
  int fd = create_temp_beside(path, &tmp);
  if (fd < 0)
    return -1;
  if (fchmod(fd, mode) < 0 || rename(tmp, path) < 0) {
    int e = errno;
    close(fd);
    unlink(tmp);
    free(tmp);
    errno = e;
    return -1;
  }
  free(tmp);
  return fd;
}

int sync_parent_folder(const char *path) {
  char *folder = folder_of(path);
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

int commit_temp(int fd, const char *tmp, const char *dst, struct stat *st,
                enum temp_commit_step *failed) {
  struct stat ignored;
  enum temp_commit_step step = TEMP_COMMIT_SYNC;
  if (fsync(fd) < 0 || fstat(fd, st != NULL ? st : &ignored) < 0)
    goto unlink_tmp;
  step = TEMP_COMMIT_RENAME;
  if (rename(tmp, dst) < 0)
    goto unlink_tmp;
  if (close(fd) < 0) {
    int e = errno;
    unlink(dst);
    *failed = TEMP_COMMIT_CLOSE;
    errno = e;
    return -1;
  }
  if (sync_parent_folder(dst) < 0) {
    *failed = TEMP_COMMIT_SYNC_FOLDER;
    return -1;
  }
  return 0;
unlink_tmp:;
  int e = errno;
  unlink(tmp);
  close(fd);
  *failed = step;
  errno = e;
  return -1;
}
