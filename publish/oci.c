/* OCI image manifests: media types, JSON out, strict JSON in. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/json.h"
#include "publish/oci.h"
#include "publish/ref.h"

/* Non-tar vendor types: a runtime that mounts artifacts (CRI-O) must not
 * try to untar a disk image (registry.md, section 7.2). */
static const struct {
  const char *format;
  const char *media_type;
} format_types[] = {
  {"qcow2", "application/vnd.vab.disk.qcow2"},
  {"vmdk", "application/vnd.vab.disk.vmdk"},
  {"raw", "application/vnd.vab.disk.raw"},
  {"vhd", "application/vnd.vab.disk.vhd"},
  {"vhdx", "application/vnd.vab.disk.vhdx"},
  {"ova", "application/vnd.vab.ova"},
};

const char *oci_media_type_for_format(const char *format) {
  for (size_t i = 0; i < sizeof format_types / sizeof format_types[0]; i++)
    if (strcmp(format_types[i].format, format) == 0)
      return format_types[i].media_type;
  return "application/vnd.vab.file";
}

bool oci_title_valid(const char *title) {
  size_t len = strlen(title);
  if (len == 0 || len > 255 || title[0] == '.')
    return false;
  for (const unsigned char *p = (const unsigned char *)title; *p; p++)
    if (*p < 0x20 || *p == 0x7f || *p == '/' || *p == '\\')
      return false;
  return true;
}

int oci_annotate(struct oci_annotations *list, const char *key,
                 const char *value) {
  struct oci_annotation a = {strdup(key), strdup(value)};
  if (a.key == NULL || a.value == NULL ||
      oci_annotations_append(list, a) < 0) {
    free(a.key);
    free(a.value);
    return -1;
  }
  return 0;
}

static void descriptor_release(struct oci_descriptor *d) {
  free(d->media_type);
  free(d->digest);
  for (size_t i = 0; i < d->annotations.len; i++) {
    free(d->annotations.ptr[i].key);
    free(d->annotations.ptr[i].value);
  }
  oci_annotations_reset(&d->annotations);
  memset(d, 0, sizeof *d);
}

int oci_set_config(struct oci_descriptor *d, const char *media_type,
                   const char *digest, uint64_t size) {
  descriptor_release(d);
  d->media_type = strdup(media_type);
  d->digest = strdup(digest);
  d->size = size;
  return d->media_type && d->digest ? 0 : -1;
}

struct oci_descriptor *oci_add_layer(struct oci_manifest *m,
                                     const char *media_type,
                                     const char *digest, uint64_t size) {
  struct oci_descriptor *grown =
      vector_grow(m->layers, &m->layers_cap, m->n_layers, 1, sizeof *m->layers);
  if (grown == NULL)
    return NULL;
  m->layers = grown;
  struct oci_descriptor *d = &grown[m->n_layers];
  memset(d, 0, sizeof *d);
  if (oci_set_config(d, media_type, digest, size) < 0) {
    descriptor_release(d);
    return NULL;
  }
  m->n_layers++;
  return d;
}

const char *oci_annotation_get(const struct oci_descriptor *d,
                               const char *key) {
  for (size_t i = 0; i < d->annotations.len; i++)
    if (strcmp(d->annotations.ptr[i].key, key) == 0)
      return d->annotations.ptr[i].value;
  return NULL;
}

void oci_manifest_release(struct oci_manifest *m) {
  free(m->media_type);
  free(m->artifact_type);
  descriptor_release(&m->config);
  for (size_t i = 0; i < m->n_layers; i++)
    descriptor_release(&m->layers[i]);
  free(m->layers);
  for (size_t i = 0; i < m->annotations.len; i++) {
    free(m->annotations.ptr[i].key);
    free(m->annotations.ptr[i].value);
  }
  oci_annotations_reset(&m->annotations);
  memset(m, 0, sizeof *m);
}

static int put_annotations(struct buf *b, const struct oci_annotation *a,
                           size_t n) {
  int r = buf_puts(b, ",\"annotations\":{");
  for (size_t i = 0; i < n; i++) {
    r |= i ? buf_putc(b, ',') : 0;
    r |= json_append_string(b, a[i].key);
    r |= buf_putc(b, ':');
    r |= json_append_string(b, a[i].value);
  }
  r |= buf_putc(b, '}');
  return r;
}

static int put_descriptor(struct buf *b, const struct oci_descriptor *d) {
  int r = buf_puts(b, "{\"mediaType\":");
  r |= json_append_string(b, d->media_type);
  r |= buf_puts(b, ",\"digest\":");
  r |= json_append_string(b, d->digest);
  r |= buf_printf(b, ",\"size\":%llu", (unsigned long long)d->size);
  if (d->annotations.len > 0)
    r |= put_annotations(b, d->annotations.ptr, d->annotations.len);
  r |= buf_putc(b, '}');
  return r;
}

char *oci_manifest_to_json(const struct oci_manifest *m) {
  struct buf b = BUF_INIT;
  int r = buf_puts(&b, "{\"schemaVersion\":2,\"mediaType\":");
  r |= json_append_string(&b, OCI_MANIFEST_TYPE);
  if (m->artifact_type != NULL) {
    r |= buf_puts(&b, ",\"artifactType\":");
    r |= json_append_string(&b, m->artifact_type);
  }
  r |= buf_puts(&b, ",\"config\":");
  r |= put_descriptor(&b, &m->config);
  r |= buf_puts(&b, ",\"layers\":[");
  for (size_t i = 0; i < m->n_layers; i++) {
    r |= i ? buf_putc(&b, ',') : 0;
    r |= put_descriptor(&b, &m->layers[i]);
  }
  r |= buf_putc(&b, ']');
  if (m->annotations.len > 0)
    r |= put_annotations(&b, m->annotations.ptr, m->annotations.len);
  r |= buf_putc(&b, '}');
  if (r != 0) {
    buf_release(&b);
    return NULL;
  }
  return buf_detach(&b);
}

static int parse_annotations(struct vab_ctx *ctx, const char *what,
                             const struct json_value *v,
                             struct oci_annotations *list) {
  if (v == NULL)
    return 0;
  if (v->type != JSON_OBJECT)
    return vab_error(ctx, VAB_E_FORMAT, "%s: \"annotations\" is not an object",
                     what);
  for (size_t i = 0; i < v->n; i++) {
    if (v->items[i]->type != JSON_STRING)
      return vab_error(ctx, VAB_E_FORMAT,
                       "%s: annotation \"%s\" is not a string", what,
                       v->keys[i]);
    if (oci_annotate(list, v->keys[i], v->items[i]->string) < 0)
      return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  return 0;
}

static int parse_descriptor(struct vab_ctx *ctx, const char *what,
                            const char *name, const struct json_value *v,
                            struct oci_descriptor *d) {
  if (v == NULL || v->type != JSON_OBJECT)
    return vab_error(ctx, VAB_E_FORMAT, "%s: %s is not a descriptor object",
                     what, name);
  const char *media_type = json_get_string(v, "mediaType");
  const char *digest = json_get_string(v, "digest");
  const struct json_value *size = json_get(v, "size");
  if (media_type == NULL || media_type[0] == '\0')
    return vab_error(ctx, VAB_E_FORMAT, "%s: %s has no \"mediaType\"", what,
                     name);
  if (digest == NULL || !oci_digest_valid(digest))
    return vab_error(ctx, VAB_E_FORMAT,
                     "%s: %s has no sha256 \"digest\" vab can check", what,
                     name);
  if (size == NULL || size->type != JSON_NUMBER || !size->is_integer ||
      size->integer < 0)
    return vab_error(ctx, VAB_E_FORMAT, "%s: %s has no valid \"size\"", what,
                     name);
  if (oci_set_config(d, media_type, digest, (uint64_t)size->integer) < 0)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  return parse_annotations(ctx, what, json_get(v, "annotations"),
                           &d->annotations);
}

int oci_manifest_parse(struct vab_ctx *ctx, const char *what, const char *text,
                       size_t len, struct oci_manifest *m) {
  memset(m, 0, sizeof *m);
  if (len > OCI_MANIFEST_MAX)
    return vab_error(ctx, VAB_E_FORMAT, "%s: manifest is larger than 4 MiB",
                     what);
  char err[128];
  struct json_value *root = json_parse(text, len, err, sizeof err);
  if (root == NULL)
    return vab_error(ctx, VAB_E_FORMAT, "%s: manifest is not valid JSON: %s",
                     what, err);
  int r = -1;
  const struct json_value *version = json_get(root, "schemaVersion");
  const char *media_type = json_get_string(root, "mediaType");
  const char *artifact_type = json_get_string(root, "artifactType");
  const struct json_value *layers = json_get(root, "layers");
  if (root->type != JSON_OBJECT || version == NULL ||
      version->type != JSON_NUMBER || !version->is_integer ||
      version->integer != 2) {
    vab_error(ctx, VAB_E_FORMAT, "%s: not an OCI manifest (schemaVersion 2)",
              what);
    goto out;
  }
  if (media_type != NULL && (strcmp(media_type, OCI_INDEX_TYPE) == 0 ||
                             strcmp(media_type, DOCKER_LIST_TYPE) == 0)) {
    vab_error(ctx, VAB_E_UNSUPPORTED,
              "%s is an image index, not a vab appliance artifact", what);
    goto out;
  }
  if (media_type != NULL && strcmp(media_type, OCI_MANIFEST_TYPE) != 0 &&
      strcmp(media_type, DOCKER_MANIFEST_TYPE) != 0) {
    vab_error(ctx, VAB_E_FORMAT, "%s: unknown manifest type '%s'", what,
              media_type);
    goto out;
  }
  if ((media_type && (m->media_type = strdup(media_type)) == NULL) ||
      (artifact_type && (m->artifact_type = strdup(artifact_type)) == NULL)) {
    vab_error(ctx, VAB_E_NOMEM, "out of memory");
    goto out;
  }
  if (parse_descriptor(ctx, what, "the config", json_get(root, "config"),
                       &m->config) < 0)
    goto out;
  if (layers == NULL || layers->type != JSON_ARRAY) {
    vab_error(ctx, VAB_E_FORMAT, "%s: \"layers\" is not a list", what);
    goto out;
  }
  m->layers = calloc(layers->n ? layers->n : 1, sizeof *m->layers);
  if (m->layers == NULL) {
    vab_error(ctx, VAB_E_NOMEM, "out of memory");
    goto out;
  }
  m->layers_cap = layers->n ? layers->n : 1;
  for (size_t i = 0; i < layers->n; i++) {
    char name[32];
    snprintf(name, sizeof name, "layer %zu", i + 1);
    m->n_layers = i + 1;
    if (parse_descriptor(ctx, what, name, layers->items[i], &m->layers[i]) < 0)
      goto out;
  }
  if (parse_annotations(ctx, what, json_get(root, "annotations"),
                        &m->annotations) < 0)
    goto out;
  r = 0;
out:
  json_free(root);
  if (r < 0)
    oci_manifest_release(m);
  return r;
}
