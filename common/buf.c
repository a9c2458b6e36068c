#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

int buf_reserve(struct buf *b, size_t extra) {
  size_t limit = b->cap ? b->cap : SIZE_MAX - 1;
  if (extra > limit || b->len > limit - extra) {
    errno = EFBIG;
    return -1;
  }
  size_t need = b->len + extra + 1;
  if (need <= b->alloc)
    return 0;
  size_t alloc = b->alloc ? b->alloc : 64;
  while (alloc < need)
    alloc = alloc > SIZE_MAX / 2 ? need : alloc * 2;
  char *p = realloc(b->data, alloc);
  if (p == NULL) {
    errno = ENOMEM;
    return -1;
  }
  b->data = p;
  b->alloc = alloc;
  b->data[b->len] = '\0';  /* keep "always NUL-terminated" from the first byte */
  return 0;
}

int buf_append(struct buf *b, const void *data, size_t len) {
  if (buf_reserve(b, len) < 0)
    return -1;
  if (len)
    memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
  return 0;
}

int buf_puts(struct buf *b, const char *s) { return buf_append(b, s, strlen(s)); }
int buf_putc(struct buf *b, char c) { return buf_append(b, &c, 1); }

int buf_vprintf(struct buf *b, const char *fmt, va_list ap) {
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(NULL, 0, fmt, copy);
  va_end(copy);
  if (n < 0)
    return -1;
  if (buf_reserve(b, (size_t)n) < 0)
    return -1;
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
  return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int r = buf_vprintf(b, fmt, ap);
  va_end(ap);
  return r;
}

void buf_truncate(struct buf *b, size_t len) {
  if (len < b->len) {
    b->len = len;
    b->data[len] = '\0';
  }
}

char *buf_detach(struct buf *b) {
  char *p = b->data;
  if (p == NULL)
    p = calloc(1, 1);
  b->data = NULL;
  b->len = b->alloc = 0;
  return p;
}

void buf_release(struct buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->alloc = 0;
}

void text_keep_tail(char *out, size_t size, const char *line) {
  if (size < 2)
    return;
  size_t have = strlen(out), add = strlen(line);
  if (add + 2 > size)
    add = size - 2;
  if (have + add + 2 > size) {
    out[0] = '\0';
    have = 0;
  }
  if (have > 0)
    out[have++] = '\n';
  memcpy(out + have, line, add);
  out[have + add] = '\0';
}

char *text_plain_copy(const char *line) {
  size_t len = strlen(line);
  char *plain = malloc(len + 1);
  if (plain == NULL)
    return NULL;
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    if (line[i] == '\033' && i + 1 < len && line[i + 1] == '[') {
      /* Parameters and intermediates, up to the final byte @ to ~. */
      i += 2;
      while (i < len && !(line[i] >= '@' && line[i] <= '~'))
        i++;
      continue;
    }
    if (line[i] != '\r')
      plain[n++] = line[i];
  }
  plain[n] = '\0';
  return plain;
}
