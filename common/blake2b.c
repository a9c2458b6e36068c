/* BLAKE2b as specified in RFC 7693, section 3. */
#include <string.h>

#include "common/blake2b.h"
#include "common/endian.h"

static const uint64_t blake2b_iv[8] = {
  0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL,
  0xa54ff53a5f1d36f1ULL, 0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL,
  0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

/* Message word schedule, RFC 7693 section 2.7. */
static const uint8_t sigma[12][16] = {
  {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
  {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
  {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
  {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
  {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
  {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
  {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
  {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
  {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
  {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
  {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
  {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

static inline uint64_t rotr64(uint64_t x, unsigned n) {
  return (x >> n) | (x << (64 - n));
}

#define G(a, b, c, d, x, y)          \
  do {                               \
    v[a] = v[a] + v[b] + (x);        \
    v[d] = rotr64(v[d] ^ v[a], 32);  \
    v[c] = v[c] + v[d];              \
    v[b] = rotr64(v[b] ^ v[c], 24);  \
    v[a] = v[a] + v[b] + (y);        \
    v[d] = rotr64(v[d] ^ v[a], 16);  \
    v[c] = v[c] + v[d];              \
    v[b] = rotr64(v[b] ^ v[c], 63);  \
  } while (0)

/* The compression function F (RFC 7693 3.2). */
static void compress(struct blake2b_state *s, const uint8_t *block,
                     int last) {
  uint64_t v[16], m[16];
  for (int i = 0; i < 16; i++)
    m[i] = load_le64(block + 8 * i);
  for (int i = 0; i < 8; i++) {
    v[i] = s->h[i];
    v[i + 8] = blake2b_iv[i];
  }
  v[12] ^= s->t[0];
  v[13] ^= s->t[1];
  if (last)
    v[14] = ~v[14];
  for (int r = 0; r < 12; r++) {
    const uint8_t *sg = sigma[r];
    G(0, 4, 8, 12, m[sg[0]], m[sg[1]]);
    G(1, 5, 9, 13, m[sg[2]], m[sg[3]]);
    G(2, 6, 10, 14, m[sg[4]], m[sg[5]]);
    G(3, 7, 11, 15, m[sg[6]], m[sg[7]]);
    G(0, 5, 10, 15, m[sg[8]], m[sg[9]]);
    G(1, 6, 11, 12, m[sg[10]], m[sg[11]]);
    G(2, 7, 8, 13, m[sg[12]], m[sg[13]]);
    G(3, 4, 9, 14, m[sg[14]], m[sg[15]]);
  }
  for (int i = 0; i < 8; i++)
    s->h[i] ^= v[i] ^ v[i + 8];
}

static void add_counter(struct blake2b_state *s, uint64_t n) {
  s->t[0] += n;
  if (s->t[0] < n)
    s->t[1]++;
}

void blake2b_init(struct blake2b_state *s, size_t out_len) {
  memset(s, 0, sizeof *s);
  if (out_len < 1 || out_len > 64)
    out_len = 64;
  s->out_len = out_len;
  for (int i = 0; i < 8; i++)
    s->h[i] = blake2b_iv[i];
  /* Parameter block: digest length, no key, fanout 1, depth 1. */
  s->h[0] ^= 0x01010000ULL ^ (uint64_t)out_len;
}

void blake2b_update(struct blake2b_state *s, const void *data, size_t len) {
  const uint8_t *in = data;
  while (len > 0) {
    /* The last block must go through compress() with the final flag, so a
     * full buffer is compressed only once more input arrives. */
    if (s->fill == sizeof s->block) {
      add_counter(s, sizeof s->block);
      compress(s, s->block, 0);
      s->fill = 0;
    }
    if (s->fill == 0) {
      while (len > sizeof s->block) {
        add_counter(s, sizeof s->block);
        compress(s, in, 0);
        in += sizeof s->block;
        len -= sizeof s->block;
      }
    }
    size_t take = sizeof s->block - s->fill;
    if (take > len)
      take = len;
    memcpy(s->block + s->fill, in, take);
    s->fill += take;
    in += take;
    len -= take;
  }
}

void blake2b_final(struct blake2b_state *s, uint8_t *out) {
  add_counter(s, s->fill);
  memset(s->block + s->fill, 0, sizeof s->block - s->fill);
  compress(s, s->block, 1);
  for (size_t i = 0; i < s->out_len; i++)
    out[i] = (uint8_t)(s->h[i / 8] >> (8 * (i % 8)));
}

void blake2b(uint8_t *out, size_t out_len, const void *data, size_t len) {
  struct blake2b_state s;
  blake2b_init(&s, out_len);
  blake2b_update(&s, data, len);
  blake2b_final(&s, out);
}
