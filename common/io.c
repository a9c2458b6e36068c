/* Whole-transfer wrappers of read, pread, write and pwrite. */
#include "common/io.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

/* One loop for all four: offset < 0 uses the file offset (read, write),
 * else the positioned calls.  Returns the count moved, which is less than
 * len only for a read that met the end of the file, or -1. */
static ssize_t transfer(int fd, void *buf, size_t len, int64_t offset,
                        bool writing) {
  if (len > SSIZE_MAX || (offset >= 0 && (uint64_t)offset > INT64_MAX - len)) {
    errno = EINVAL;
    return -1;
  }
  unsigned char *p = buf;
  size_t done = 0;
  while (done < len) {
    off_t at = (off_t)(offset + (int64_t)done);
    ssize_t n;
    if (writing)
      n = offset < 0 ? write(fd, p + done, len - done)
                     : pwrite(fd, p + done, len - done, at);
    else
      n = offset < 0 ? read(fd, p + done, len - done)
                     : pread(fd, p + done, len - done, at);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    if (n == 0 && writing) {  /* no progress and no reason: do not spin */
      errno = EIO;
      return -1;
    }
    if (n == 0)
      break;
    done += (size_t)n;
  }
  return (ssize_t)done;
}

static int64_t checked_offset(uint64_t offset) {
  if (offset > INT64_MAX) {
    errno = EINVAL;
    return -1;
  }
  return (int64_t)offset;
}

ssize_t read_full(int fd, void *buf, size_t len) {
  return transfer(fd, buf, len, -1, false);
}

ssize_t pread_full(int fd, void *buf, size_t len, uint64_t offset) {
  int64_t at = checked_offset(offset);
  return at < 0 ? -1 : transfer(fd, buf, len, at, false);
}

/* The buffer is only read from: the cast serves the shared loop. */
int write_full(int fd, const void *buf, size_t len) {
  return transfer(fd, (void *)buf, len, -1, true) < 0 ? -1 : 0;
}

int pwrite_full(int fd, const void *buf, size_t len, uint64_t offset) {
  int64_t at = checked_offset(offset);
  return at < 0 || transfer(fd, (void *)buf, len, at, true) < 0 ? -1 : 0;
}
