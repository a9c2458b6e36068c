/* SHA-256, the digest behind step keys, artifact checksums and manifests.
 * signing/ is the only user of OpenSSL. */
#ifndef VAB_SIGNING_DIGEST_H
#define VAB_SIGNING_DIGEST_H

#include <stddef.h>
#include <stdint.h>
#include "vab/error.h"

struct vab_sha256;

struct vab_sha256 *vab_sha256_new(struct vab_ctx *ctx);
int vab_sha256_update(struct vab_sha256 *h, const void *data, size_t len);
/* Writes 32 bytes and frees h. */
int vab_sha256_final(struct vab_sha256 *h, uint8_t out[32]);
void vab_sha256_free(struct vab_sha256 *h);

/* "sha256:" and 64 lowercase hex digits, as OCI digests and step keys are
 * written, and the NUL. */
#define VAB_SHA256_DIGEST_SIZE 72
/* out = "sha256:HEX" of len bytes at data (data may be NULL when len is 0). */
int vab_sha256_buffer(struct vab_ctx *ctx, const void *data, size_t len,
                      char out[VAB_SHA256_DIGEST_SIZE]);

/* Hash a whole file. */
int vab_sha256_file(struct vab_ctx *ctx, const char *path, uint8_t out[32]);
/* 64 lowercase hex digits and a NUL. */
void vab_hex(const uint8_t *bytes, size_t len, char *out);

#endif
