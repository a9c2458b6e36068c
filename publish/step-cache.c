/* The registry half of the shared step cache (step-cache.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "publish/blob.h"
#include "publish/http.h"
#include "publish/oci.h"
#include "publish/redact.h"
#include "publish/ref.h"
#include "publish/step-cache.h"
#include "signing/digest.h"
#include "vab/progress.h"

struct vab_remote_cache {
  struct vab_ctx *parent;     /* gets our log lines and progress */
  struct vab_ctx *ctx;        /* our errors: the caller judges them */
  char *ref_text;
  struct oci_ref ref;
  const struct vab_registry_opts *opts;
  bool push;
  uint64_t chunk;             /* blobs larger go in PATCH chunks */
  struct registry *reg;       /* once opened */
  bool dead;
  char error[512];
};

static void forward_log(void *opaque, enum vab_log_level level,
                        const char *line) {
  vab_log(opaque, level, "%s", line);
}

static int forward_progress(void *opaque, enum vab_phase phase,
                            const char *step, uint64_t done, uint64_t total) {
  return vab_progress(opaque, phase, step, done, total) < 0 ? 1 : 0;
}

int vab_remote_cache_new(struct vab_ctx *ctx, const char *ref,
                         const struct vab_registry_opts *opts, bool push,
                         struct vab_remote_cache **out) {
  *out = NULL;
  struct vab_remote_cache *rc = calloc(1, sizeof *rc);
  if (rc == NULL || (rc->ref_text = strdup(ref)) == NULL ||
      (rc->ctx = vab_ctx_new()) == NULL) {
    if (rc != NULL)
      free(rc->ref_text);
    free(rc);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  if (oci_ref_parse(ctx, ref, &rc->ref) < 0) {
    vab_ctx_free(rc->ctx);
    free(rc->ref_text);
    free(rc);
    return -1;
  }
  if (rc->ref.tag != NULL || rc->ref.digest != NULL) {
    vab_remote_cache_free(rc);
    return vab_error(ctx, VAB_E_USAGE,
                     "registry cache '%s': give a repository, HOST/REPO, "
                     "with no tag or digest (each entry is tagged "
                     "step-KEY)",
                     ref);
  }
  rc->parent = ctx;
  rc->opts = opts;
  rc->push = push;
  rc->chunk = opts->chunk_size ? opts->chunk_size : VAB_PUBLISH_DEFAULT_CHUNK;
  vab_ctx_set_log(rc->ctx, forward_log, ctx);
  vab_ctx_set_progress(rc->ctx, forward_progress, ctx);
  *out = rc;
  return 0;
}

void vab_remote_cache_free(struct vab_remote_cache *rc) {
  if (rc == NULL)
    return;
  registry_close(rc->reg);
  oci_ref_release(&rc->ref);
  vab_ctx_free(rc->ctx);
  free(rc->ref_text);
  free(rc);
}

const char *vab_remote_cache_ref(const struct vab_remote_cache *rc) {
  return rc->ref_text;
}

const char *vab_remote_cache_error(const struct vab_remote_cache *rc) {
  return rc->error;
}

bool vab_remote_cache_alive(const struct vab_remote_cache *rc) {
  return !rc->dead;
}

/* End a call: the reason of a failure moves from our context into
 * rc->error (the context is emptied either way). */
static int finish(struct vab_remote_cache *rc, int r) {
  if (r < 0) {
    const struct vab_diag *d = vab_last_error(rc->ctx);
    snprintf(rc->error, sizeof rc->error, "%s",
             d != NULL ? d->message : "unknown error");
  }
  vab_diag_clear(rc->ctx);
  return r;
}

static int fail(struct vab_remote_cache *rc, const char *fmt, ...)
    VAB_PRINTF(2, 3);
static int fail(struct vab_remote_cache *rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rc->error, sizeof rc->error, fmt, ap);
  va_end(ap);
  vab_diag_clear(rc->ctx);
  return -1;
}

/* Open the session on first use; a registry that cannot be reached or
 * logged in to stays dead for the rest of the run. */
static int connect_once(struct vab_remote_cache *rc) {
  if (rc->reg != NULL)
    return 0;
  if (rc->dead)
    return -1;  /* rc->error still says why */
  if (vab_cancelled(rc->parent))
    return fail(rc, "cancelled");
  if (registry_open(rc->ctx, rc->ref.host, rc->ref.repo, rc->opts, rc->push,
                    &rc->reg) < 0) {
    rc->dead = true;
    return finish(rc, -1);
  }
  return 0;
}

static void step_tag(const char *key, char tag[80]) {
  snprintf(tag, 80, "step-%s", key);
}

/* GET the manifest under tag: 1 (m filled, digest in digest), 0 no such
 * tag, -1 error on rc->ctx. */
static int get_manifest(struct vab_remote_cache *rc, const char *tag,
                        struct oci_manifest *m, char digest[72]) {
  struct vab_ctx *ctx = rc->ctx;
  char *path = NULL;
  if (asprintf(&path, "/v2/%s/manifests/%s", rc->ref.repo, tag) < 0)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  struct http_request req = {.method = "GET", .url = path,
                             .accept = OCI_ACCEPT,
                             .max_body = OCI_MANIFEST_MAX};
  struct http_response resp = {0};
  int r = registry_request(rc->reg, &req, &resp);
  if (r == 0 && resp.status == 404) {
    r = 0;
    goto out;
  }
  if (r == 0 && resp.status != 200)
    r = registry_http_error(rc->reg, &resp, "cannot get manifest %s:%s",
                            rc->ref.repo, tag);
  if (r == 0) {
    if (vab_sha256_buffer(ctx, resp.body.data, resp.body.len, digest) < 0) {
      r = -1;
      goto out;
    }
    if (resp.docker_digest != NULL && strcmp(resp.docker_digest, digest) != 0) {
      char shown[100];
      registry_scrub(rc->reg, resp.docker_digest, shown, sizeof shown);
      r = vab_error(ctx, VAB_E_SIGNATURE,
                    "manifest %s has digest %s, but the registry announced %s",
                    tag, digest, shown);
      goto out;
    }
    r = oci_manifest_parse(ctx, tag, resp.body.data ? resp.body.data : "",
                           resp.body.len, m);
    if (r == 0)
      r = 1;
  }
out:
  http_response_release(&resp);
  free(path);
  return r;
}

static int put_manifest(struct vab_remote_cache *rc, const char *tag,
                        const char *json) {
  struct vab_ctx *ctx = rc->ctx;
  char *path = NULL;
  if (asprintf(&path, "/v2/%s/manifests/%s", rc->ref.repo, tag) < 0)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  struct http_request req = {.method = "PUT", .url = path,
                             .content_type = OCI_MANIFEST_TYPE,
                             .body = json, .body_len = strlen(json)};
  struct http_response resp = {0};
  int r = registry_request(rc->reg, &req, &resp);
  if (r == 0 && resp.status != 201)
    r = registry_http_error(rc->reg, &resp, "cannot store manifest %s:%s",
                            rc->ref.repo, tag);
  http_response_release(&resp);
  free(path);
  return r;
}

/* Registry text for a message: credentials masked when there is a
 * session, control characters replaced, capped. */
static void scrub(const struct registry *reg, const char *text, char *out,
                  size_t out_len) {
  if (reg != NULL)
    registry_scrub(reg, text, out, out_len);
  else
    redact_text(text, strlen(text), NULL, 0, out, out_len);
}

/* The entry's layers, checked: the types are ours, every layer has a
 * plain, unique title, and there are not too many. */
static int check_entry(struct vab_ctx *ctx, const struct registry *reg,
                       const char *tag, const struct oci_manifest *m) {
  char shown[300];
  const char *type = m->artifact_type ? m->artifact_type : "(none)";
  if (strcmp(type, VAB_STEP_CACHE_ARTIFACT_TYPE) != 0) {
    scrub(reg, type, shown, sizeof shown);
    return vab_error(ctx, VAB_E_FORMAT,
                     "%s is not a vab step cache entry (artifactType %s)", tag,
                     shown);
  }
  if (strcmp(m->config.media_type, VAB_STEP_CACHE_RECORD_TYPE) != 0) {
    scrub(reg, m->config.media_type, shown, sizeof shown);
    return vab_error(ctx, VAB_E_FORMAT, "%s: its config is of type %s, not %s",
                     tag, shown, VAB_STEP_CACHE_RECORD_TYPE);
  }
  if (m->config.size > VAB_STEP_CACHE_RECORD_MAX)
    return vab_error(ctx, VAB_E_FORMAT,
                     "%s: its record is %llu bytes, at most %u expected", tag,
                     (unsigned long long)m->config.size,
                     VAB_STEP_CACHE_RECORD_MAX);
  if (m->n_layers > VAB_STEP_CACHE_FILES_MAX)
    return vab_error(ctx, VAB_E_FORMAT, "%s: %zu layers, at most %d expected",
                     tag, m->n_layers, VAB_STEP_CACHE_FILES_MAX);
  for (size_t i = 0; i < m->n_layers; i++) {
    const char *title = oci_annotation_get(&m->layers[i], OCI_TITLE);
    if (title == NULL)
      return vab_error(ctx, VAB_E_FORMAT, "%s: layer %zu has no %s annotation",
                       tag, i + 1, OCI_TITLE);
    scrub(reg, title, shown, sizeof shown);
    if (!oci_title_valid(title))
      return vab_error(ctx, VAB_E_FORMAT,
                       "%s: layer %zu has the title '%s', which is not a plain "
                       "file name", tag, i + 1, shown);
    for (size_t j = 0; j < i; j++)
      if (strcmp(oci_annotation_get(&m->layers[j], OCI_TITLE), title) == 0)
        return vab_error(ctx, VAB_E_FORMAT, "%s: two layers have the title "
                         "'%s'", tag, shown);
  }
  return 0;
}

void vab_remote_cache_entry_release(struct vab_remote_cache_entry *e) {
  if (e == NULL)
    return;
  free(e->record);
  for (size_t i = 0; i < e->n_layers; i++)
    free(e->layers[i].name);
  free(e->layers);
  memset(e, 0, sizeof *e);
}

/* A checked manifest's layers into e. */
static int take_layers(struct vab_ctx *ctx, const struct oci_manifest *m,
                       struct vab_remote_cache_entry *e) {
  e->layers = calloc(m->n_layers ? m->n_layers : 1, sizeof *e->layers);
  if (e->layers == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  for (size_t i = 0; i < m->n_layers; i++) {
    struct vab_remote_cache_layer *l = &e->layers[i];
    l->name = strdup(oci_annotation_get(&m->layers[i], OCI_TITLE));
    if (l->name == NULL)
      return vab_error(ctx, VAB_E_NOMEM, "out of memory");
    l->size = m->layers[i].size;
    snprintf(l->digest, sizeof l->digest, "%s", m->layers[i].digest);
    e->n_layers++;
  }
  return 0;
}

int vab_remote_cache_entry_parse(struct vab_ctx *ctx, const char *tag,
                                 const char *text, size_t len,
                                 struct vab_remote_cache_entry *e,
                                 char record_digest[72],
                                 uint64_t *record_size) {
  memset(e, 0, sizeof *e);
  struct oci_manifest m = {0};
  int r = oci_manifest_parse(ctx, tag, text, len, &m);
  if (r == 0)
    r = check_entry(ctx, NULL, tag, &m);
  if (r == 0)
    r = take_layers(ctx, &m, e);
  if (r == 0) {
    snprintf(record_digest, 72, "%s", m.config.digest);
    *record_size = m.config.size;
  }
  oci_manifest_release(&m);
  if (r < 0)
    vab_remote_cache_entry_release(e);
  return r;
}

int vab_remote_cache_lookup(struct vab_remote_cache *rc, const char *key,
                            struct vab_remote_cache_entry *e) {
  memset(e, 0, sizeof *e);
  if (connect_once(rc) < 0)
    return -1;
  char tag[80];
  step_tag(key, tag);
  struct oci_manifest m = {0};
  int found = get_manifest(rc, tag, &m, e->manifest_digest);
  int r = found < 0 ? -1 : 0;
  if (found == 1)
    r = check_entry(rc->ctx, rc->reg, tag, &m);
  if (found == 1 && r == 0)
    r = blob_pull_to_memory(rc->reg, m.config.digest, m.config.size,
                            VAB_STEP_CACHE_RECORD_MAX, (uint8_t **)&e->record);
  if (found == 1 && r == 0) {
    e->record_len = (size_t)m.config.size;
    r = take_layers(rc->ctx, &m, e);
  }
  oci_manifest_release(&m);
  if (r < 0) {
    vab_remote_cache_entry_release(e);
    return finish(rc, -1);
  }
  finish(rc, 0);
  return found;
}

int vab_remote_cache_download(struct vab_remote_cache *rc,
                              const struct vab_remote_cache_layer *layer,
                              const char *path) {
  if (connect_once(rc) < 0)
    return -1;
  return finish(rc, blob_pull_to_file(rc->reg, layer->digest, layer->size,
                                      path, layer->name));
}

/* Does the registry's manifest m list exactly these files? */
static bool same_files(const struct oci_manifest *m,
                       const struct vab_remote_cache_file *files, size_t n) {
  if (m->artifact_type == NULL ||
      strcmp(m->artifact_type, VAB_STEP_CACHE_ARTIFACT_TYPE) != 0 ||
      m->n_layers != n)
    return false;
  for (size_t i = 0; i < n; i++) {
    const struct oci_descriptor *d = &m->layers[i];
    const char *title = oci_annotation_get(d, OCI_TITLE);
    if (title == NULL || strcmp(title, files[i].name) != 0 ||
        d->size != files[i].size || strncmp(d->digest, "sha256:", 7) != 0 ||
        strcmp(d->digest + 7, files[i].sha256) != 0)
      return false;
  }
  return true;
}

int vab_remote_cache_push(struct vab_remote_cache *rc, const char *key,
                          const char *record, size_t record_len,
                          const struct vab_remote_cache_file *files,
                          size_t n_files,
                          struct vab_remote_cache_stats *stats) {
  if (connect_once(rc) < 0)
    return -1;
  struct vab_ctx *ctx = rc->ctx;
  char tag[80];
  step_tag(key, tag);
  struct blob_push_stats bs = {0};
  struct oci_manifest m = {0}, have = {0};
  char *json = NULL;
  char have_digest[72];
  uint64_t sent_before = registry_bytes_sent(rc->reg);
  int r = 0;
  /* The blobs first, always: HEAD makes it cheap, and a manifest that
   * is there already is only worth keeping if its blobs are too. */
  for (size_t i = 0; r == 0 && i < n_files; i++) {
    const struct vab_remote_cache_file *f = &files[i];
    if (!oci_title_valid(f->name)) {
      r = vab_error(ctx, VAB_E_INTERNAL, "'%s' cannot be a layer title",
                    f->name);
      break;
    }
    struct blob_source s = {.fd = f->fd, .file_len = f->size,
                            .size = f->size, .name = f->name};
    snprintf(s.digest, sizeof s.digest, "sha256:%s", f->sha256);
    r = blob_push(rc->reg, &s, rc->chunk, &bs);
  }
  int found = r == 0 ? get_manifest(rc, tag, &have, have_digest) : 0;
  if (found < 0)
    r = -1;
  if (r == 0 && found == 1 && same_files(&have, files, n_files)) {
    stats->entries_present++;
    vab_log(ctx, VAB_LOG_DEBUG, "registry cache: %s/%s:%s is there already",
            rc->ref.host, rc->ref.repo, tag);
    goto out;
  }
  struct blob_source s = {.head = (const uint8_t *)record,
                          .head_len = record_len, .fd = -1, .name = "record"};
  if (r == 0)
    r = blob_source_digest(ctx, &s);
  if (r == 0)
    r = blob_push(rc->reg, &s, rc->chunk, &bs);
  if (r == 0) {
    m.artifact_type = strdup(VAB_STEP_CACHE_ARTIFACT_TYPE);
    if (m.artifact_type == NULL ||
        oci_set_config(&m.config, VAB_STEP_CACHE_RECORD_TYPE, s.digest,
                       record_len) < 0)
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  for (size_t i = 0; r == 0 && i < n_files; i++) {
    char digest[72];
    snprintf(digest, sizeof digest, "sha256:%s", files[i].sha256);
    struct oci_descriptor *d =
        oci_add_layer(&m, VAB_STEP_CACHE_FILE_TYPE, digest, files[i].size);
    if (d == NULL || oci_annotate(&d->annotations, OCI_TITLE, files[i].name))
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  if (r == 0 && oci_annotate(&m.annotations, "io.vab.cache.key", key) < 0)
    r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  if (r == 0 && (json = oci_manifest_to_json(&m)) == NULL)
    r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  if (r == 0)
    r = put_manifest(rc, tag, json);
  if (r == 0) {
    stats->entries_pushed++;
    vab_log(ctx, VAB_LOG_DEBUG, "registry cache: pushed %s/%s:%s",
            rc->ref.host, rc->ref.repo, tag);
  }
out:
  stats->blobs_uploaded += bs.uploaded;
  stats->blobs_skipped += bs.skipped;
  stats->bytes_uploaded += registry_bytes_sent(rc->reg) - sent_before;
  free(json);
  oci_manifest_release(&m);
  oci_manifest_release(&have);
  return finish(rc, r);
}
