/* Whole small files, and the commit of a writer's temporary, with errors
 * in the context. */
#ifndef VAB_CORE_FILES_H
#define VAB_CORE_FILES_H

#include <stddef.h>
#include <stdint.h>
#include "vab/error.h"

/* Read a whole small file (at most max bytes) into a malloc'd buffer with
 * a NUL after the data. */
int vab_read_small_file(struct vab_ctx *ctx, const char *path, size_t max,
                        uint8_t **data, size_t *len);
/* commit_temp() (common/fsutil.h) of a writer's temporary tmp onto path,
 * with the failing step's error in the context, and the committed file's
 * size in *size (if not NULL).  fd is closed in every case, and nothing
 * is left at tmp. */
int vab_commit_temp(struct vab_ctx *ctx, int fd, const char *tmp,
                    const char *path, uint64_t *size);
/* Write a file atomically (a temporary name beside it, fsync, rename) with
 * the given mode. */
int vab_write_file_atomic(struct vab_ctx *ctx, const char *path,
                          const void *data, size_t len, unsigned mode);

#endif
