/* The growth step behind DEFINE_VECTOR_TYPE. */
#include "common/vector.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

/* The first allocation's size: small lists stay one allocation. */
#define VECTOR_MIN_CAP 8

void *vector_grow(void *ptr, size_t *cap, size_t len, size_t extra,
                  size_t elem_size) {
  if (extra > 0 && *cap - len >= extra)
    return ptr;
  if (extra == 0 || elem_size == 0 || extra > SIZE_MAX - len) {
    errno = ENOMEM;
    return NULL;
  }
  size_t want = len + extra;
  size_t next = *cap <= SIZE_MAX / 2 ? *cap * 2 : SIZE_MAX;
  if (next < VECTOR_MIN_CAP)
    next = VECTOR_MIN_CAP;
  if (next < want)
    next = want;
  if (next > SIZE_MAX / elem_size) {
    /* Doubling overflows: settle for exactly what is asked, if that fits. */
    if (want > SIZE_MAX / elem_size) {
      errno = ENOMEM;
      return NULL;
    }
    next = want;
  }
  void *p = realloc(ptr, next * elem_size);
  if (p == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  *cap = next;
  return p;
}
