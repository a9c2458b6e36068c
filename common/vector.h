/* Typed growable arrays.
 *
 *   DEFINE_VECTOR_TYPE(name_vector, char *);
 *   struct name_vector v = VECTOR_INIT;
 *   if (name_vector_append(&v, s) < 0) ... errno is ENOMEM
 *   for (size_t i = 0; i < v.len; i++) use v.ptr[i];
 *   name_vector_reset(&v);   frees the array, not what the elements hold
 *
 * Capacity doubles, so n appends cost O(n) copying; every size computation
 * is checked for overflow.  On failure nothing changes: ptr, len and cap
 * are as before.
 */
#ifndef VAB_COMMON_VECTOR_H
#define VAB_COMMON_VECTOR_H

#include <stddef.h>
#include <stdlib.h>

#define VECTOR_INIT {NULL, 0, 0}

/* Make ptr (room for *cap elements of elem_size bytes, len in use) hold at
 * least extra > 0 more: ptr itself if it has the room, else ptr grown to
 * twice *cap, or to len + extra if that is more.  Returns the array and
 * updates *cap, or NULL with errno ENOMEM (also on overflow), leaving ptr
 * allocated as it was.  The macros use it; so does a struct whose array
 * and count fields are named by an API. */
void *vector_grow(void *ptr, size_t *cap, size_t len, size_t extra,
                  size_t elem_size);

#define DEFINE_VECTOR_TYPE(name, type)                                       \
  struct name {                                                              \
    type *ptr;                                                               \
    size_t len;                                                              \
    size_t cap;                                                              \
  };                                                                         \
  /* Room for extra more elements without another allocation. */            \
  static inline __attribute__((unused)) int name##_reserve(struct name *v,   \
                                                           size_t extra) {   \
    if (extra == 0)                                                          \
      return 0;                                                              \
    type *p = vector_grow(v->ptr, &v->cap, v->len, extra, sizeof(type));     \
    if (p == NULL)                                                           \
      return -1;                                                             \
    v->ptr = p;                                                              \
    return 0;                                                                \
  }                                                                          \
  static inline __attribute__((unused)) int name##_append(struct name *v,    \
                                                          type elem) {       \
    if (name##_reserve(v, 1) < 0)                                            \
      return -1;                                                             \
    v->ptr[v->len++] = elem;                                                 \
    return 0;                                                                \
  }                                                                          \
  static inline __attribute__((unused)) void name##_reset(struct name *v) {  \
    free(v->ptr);                                                            \
    v->ptr = NULL;                                                           \
    v->len = v->cap = 0;                                                     \
  }                                                                          \
  struct name

#endif
