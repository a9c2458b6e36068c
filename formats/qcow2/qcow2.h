/* qcow2 on-disk facts shared by the reader and the writer
 * (docs/interop/qcow2.txt in qemu; ../shared/docs/formats.md section 1). */
#ifndef VAB_FORMATS_QCOW2_H
#define VAB_FORMATS_QCOW2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/endian.h"

#define QCOW2_MAGIC 0x514649fbu
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_V2_HEADER_LENGTH 72
#define QCOW2_V3_MIN_HEADER_LENGTH 104
#define QCOW2_HEADER_LENGTH 112     /* what qemu and vab write */
#define QCOW2_MAX_L1_BYTES (32u << 20)
#define QCOW2_MAX_REFTABLE_BYTES (8u << 20)
#define QCOW2_MAX_BACKING_NAME 1023

#define QCOW2_INCOMPAT_DIRTY (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ull << 4)

#define QCOW2_COMPRESSION_DEFLATE 0
#define QCOW2_COMPRESSION_ZSTD 1

#define QCOW2_EXT_END 0
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_DATA_FILE 0x44415441u

#define QCOW2_OFLAG_COPIED (1ull << 63)
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO 1ull
#define QCOW2_L1E_OFFSET_MASK 0x00fffffffffffe00ull
#define QCOW2_L1E_RESERVED_MASK 0x7f000000000001ffull
#define QCOW2_L2E_OFFSET_MASK 0x00fffffffffffe00ull
#define QCOW2_L2E_STD_RESERVED_MASK 0x3f000000000001feull
#define QCOW2_REFT_OFFSET_MASK 0xfffffffffffffe00ull
#define QCOW2_SECTOR 512u

/* Refcounts vab writes: 16 bits each (refcount_order 4). */
#define QCOW2_REFCOUNT_ORDER 4
#define QCOW2_REFCOUNT_MAX 0xffffu

/* Bit where the sector count of a compressed descriptor starts. */
static inline unsigned qcow2_csize_shift(unsigned cluster_bits) {
  return 62 - (cluster_bits - 8);
}

/* The L2 entry of a compressed cluster of len bytes at byte offset host
 * (never COPIED).  Returns false if host does not fit the offset bits. */
bool qcow2_compressed_entry(uint64_t host, size_t len, unsigned cluster_bits,
                            uint64_t *entry);

/* Where a compressed cluster's bytes are: its byte offset, and how many
 * bytes from there up to the end of its last 512-byte sector (the data
 * may end earlier; the rest is the next cluster's or padding). */
void qcow2_compressed_range(uint64_t entry, unsigned cluster_bits,
                            uint64_t *host, uint64_t *len);

/* A 16-bit refcount block entry; blocks are arrays of big-endian u16. */
static inline uint16_t qcow2_refcount16(const uint8_t *block, size_t i) {
  return (uint16_t)(block[2 * i] << 8 | block[2 * i + 1]);
}

/* A refcount of any width (1 << order bits, order 0..6) from a block:
 * sub-byte widths are packed LSB first, wider ones are big-endian. */
uint64_t qcow2_refcount_get(const uint8_t *block, size_t i, unsigned order);

#endif
