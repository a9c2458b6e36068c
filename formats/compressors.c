/* The per-thread compressor set behind formats/compressors.h. */
#include "formats/compressors.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct thread_compressors {
  struct libdeflate_compressor *deflate;
  int deflate_level;
  ZSTD_CCtx *zstd;
  uint8_t *pad;
  size_t pad_size;
};

static pthread_key_t compressors_key;
static pthread_once_t compressors_once = PTHREAD_ONCE_INIT;
static int compressors_key_error;

static void compressors_free(void *p) {
  struct thread_compressors *c = p;
  if (c == NULL)
    return;
  libdeflate_free_compressor(c->deflate);
  ZSTD_freeCCtx(c->zstd);
  free(c->pad);
  free(c);
}

static void compressors_key_create(void) {
  compressors_key_error = pthread_key_create(&compressors_key,
                                             compressors_free);
}

static bool key_ready(void) {
  return pthread_once(&compressors_once, compressors_key_create) == 0 &&
         compressors_key_error == 0;
}

static struct thread_compressors *thread_compressors(void) {
  if (!key_ready())
    return NULL;
  struct thread_compressors *c = pthread_getspecific(compressors_key);
  if (c == NULL) {
    c = calloc(1, sizeof *c);
    if (c == NULL)
      return NULL;
    if (pthread_setspecific(compressors_key, c) != 0) {
      free(c);
      return NULL;
    }
  }
  return c;
}

struct libdeflate_compressor *vab_thread_deflate(int level) {
  struct thread_compressors *c = thread_compressors();
  if (c == NULL)
    return NULL;
  if (c->deflate == NULL || c->deflate_level != level) {
    libdeflate_free_compressor(c->deflate);
    c->deflate = libdeflate_alloc_compressor(level);
    c->deflate_level = level;
  }
  return c->deflate;
}

ZSTD_CCtx *vab_thread_zstd(void) {
  struct thread_compressors *c = thread_compressors();
  if (c == NULL)
    return NULL;
  if (c->zstd == NULL)
    c->zstd = ZSTD_createCCtx();
  return c->zstd;
}

const uint8_t *vab_thread_zero_padded(const void *data, size_t len,
                                      size_t size) {
  struct thread_compressors *c = thread_compressors();
  if (c == NULL || len > size)
    return NULL;
  if (c->pad_size < size) {
    free(c->pad);
    c->pad = malloc(size);
    c->pad_size = c->pad != NULL ? size : 0;
    if (c->pad == NULL)
      return NULL;
  }
  memcpy(c->pad, data, len);
  memset(c->pad + len, 0, size - len);
  return c->pad;
}

void vab_thread_compressors_release(void) {
  if (!key_ready())
    return;
  struct thread_compressors *c = pthread_getspecific(compressors_key);
  if (c != NULL) {
    pthread_setspecific(compressors_key, NULL);
    compressors_free(c);
  }
}
