/* BLAKE2b (RFC 7693), unkeyed, for content digests: the qcow2 writer's
 * dedup table names each cluster by its 256-bit BLAKE2b digest.
 *
 *   uint8_t d[32];
 *   blake2b(d, sizeof d, data, len);
 */
#ifndef VAB_COMMON_BLAKE2B_H
#define VAB_COMMON_BLAKE2B_H

#include <stddef.h>
#include <stdint.h>

struct blake2b_state {
  uint64_t h[8];
  uint64_t t[2];        /* bytes hashed so far (128-bit counter) */
  uint8_t block[128];   /* input not yet compressed */
  size_t fill;          /* bytes in block */
  size_t out_len;       /* digest length, 1..64 */
};

void blake2b_init(struct blake2b_state *s, size_t out_len);
void blake2b_update(struct blake2b_state *s, const void *data, size_t len);
void blake2b_final(struct blake2b_state *s, uint8_t *out);
/* One call: out gets out_len (1..64) bytes. */
void blake2b(uint8_t *out, size_t out_len, const void *data, size_t len);

#endif
