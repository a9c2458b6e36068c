/* SHA-256 through OpenSSL's EVP interface. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/io.h"
#include "signing/digest.h"

/* Files are hashed through a buffer of this size, whatever their size. */
#define DIGEST_FILE_BUFFER (256u * 1024)

struct vab_sha256 {
  struct vab_ctx *ctx;
  EVP_MD_CTX *md;
};

struct vab_sha256 *vab_sha256_new(struct vab_ctx *ctx) {
  struct vab_sha256 *h = calloc(1, sizeof *h);
  if (h == NULL) {
    vab_error(ctx, VAB_E_NOMEM, "out of memory");
    return NULL;
  }
  h->ctx = ctx;
  h->md = EVP_MD_CTX_new();
  if (h->md == NULL || EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1) {
    vab_error(ctx, VAB_E_INTERNAL, "cannot start a SHA-256 digest");
    vab_sha256_free(h);
    return NULL;
  }
  return h;
}

int vab_sha256_update(struct vab_sha256 *h, const void *data, size_t len) {
  if (len == 0)
    return 0;
  if (EVP_DigestUpdate(h->md, data, len) != 1)
    return vab_error(h->ctx, VAB_E_INTERNAL, "SHA-256 update failed");
  return 0;
}

int vab_sha256_final(struct vab_sha256 *h, uint8_t out[32]) {
  unsigned int len = 0;
  int ok = EVP_DigestFinal_ex(h->md, out, &len) == 1 && len == 32;
  struct vab_ctx *ctx = h->ctx;
  vab_sha256_free(h);
  if (!ok)
    return vab_error(ctx, VAB_E_INTERNAL, "SHA-256 final failed");
  return 0;
}

void vab_sha256_free(struct vab_sha256 *h) {
  if (h == NULL)
    return;
  EVP_MD_CTX_free(h->md);
  free(h);
}

int vab_sha256_buffer(struct vab_ctx *ctx, const void *data, size_t len,
                      char out[VAB_SHA256_DIGEST_SIZE]) {
  uint8_t raw[32];
  struct vab_sha256 *h = vab_sha256_new(ctx);
  if (h == NULL)
    return -1;
  if (vab_sha256_update(h, data, len) < 0) {
    vab_sha256_free(h);
    return -1;
  }
  if (vab_sha256_final(h, raw) < 0)
    return -1;
  memcpy(out, "sha256:", 7);
  vab_hex(raw, 32, out + 7);
  return 0;
}

int vab_sha256_file(struct vab_ctx *ctx, const char *path, uint8_t out[32]) {
  /* An artifact planted as a FIFO or a device must not block or be read. */
  struct stat st;
  bool not_regular;
  CLEANUP_CLOSE int fd = open_regular_file(path, &st, &not_regular);
  if (fd < 0 && not_regular)
    return vab_error(ctx, VAB_E_IO, "'%s' is not a regular file", path);
  if (fd < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot open '%s'", path);
  CLEANUP_FREE uint8_t *buf = malloc(DIGEST_FILE_BUFFER);
  if (buf == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  struct vab_sha256 *h = vab_sha256_new(ctx);
  if (h == NULL)
    return -1;
  for (;;) {
    ssize_t n = read_full(fd, buf, DIGEST_FILE_BUFFER);
    if (n < 0) {
      int e = errno;
      vab_sha256_free(h);
      return vab_error_errno(ctx, VAB_E_IO, e, "cannot read '%s'", path);
    }
    if (n == 0)
      break;
    if (vab_sha256_update(h, buf, (size_t)n) < 0) {
      vab_sha256_free(h);
      return -1;
    }
    if (vab_cancelled(ctx)) {
      vab_sha256_free(h);
      return vab_check_cancel(ctx);
    }
  }
  return vab_sha256_final(h, out);
}

void vab_hex(const uint8_t *bytes, size_t len, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < len; i++) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 15];
  }
  out[2 * len] = '\0';
}
