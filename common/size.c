/* Sizes: see size.h for the grammar. */
#include <stdio.h>
#include <ctype.h>
#include <string.h>

#include "common/size.h"

/* A run of decimal digits at *p into *v, moving *p past it; -1 when there
 * is none or it overflows. */
static int read_decimal(const char **p, uint64_t *v) {
  const char *s = *p;
  uint64_t n = 0;
  if (!isdigit((unsigned char)*s))
    return -1;
  while (isdigit((unsigned char)*s)) {
    unsigned d = (unsigned)(*s - '0');
    if (n > (UINT64_MAX - d) / 10)
      return -1;
    n = n * 10 + d;
    s++;
  }
  *p = s;
  *v = n;
  return 0;
}

int vab_parse_size(const char *text, uint64_t *out) {
  const char *p = text;
  uint64_t v;
  if (read_decimal(&p, &v) < 0)
    return -1;
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

int vab_parse_duration_ms(const char *text, uint64_t *out_ms) {
  static const struct {
    const char *name;
    uint64_t ms;
  } units[] = {  /* "ms" before "m" */
    {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000},
    {"d", 86400 * 1000},
  };
  const char *p = text;
  uint64_t total = 0;
  if (*p == '\0')
    return -1;
  while (*p != '\0') {
    uint64_t v;
    if (read_decimal(&p, &v) < 0)
      return -1;
    uint64_t unit = 0;
    if (*p == '\0' && total == 0) {
      unit = 1000;   /* a plain number counts seconds */
    } else {
      for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        size_t n = strlen(units[i].name);
        if (strncmp(p, units[i].name, n) == 0) {
          unit = units[i].ms;
          p += n;
          break;
        }
      }
      if (unit == 0)
        return -1;
    }
    if (v > (UINT64_MAX - total) / unit)
      return -1;
    total += v * unit;
  }
  *out_ms = total;
  return 0;
}

void vab_format_duration_ms(char *out, size_t size, uint64_t ms) {
  if (ms % 1000 == 0)
    snprintf(out, size, "%llus", (unsigned long long)(ms / 1000));
  else
    snprintf(out, size, "%llums", (unsigned long long)ms);
}
