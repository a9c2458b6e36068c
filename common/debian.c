/* Debian name grammars (see debian.h), written out. */
#include <string.h>

#include "common/debian.h"

const char *const deb_variants[] = {
  "minbase", "essential", "apt", "required", "important", "standard",
  "buildd", "debootstrap", "custom", "extract", "-", NULL,
};

static bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c) {
  return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Length of the run of s made of lowercase letters, digits and extra. */
static size_t span_lower(const char *s, const char *extra) {
  size_t n = 0;
  while (s[n] != '\0' && (is_lower_alnum(s[n]) || strchr(extra, s[n]) != NULL))
    n++;
  return n;
}

bool deb_valid_package(const char *s) {
  size_t name = span_lower(s, "+-.");
  if (name < 2 || name > 128 || !is_lower_alnum(s[0]))
    return false;
  const char *p = s + name;
  if (*p == ':') {
    size_t arch = span_lower(p + 1, "-");
    if (arch == 0 || arch > 32 || !is_lower_alnum(p[1]))
      return false;
    p += 1 + arch;
  }
  if (*p == '=') {
    p++;
    size_t n = 0;
    if (!is_digit(p[0]))
      return false;
    while (p[n] != '\0' && (is_alnum(p[n]) || strchr(".+~-:", p[n]) != NULL))
      n++;
    if (n > 128)
      return false;
    p += n;
  }
  return *p == '\0';
}

bool deb_valid_suite(const char *s) {
  size_t len = strlen(s);
  if (len == 0 || len > 64 || !is_alnum(s[0]))
    return false;
  for (size_t i = 0; i < len; i++)
    if (!is_alnum(s[i]) && strchr("-._", s[i]) == NULL)
      return false;
  return true;
}

bool deb_valid_mirror(const char *s) {
  const char *host = NULL;
  if (strncmp(s, "http://", 7) == 0)
    host = s + 7;
  else if (strncmp(s, "https://", 8) == 0)
    host = s + 8;
  else if (strncmp(s, "file:///", 8) != 0)
    return false;
  /* http(s) need a host: not empty, not a path, not just a port. */
  if (host != NULL && (host[0] == '/' || host[0] == '\0' || host[0] == ':' ||
                       host[0] == '@'))
    return false;
  if (strlen(s) > 1024)
    return false;
  for (const char *p = s; *p; p++) {
    unsigned char c = (unsigned char)*p;
    /* Printable ASCII only: no space, tab or newline (a second sources
     * line), no '#' (an apt comment), and no quote, backslash or other
     * character that a URL does not need.  '[' and ']' stay for IPv6
     * hosts. */
    if (c <= 0x20 || c >= 0x7f || strchr("\"'`\\#<>{}|^", c) != NULL)
      return false;
  }
  return true;
}

bool deb_valid_variant(const char *s) {
  for (size_t i = 0; deb_variants[i] != NULL; i++)
    if (strcmp(s, deb_variants[i]) == 0)
      return true;
  return false;
}
