/* CRC-32C (see crc32c.h): reflected polynomial 0x82F63B78, bit by bit.
 * It runs over a few KiB of headers per image, so no table. */
#include "common/crc32c.h"

uint32_t crc32c_update(uint32_t crc, const void *data, size_t len) {
  const uint8_t *p = data;
  for (size_t i = 0; i < len; i++) {
    crc ^= p[i];
    for (int k = 0; k < 8; k++)
      crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
  }
  return crc;
}

uint32_t crc32c(const void *data, size_t len) {
  return ~crc32c_update(0xffffffffu, data, len);
}
