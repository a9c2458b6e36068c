/* Whole-transfer wrappers of read, pread, write and pwrite. */
#include "common/io.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <unistd.h>

/* offset < 0: the plain call at the file offset; else the positioned one. */
static ssize_t read_loop(int fd, void *buf, size_t len, int64_t offset) {
  if (len > SSIZE_MAX || (offset >= 0 && (uint64_t)offset > INT64_MAX - len)) {
    errno = EINVAL;
    return -1;
  }
  unsigned char *p = buf;
  size_t done = 0;
  while (done < len) {
    ssize_t n = offset < 0 ? read(fd, p + done, len - done)
                           : pread(fd, p + done, len - done,
                                   (off_t)(offset + (int64_t)done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    if (n == 0)
      break;
    done += (size_t)n;
  }
  return (ssize_t)done;
}

static int write_loop(int fd, const void *buf, size_t len, int64_t offset) {
  if (offset >= 0 && (uint64_t)offset > INT64_MAX - len) {
    errno = EINVAL;
    return -1;
  }
  const unsigned char *p = buf;
  size_t done = 0;
  while (done < len) {
    ssize_t n = offset < 0 ? write(fd, p + done, len - done)
                           : pwrite(fd, p + done, len - done,
                                    (off_t)(offset + (int64_t)done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    if (n == 0) {  /* no progress and no reason: do not spin */
      errno = EIO;
      return -1;
    }
    done += (size_t)n;
  }
  return 0;
}

ssize_t read_full(int fd, void *buf, size_t len) {
  return read_loop(fd, buf, len, -1);
}

ssize_t pread_full(int fd, void *buf, size_t len, uint64_t offset) {
  if (offset > INT64_MAX) {
    errno = EINVAL;
    return -1;
  }
  return read_loop(fd, buf, len, (int64_t)offset);
}

int write_full(int fd, const void *buf, size_t len) {
  return write_loop(fd, buf, len, -1);
}

int pwrite_full(int fd, const void *buf, size_t len, uint64_t offset) {
  if (offset > INT64_MAX) {
    errno = EINVAL;
    return -1;
  }
  return write_loop(fd, buf, len, (int64_t)offset);
}
