/* The build manifest: written by `vab build`, signed by `vab sign`,
 * checked by `vab verify`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/files.h"
#include "common/buf.h"
#include "common/json.h"
#include "signing/digest.h"
#include "signing/manifest.h"
#include "signing/signing.h"

#define MANIFEST_SCHEMA "vab.manifest/v1"

void vab_format_utc(int64_t t, char out[32]) {
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int vab_build_time(struct vab_ctx *ctx, int64_t *out) {
  const char *sde = getenv("SOURCE_DATE_EPOCH");
  if (sde == NULL || *sde == '\0') {
    *out = (int64_t)time(NULL);
    return 0;
  }
  char *end = NULL;
  errno = 0;
  long long v = strtoll(sde, &end, 10);
  if (errno != 0 || *end != '\0' || v < 0)
    return vab_error(ctx, VAB_E_USAGE,
                     "SOURCE_DATE_EPOCH='%s' is not a whole number of seconds",
                     sde);
  *out = v;
  return 0;
}

static int put_field(struct buf *b, const char *key, const char *value,
                     bool last) {
  if (buf_printf(b, "  \"%s\": ", key) < 0)
    return -1;
  if (value == NULL ? buf_puts(b, "null") : json_append_string(b, value))
    return -1;
  return buf_puts(b, last ? "\n" : ",\n");
}

char *vab_manifest_to_json(struct vab_ctx *ctx, const struct vab_manifest *m) {
  struct buf b = BUF_INIT;
  char when[32];
  vab_format_utc(m->build_time, when);
  int r = buf_puts(&b, "{\n");
  r |= put_field(&b, "schema", MANIFEST_SCHEMA, false);
  r |= put_field(&b, "name", m->name, false);
  r |= put_field(&b, "version", m->version, false);
  r |= put_field(&b, "vab_version", m->vab_version, false);
  r |= put_field(&b, "template_digest", m->template_digest, false);
  r |= put_field(&b, "build_time", when, false);
  r |= buf_puts(&b, "  \"artifacts\": [");
  for (size_t i = 0; i < m->n_artifacts; i++) {
    const struct vab_manifest_artifact *a = &m->artifacts[i];
    r |= buf_puts(&b, i ? ",\n    {\"name\": " : "\n    {\"name\": ");
    r |= json_append_string(&b, a->name);
    r |= buf_puts(&b, ", \"format\": ");
    r |= json_append_string(&b, a->format);
    r |= buf_puts(&b, ", \"target\": ");
    r |= a->target ? json_append_string(&b, a->target) : buf_puts(&b, "null");
    r |= buf_printf(&b, ", \"size\": %llu, \"sha256\": \"%s\"}",
                    (unsigned long long)a->size, a->sha256);
  }
  r |= buf_puts(&b, m->n_artifacts ? "\n  ]\n}\n" : "]\n}\n");
  if (r != 0) {
    buf_release(&b);
    vab_error(ctx, VAB_E_NOMEM, "out of memory");
    return NULL;
  }
  return buf_detach(&b);
}

int vab_manifest_write(struct vab_ctx *ctx, const char *path,
                       const struct vab_manifest *m) {
  char *text = vab_manifest_to_json(ctx, m);
  if (text == NULL)
    return -1;
  int r = vab_write_file_atomic(ctx, path, text, strlen(text), 0644);
  free(text);
  return r;
}

void vab_manifest_release(struct vab_manifest *m) {
  if (m == NULL)
    return;
  for (size_t i = 0; i < m->n_artifacts; i++) {
    free(m->artifacts[i].name);
    free(m->artifacts[i].format);
    free(m->artifacts[i].target);
  }
  free(m->artifacts);
  free(m->name);
  free(m->version);
  free(m->template_digest);
  free(m->vab_version);
  memset(m, 0, sizeof *m);
}

static bool is_plain_file_name(const char *s) {
  return s[0] != '\0' && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 &&
         strchr(s, '/') == NULL && strlen(s) < 256;
}

static bool is_sha256_hex(const char *s) {
  if (strlen(s) != 64)
    return false;
  for (const char *p = s; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
      return false;
  return true;
}

static int parse_time(const char *s, int64_t *out) {
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (end == NULL || *end != '\0')
    return -1;
  *out = (int64_t)timegm(&tm);
  return 0;
}

/* A required string member, copied. */
static int take_string(struct vab_ctx *ctx, const char *path,
                       const struct json_value *obj, const char *key,
                       char **out) {
  const char *s = json_get_string(obj, key);
  if (s == NULL)
    return vab_error(ctx, VAB_E_SIGNATURE,
                     "manifest '%s': \"%s\" is missing or not a string", path,
                     key);
  *out = strdup(s);
  if (*out == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  return 0;
}

static int parse_artifact(struct vab_ctx *ctx, const char *path, size_t index,
                          const struct json_value *v,
                          struct vab_manifest_artifact *a) {
  if (v->type != JSON_OBJECT)
    return vab_error(ctx, VAB_E_SIGNATURE,
                     "manifest '%s': artifact %zu is not an object", path,
                     index + 1);
  if (take_string(ctx, path, v, "name", &a->name) < 0 ||
      take_string(ctx, path, v, "format", &a->format) < 0)
    return -1;
  if (!is_plain_file_name(a->name))
    return vab_error(ctx, VAB_E_SIGNATURE,
                     "manifest '%s': artifact name '%s' is not a plain file "
                     "name",
                     path, a->name);
  const struct json_value *target = json_get(v, "target");
  if (target != NULL && target->type == JSON_STRING) {
    a->target = strdup(target->string);
    if (a->target == NULL)
      return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  } else if (target != NULL && target->type != JSON_NULL) {
    return vab_error(ctx, VAB_E_SIGNATURE,
                     "manifest '%s': artifact '%s' has a bad \"target\"", path,
                     a->name);
  }
  const struct json_value *size = json_get(v, "size");
  if (size == NULL || size->type != JSON_NUMBER || !size->is_integer ||
      size->integer < 0)
    return vab_error(ctx, VAB_E_SIGNATURE,
                     "manifest '%s': artifact '%s' has no valid \"size\"", path,
                     a->name);
  a->size = (uint64_t)size->integer;
  const char *sha = json_get_string(v, "sha256");
  if (sha == NULL || !is_sha256_hex(sha))
    return vab_error(ctx, VAB_E_SIGNATURE,
                     "manifest '%s': artifact '%s' has no valid \"sha256\"",
                     path, a->name);
  memcpy(a->sha256, sha, 65);
  return 0;
}

int vab_manifest_parse(struct vab_ctx *ctx, const char *path, const char *text,
                       size_t len, struct vab_manifest *m) {
  memset(m, 0, sizeof *m);
  char err[128];
  struct json_value *root = json_parse(text, len, err, sizeof err);
  if (root == NULL)
    return vab_error(ctx, VAB_E_SIGNATURE, "manifest '%s' is not valid JSON: %s",
                     path, err);
  int r = -1;
  const char *schema = json_get_string(root, "schema");
  const char *when = json_get_string(root, "build_time");
  const struct json_value *arts = json_get(root, "artifacts");
  if (root->type != JSON_OBJECT || schema == NULL ||
      strcmp(schema, MANIFEST_SCHEMA) != 0) {
    vab_error(ctx, VAB_E_SIGNATURE,
              "'%s' is not a vab build manifest (schema %s expected)", path,
              MANIFEST_SCHEMA);
    goto out;
  }
  if (take_string(ctx, path, root, "name", &m->name) < 0 ||
      take_string(ctx, path, root, "version", &m->version) < 0 ||
      take_string(ctx, path, root, "vab_version", &m->vab_version) < 0 ||
      take_string(ctx, path, root, "template_digest", &m->template_digest) < 0)
    goto out;
  if (when == NULL || parse_time(when, &m->build_time) < 0) {
    vab_error(ctx, VAB_E_SIGNATURE,
              "manifest '%s': \"build_time\" is not YYYY-MM-DDTHH:MM:SSZ", path);
    goto out;
  }
  if (arts == NULL || arts->type != JSON_ARRAY) {
    vab_error(ctx, VAB_E_SIGNATURE, "manifest '%s': \"artifacts\" is not a list",
              path);
    goto out;
  }
  m->artifacts = calloc(arts->n ? arts->n : 1, sizeof *m->artifacts);
  if (m->artifacts == NULL) {
    vab_error(ctx, VAB_E_NOMEM, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < arts->n; i++) {
    m->n_artifacts = i + 1;
    if (parse_artifact(ctx, path, i, arts->items[i], &m->artifacts[i]) < 0)
      goto out;
    for (size_t j = 0; j < i; j++)
      if (strcmp(m->artifacts[j].name, m->artifacts[i].name) == 0) {
        vab_error(ctx, VAB_E_SIGNATURE,
                  "manifest '%s': artifact '%s' is listed twice", path,
                  m->artifacts[i].name);
        goto out;
      }
  }
  r = 0;
out:
  json_free(root);
  if (r < 0)
    vab_manifest_release(m);
  return r;
}

int vab_manifest_check_artifacts(struct vab_ctx *ctx, const char *dir,
                                 const struct vab_manifest *m,
                                 size_t *n_failed) {
  size_t failed = 0;
  for (size_t i = 0; i < m->n_artifacts; i++) {
    const struct vab_manifest_artifact *a = &m->artifacts[i];
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, a->name);
    struct stat st;
    if (lstat(path, &st) < 0) {
      vab_error_errno(ctx, VAB_E_SIGNATURE, errno, "artifact '%s' is missing",
                      a->name);
      failed++;
      continue;
    }
    if (!S_ISREG(st.st_mode)) {
      vab_error(ctx, VAB_E_SIGNATURE, "artifact '%s' is not a regular file",
                a->name);
      failed++;
      continue;
    }
    if ((uint64_t)st.st_size != a->size) {
      vab_error(ctx, VAB_E_SIGNATURE,
                "artifact '%s': size is %llu bytes, the manifest says %llu",
                a->name, (unsigned long long)st.st_size,
                (unsigned long long)a->size);
      failed++;
      continue;
    }
    uint8_t digest[32];
    char hex[65];
    if (vab_sha256_file(ctx, path, digest) < 0) {
      failed++;
      continue;
    }
    vab_hex(digest, sizeof digest, hex);
    if (strcmp(hex, a->sha256) != 0) {
      vab_error(ctx, VAB_E_SIGNATURE,
                "artifact '%s': sha256 is %s, the manifest says %s", a->name,
                hex, a->sha256);
      failed++;
    }
  }
  if (n_failed)
    *n_failed = failed;
  return failed ? -1 : 0;
}
