/* Encoding and decoding of qcow2 table entries. */
#include "formats/qcow2/qcow2.h"

bool qcow2_compressed_entry(uint64_t host, size_t len, unsigned cluster_bits,
                            uint64_t *entry) {
  unsigned shift = qcow2_csize_shift(cluster_bits);
  uint64_t offset_limit = shift >= 56 ? (1ull << 56) : (1ull << shift);
  if (len == 0 || host >= offset_limit)
    return false;
  /* Additional sectors after the one holding the first byte. */
  uint64_t sectors = (host + len - 1) / QCOW2_SECTOR - host / QCOW2_SECTOR;
  uint64_t sector_mask = (1ull << (cluster_bits - 8)) - 1;
  if (sectors > sector_mask)
    return false;
  *entry = QCOW2_OFLAG_COMPRESSED | host | sectors << shift;
  return true;
}

void qcow2_compressed_range(uint64_t entry, unsigned cluster_bits,
                            uint64_t *host, uint64_t *len) {
  unsigned shift = qcow2_csize_shift(cluster_bits);
  uint64_t offset_mask = (1ull << shift) - 1;
  uint64_t sector_mask = (1ull << (cluster_bits - 8)) - 1;
  uint64_t sectors = ((entry >> shift) & sector_mask) + 1;
  *host = entry & offset_mask;
  *len = sectors * QCOW2_SECTOR - (*host & (QCOW2_SECTOR - 1));
}

uint64_t qcow2_refcount_get(const uint8_t *block, size_t i, unsigned order) {
  unsigned bits = 1u << order;
  if (bits < 8) {
    unsigned per_byte = 8 / bits;
    uint8_t byte = block[i / per_byte];
    unsigned shift = (unsigned)(i % per_byte) * bits;
    return (byte >> shift) & ((1u << bits) - 1);
  }
  unsigned bytes = bits / 8;
  uint64_t v = 0;
  for (unsigned k = 0; k < bytes; k++)
    v = v << 8 | block[i * bytes + k];
  return v;
}
