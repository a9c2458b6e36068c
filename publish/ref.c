/* Registry references, checked against the OCI distribution grammar. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "publish/ref.h"

#define HOST_MAX 255
#define REPO_MAX 255
#define TAG_MAX 128

static bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c) {
  return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* */
static bool component_valid(const char *s, size_t len) {
  size_t i = 0;
  if (len == 0 || !is_lower_alnum(s[0]))
    return false;
  while (i < len) {
    while (i < len && is_lower_alnum(s[i]))
      i++;
    if (i == len)
      return true;
    size_t sep = i;
    if (s[i] == '.') {
      i++;
    } else if (s[i] == '_') {
      i++;
      if (i < len && s[i] == '_')
        i++;
    } else if (s[i] == '-') {
      while (i < len && s[i] == '-')
        i++;
    } else {
      return false;
    }
    if (i == len || !is_lower_alnum(s[i]) || i == sep)
      return false;
  }
  return true;
}

bool oci_repo_valid(const char *repo) {
  size_t len = strlen(repo);
  if (len == 0 || len > REPO_MAX)
    return false;
  const char *p = repo;
  for (;;) {
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (!component_valid(p, n))
      return false;
    if (slash == NULL)
      return true;
    p = slash + 1;
  }
}

/* [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127} */
bool oci_tag_valid(const char *tag) {
  size_t len = strlen(tag);
  if (len == 0 || len > TAG_MAX || !(is_alnum(tag[0]) || tag[0] == '_'))
    return false;
  for (size_t i = 1; i < len; i++)
    if (!is_alnum(tag[i]) && tag[i] != '.' && tag[i] != '_' && tag[i] != '-')
      return false;
  return true;
}

bool oci_digest_valid(const char *digest) {
  if (strncmp(digest, "sha256:", 7) != 0 || strlen(digest) != 71)
    return false;
  for (const char *p = digest + 7; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
      return false;
  return true;
}

static bool port_valid(const char *p) {
  if (*p == '\0' || strlen(p) > 5)
    return false;
  long v = 0;
  for (; *p; p++) {
    if (*p < '0' || *p > '9')
      return false;
    v = v * 10 + (*p - '0');
  }
  return v >= 1 && v <= 65535;
}

/* A DNS name or IPv4 address, or [IPv6], then an optional :port. */
static bool host_valid(const char *host) {
  size_t len = strlen(host);
  if (len == 0 || len > HOST_MAX)
    return false;
  const char *port = NULL;
  if (host[0] == '[') {
    const char *close = strchr(host, ']');
    if (close == NULL || close == host + 1)
      return false;
    for (const char *p = host + 1; p < close; p++)
      if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
            (*p >= 'A' && *p <= 'F') || *p == ':' || *p == '.'))
        return false;
    if (close[1] == '\0')
      return true;
    if (close[1] != ':')
      return false;
    return port_valid(close + 2);
  }
  const char *colon = strchr(host, ':');
  size_t name_len = colon ? (size_t)(colon - host) : len;
  if (colon != NULL)
    port = colon + 1;
  if (name_len == 0 || host[0] == '.' || host[0] == '-' ||
      host[name_len - 1] == '.' || host[name_len - 1] == '-')
    return false;
  for (size_t i = 0; i < name_len; i++)
    if (!is_alnum(host[i]) && host[i] != '.' && host[i] != '-')
      return false;
  return port == NULL || port_valid(port);
}

bool oci_host_is_loopback(const char *host) {
  if (strncmp(host, "[::1]", 5) == 0)
    return host[5] == '\0' || host[5] == ':';
  size_t n = strcspn(host, ":");
  if (n == 9 && strncmp(host, "localhost", 9) == 0)
    return true;
  if (strncmp(host, "127.", 4) != 0)
    return false;
  /* 127.a.b.c with digits only: a name such as 127.evil.example is not. */
  int dots = 0;
  for (size_t i = 0; i < n; i++) {
    if (host[i] == '.')
      dots++;
    else if (host[i] < '0' || host[i] > '9')
      return false;
  }
  return dots == 3;
}

void oci_ref_release(struct oci_ref *ref) {
  free(ref->host);
  free(ref->repo);
  free(ref->tag);
  free(ref->digest);
  memset(ref, 0, sizeof *ref);
}

/* Parse text into ref; on failure the reason goes to why and the result
 * is the error code (ref released). */
static enum vab_code ref_parse(const char *text, struct oci_ref *ref,
                               char *why, size_t why_len) {
  memset(ref, 0, sizeof *ref);
  const char *slash = strchr(text, '/');
  if (slash == NULL || slash == text) {
    snprintf(why, why_len,
             "reference '%.200s' has no registry host; write "
             "HOST[:PORT]/REPO[:TAG]",
             text);
    return VAB_E_USAGE;
  }
  ref->host = strndup(text, (size_t)(slash - text));
  char *rest = strdup(slash + 1);
  if (ref->host == NULL || rest == NULL) {
    free(rest);
    oci_ref_release(ref);
    snprintf(why, why_len, "out of memory");
    return VAB_E_NOMEM;
  }
  char *at = strchr(rest, '@');
  if (at != NULL) {
    *at = '\0';
    ref->digest = strdup(at + 1);
  }
  /* A tag follows the last ':' after the last '/'. */
  char *last_slash = strrchr(rest, '/');
  char *colon = strrchr(last_slash ? last_slash : rest, ':');
  if (colon != NULL) {
    *colon = '\0';
    ref->tag = strdup(colon + 1);
  }
  ref->repo = strdup(rest);
  free(rest);
  enum vab_code code = VAB_E_USAGE;
  if (ref->repo == NULL || (at && ref->digest == NULL) ||
      (colon && ref->tag == NULL)) {
    snprintf(why, why_len, "out of memory");
    code = VAB_E_NOMEM;
  } else if (!host_valid(ref->host)) {
    snprintf(why, why_len,
             "reference '%.200s': '%.100s' is not a registry host[:port]",
             text, ref->host);
  } else if (!oci_repo_valid(ref->repo)) {
    snprintf(why, why_len,
             "reference '%.200s': repository '%.100s' is not valid "
             "(lowercase letters, digits and . _ - separators, '/' between "
             "parts)",
             text, ref->repo);
  } else if (ref->tag != NULL && !oci_tag_valid(ref->tag)) {
    snprintf(why, why_len,
             "reference '%.200s': tag '%.100s' is not valid (at most 128 of "
             "A-Z a-z 0-9 . _ -, not starting with . or -)",
             text, ref->tag);
  } else if (ref->digest != NULL && !oci_digest_valid(ref->digest)) {
    snprintf(why, why_len,
             "reference '%.200s': digest '%.100s' is not sha256:<64 hex "
             "digits>",
             text, ref->digest);
  } else {
    return VAB_OK;
  }
  oci_ref_release(ref);
  return code;
}

int oci_ref_parse(struct vab_ctx *ctx, const char *text, struct oci_ref *ref) {
  char why[512];
  enum vab_code code = ref_parse(text, ref, why, sizeof why);
  if (code != VAB_OK)
    return vab_error(ctx, code, "%s", why);
  return 0;
}

int oci_publish_ref_check(const char *text, char *why, size_t why_len) {
  struct oci_ref ref;
  if (ref_parse(text, &ref, why, why_len) != VAB_OK)
    return -1;
  bool digest = ref.digest != NULL;
  oci_ref_release(&ref);
  if (digest) {
    snprintf(why, why_len, "%s", OCI_DIGEST_PUSH_REFUSED);
    return -1;
  }
  return 0;
}
