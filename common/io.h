/* Whole transfers on a file descriptor: each call loops over short reads
 * and writes and retries EINTR, so callers see either everything, the end
 * of the file, or an error.
 *
 *   ssize_t n = read_full(fd, buf, len);   n < len: the file ended
 *   if (n < 0) ... errno says why
 *   if (pwrite_full(fd, buf, len, off) < 0) ... errno says why
 *
 * EAGAIN is an error like any other: these are for blocking descriptors.
 * len must be at most SSIZE_MAX, and offset + len at most INT64_MAX
 * (EINVAL).
 */
#ifndef VAB_COMMON_IO_H
#define VAB_COMMON_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Read until len bytes or the end of the file.  Returns the count read
 * (less than len only at the end of the file), or -1 with errno set; bytes
 * read before an error are in buf but not counted. */
ssize_t read_full(int fd, void *buf, size_t len);

/* The same at offset, without moving the file offset. */
ssize_t pread_full(int fd, void *buf, size_t len, uint64_t offset);

/* Write all len bytes.  0, or -1 with errno set (EIO where the kernel
 * returns 0 without a reason, rather than spinning). */
int write_full(int fd, const void *buf, size_t len);

/* The same at offset, without moving the file offset. */
int pwrite_full(int fd, const void *buf, size_t len, uint64_t offset);

#endif
