/* Sizes: see size.h for the grammar. */
#include <ctype.h>
#include <string.h>

#include "common/size.h"

int vab_parse_size(const char *text, uint64_t *out) {
  const char *p = text;
  uint64_t v = 0;
  if (!isdigit((unsigned char)*p))
    return -1;
  while (isdigit((unsigned char)*p)) {
    unsigned d = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
    p++;
  }
  unsigned shift = 0;
  switch (*p) {
  case '\0': break;
  case 'K': case 'k': shift = 10; break;
  case 'M': case 'm': shift = 20; break;
  case 'G': case 'g': shift = 30; break;
  case 'T': case 't': shift = 40; break;
  case 'P': case 'p': shift = 50; break;
  default: return -1;
  }
  if (*p != '\0') {
    p++;
    /* "4G" and "4GiB" are both binary; "4GB" is refused as ambiguous. */
    if (strcmp(p, "iB") != 0 && *p != '\0')
      return -1;
  }
  if (shift > 0 && v > (UINT64_MAX >> shift))
    return -1;
  *out = v << shift;
  return 0;
}
