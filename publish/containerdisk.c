/* The containerDisk layer, written as tar by hand: two headers around the
 * qcow2, so the layer streams from the qcow2 itself and no multi-GiB
 * temporary copy is made (libarchive would want the bytes pushed through
 * it, and it is not publish/'s library). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/json.h"
#include "publish/containerdisk.h"

#define BLOCK 512
/* The largest size an 11-digit octal ustar field holds (8 GiB - 1). */
#define USTAR_SIZE_MAX 077777777777ull
#define USTAR_NAME_MAX 99

/* width - 1 octal digits, zero padded, then NUL; callers keep value in
 * range. */
static void put_octal(uint8_t *field, size_t width, uint64_t value) {
  field[width - 1] = '\0';
  for (size_t i = width - 1; i > 0; i--) {
    field[i - 1] = (uint8_t)('0' + (value & 7));
    value >>= 3;
  }
}

/* One ustar header block. */
static void ustar_header(uint8_t block[BLOCK], const char *name, char type,
                         unsigned mode, uint64_t size, int64_t mtime) {
  memset(block, 0, BLOCK);
  memcpy(block, name, strlen(name));
  put_octal(block + 100, 8, mode);
  put_octal(block + 108, 8, CONTAINERDISK_UID);
  put_octal(block + 116, 8, CONTAINERDISK_UID);
  put_octal(block + 124, 12, size);
  put_octal(block + 136, 12, (uint64_t)(mtime < 0 ? 0 : mtime));
  block[156] = (uint8_t)type;
  memcpy(block + 257, "ustar", 6);  /* with its NUL */
  memcpy(block + 263, "00", 2);
  memset(block + 148, ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < BLOCK; i++)
    sum += block[i];
  snprintf((char *)block + 148, 8, "%06o", sum);  /* 6 digits, NUL, ' ' */
  block[155] = ' ';
}

/* Decimal digits of n. */
static size_t digits(size_t n) {
  size_t d = 1;
  while (n >= 10) {
    n /= 10;
    d++;
  }
  return d;
}

/* A PAX record "LEN key=value\n", where LEN counts the whole record,
 * its own digits included. */
static int pax_record(struct buf *b, const char *key, const char *value) {
  size_t body = strlen(key) + strlen(value) + 3;  /* ' ', '=', '\n' */
  size_t len = body + digits(body);
  if (digits(len) != digits(body))
    len = body + digits(len);  /* adding the digits added a digit */
  return buf_printf(b, "%zu %s=%s\n", len, key, value);
}

int containerdisk_tar(struct vab_ctx *ctx, const char *file_name,
                      uint64_t size, int64_t mtime, uint8_t **head,
                      size_t *head_len, uint8_t **tail, size_t *tail_len) {
  char path[512];
  if (snprintf(path, sizeof path, "disk/%s", file_name) >= (int)sizeof path)
    return vab_error(ctx, VAB_E_USAGE, "file name '%s' is too long", file_name);
  struct buf pax = BUF_INIT;
  int r = 0;
  /* PAX extended headers only where ustar cannot say it: long names and
   * disks of 8 GiB or more. */
  if (strlen(path) > USTAR_NAME_MAX)
    r |= pax_record(&pax, "path", path);
  if (size > USTAR_SIZE_MAX) {
    char number[24];
    snprintf(number, sizeof number, "%llu", (unsigned long long)size);
    r |= pax_record(&pax, "size", number);
  }
  if (r != 0) {
    buf_release(&pax);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  size_t pax_blocks = pax.len ? 1 + (pax.len + BLOCK - 1) / BLOCK : 0;
  size_t n_head = (2 + pax_blocks) * BLOCK;
  uint8_t *h = calloc(1, n_head);
  size_t pad = (size_t)((BLOCK - size % BLOCK) % BLOCK);
  size_t n_tail = pad + 2 * BLOCK;
  uint8_t *t = calloc(1, n_tail);
  if (h == NULL || t == NULL) {
    free(h);
    free(t);
    buf_release(&pax);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  ustar_header(h, "disk/", '5', 0555, 0, mtime);
  uint8_t *p = h + BLOCK;
  char short_name[USTAR_NAME_MAX + 1];
  snprintf(short_name, sizeof short_name, "%.*s", USTAR_NAME_MAX, path);
  if (pax.len > 0) {
    ustar_header(p, "disk/PaxHeader", 'x', 0444, pax.len, mtime);
    memcpy(p + BLOCK, pax.data, pax.len);
    p += pax_blocks * BLOCK;
  }
  ustar_header(p, short_name, '0', 0444,
               size > USTAR_SIZE_MAX ? 0 : size, mtime);
  buf_release(&pax);
  *head = h;
  *head_len = n_head;
  *tail = t;
  *tail_len = n_tail;
  return 0;
}

char *containerdisk_config(const char *layer_digest, const char *created,
                           const char *name, const char *version) {
  struct buf b = BUF_INIT;
  int r = buf_puts(&b, "{\"architecture\":\"amd64\",\"os\":\"linux\",\"created\":");
  r |= json_append_string(&b, created);
  r |= buf_puts(&b, ",\"config\":{\"Labels\":{\"io.vab.name\":");
  r |= json_append_string(&b, name);
  r |= buf_puts(&b, ",\"io.vab.version\":");
  r |= json_append_string(&b, version);
  r |= buf_puts(&b, "}},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[");
  r |= json_append_string(&b, layer_digest);
  r |= buf_puts(&b, "]},\"history\":[{\"created\":");
  r |= json_append_string(&b, created);
  r |= buf_puts(&b, ",\"created_by\":\"vab publish --containerdisk\"}]}");
  if (r != 0) {
    buf_release(&b);
    return NULL;
  }
  return buf_detach(&b);
}
