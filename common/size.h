/* The one size grammar and the one duration grammar of vab: template sizes
 * ("disk.size: 4G") and format options ("-o cluster_size=64K") read sizes
 * the same way; template timeouts ("timeout: 10m") and `vab cache prune
 * --older-than 30d` read durations the same way. */
#ifndef VAB_COMMON_SIZE_H
#define VAB_COMMON_SIZE_H

#include <stdint.h>

/* Decimal digits, then optionally one of K M G T P (either case, powers of
 * 1024) and optionally "iB" after it: "1048576", "64k", "4G", "4GiB".
 * "4GB" is refused as ambiguous, and so are signs, spaces and overflow.
 * Returns 0, or -1 with *out untouched. */
int vab_parse_size(const char *text, uint64_t *out);

/* Plain seconds ("300"), or a run of NUMBER UNIT parts with the units ms,
 * s, m, h and d: "90s", "1h30m", "250ms", "30d".  Overflow is refused.
 * Returns 0 with milliseconds in *out_ms, or -1 with *out_ms untouched. */
int vab_parse_duration_ms(const char *text, uint64_t *out_ms);

/* ms as the duration grammar writes it back: "30s" for whole seconds,
 * else "1500ms".  out holds at least 24 bytes. */
void vab_format_duration_ms(char *out, size_t size, uint64_t ms);

#endif
