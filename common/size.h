/* The one size grammar of vab: template sizes ("disk.size: 4G") and format
 * options ("-o cluster_size=64K") read sizes the same way. */
#ifndef VAB_COMMON_SIZE_H
#define VAB_COMMON_SIZE_H

#include <stdint.h>

/* Decimal digits, then optionally one of K M G T P (either case, powers of
 * 1024) and optionally "iB" after it: "1048576", "64k", "4G", "4GiB".
 * "4GB" is refused as ambiguous, and so are signs, spaces and overflow.
 * Returns 0, or -1 with *out untouched. */
int vab_parse_size(const char *text, uint64_t *out);

#endif
