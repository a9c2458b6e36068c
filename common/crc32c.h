/* CRC-32C (Castagnoli), as VHDX headers and ext4 metadata use it. */
#ifndef VAB_COMMON_CRC32C_H
#define VAB_COMMON_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* The running form: start with crc = 0xffffffff, feed the data, and the
 * standard CRC-32C is the complement of the result (ext4 stores the
 * running value as it is). */
uint32_t crc32c_update(uint32_t crc, const void *data, size_t len);

/* The standard CRC-32C of data ("123456789" gives 0xe3069283). */
uint32_t crc32c(const void *data, size_t len);

#endif
