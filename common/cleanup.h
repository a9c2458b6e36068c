/* Scope-bound cleanup (GCC/clang), in the manner of nbdkit's cleanup.h. */
#ifndef VAB_COMMON_CLEANUP_H
#define VAB_COMMON_CLEANUP_H

#include <stdlib.h>
#include <unistd.h>

static inline void cleanup_free(void *ptr) { free(*(void **)ptr); }
static inline void cleanup_close(int *fd) {
  if (*fd >= 0)
    close(*fd);
}

#define CLEANUP_FREE __attribute__((cleanup(cleanup_free)))
#define CLEANUP_CLOSE __attribute__((cleanup(cleanup_close)))

#endif
