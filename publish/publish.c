/* vab_publish_dir: a build folder -> an OCI artifact (+ containerDisk,
 * + cosign signature) in a registry. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "core/files.h"
#include "publish/blob.h"
#include "publish/base64.h"
#include "publish/containerdisk.h"
#include "publish/cosign.h"
#include "publish/http.h"
#include "publish/oci.h"
#include "publish/publish.h"
#include "publish/ref.h"
#include "signing/digest.h"
#include "signing/manifest.h"
#include "signing/signing.h"
#include "vab/progress.h"

#define SIGNATURE_MAX (64u * 1024)

/* Everything one publish run holds; released in one place. */
struct publish_run {
  struct vab_ctx *ctx;
  const struct vab_publish_opts *opts;
  struct oci_ref ref;
  struct registry *reg;
  char *manifest_path;
  uint8_t *manifest_text;
  size_t manifest_len;
  uint8_t *sig;
  size_t sig_len;
  struct vab_manifest build;
  const char *tag;
  char created[32];
  uint64_t chunk;
  struct blob_push_stats stats;
  int *fds;
};

static int nomem(struct vab_ctx *ctx) {
  return vab_error(ctx, VAB_E_NOMEM, "out of memory");
}

/* A blob held in memory (configs, the build manifest, payloads). */
static int memory_blob(struct vab_ctx *ctx, struct blob_source *s,
                       const void *data, size_t len, const char *name) {
  memset(s, 0, sizeof *s);
  s->head = data;
  s->head_len = len;
  s->fd = -1;
  s->name = name;
  return blob_source_digest(ctx, s);
}

static int push_memory(struct publish_run *run, const void *data, size_t len,
                       const char *name, char digest[72]) {
  struct blob_source s;
  if (memory_blob(run->ctx, &s, data, len, name) < 0 ||
      blob_push(run->reg, &s, run->chunk, &run->stats) < 0)
    return -1;
  memcpy(digest, s.digest, 72);
  return 0;
}

/* PUT a manifest under reference and check the digest the registry
 * computed is ours. */
static int put_manifest(struct publish_run *run, const char *reference,
                        const char *json, const char *expected) {
  char *path = NULL;
  if (asprintf(&path, "/v2/%s/manifests/%s", run->ref.repo, reference) < 0)
    return nomem(run->ctx);
  struct http_request req = {.method = "PUT", .url = path,
                             .content_type = OCI_MANIFEST_TYPE,
                             .body = json, .body_len = strlen(json)};
  struct http_response resp = {0};
  int r = registry_request(run->reg, &req, &resp);
  if (r == 0 && resp.status != 201)
    r = registry_http_error(run->reg, &resp, "cannot store manifest %s:%s",
                            run->ref.repo, reference);
  if (r == 0 && resp.docker_digest != NULL &&
      strcmp(resp.docker_digest, expected) != 0) {
    char shown[100];
    registry_scrub(run->reg, resp.docker_digest, shown, sizeof shown);
    r = vab_error(run->ctx, VAB_E_NETWORK,
                  "registry %s stored manifest %s as %s, not %s",
                  run->ref.host, reference, shown, expected);
  }
  if (r == 0)
    vab_log(run->ctx, VAB_LOG_INFO, "pushed %s/%s:%s (%s)", run->ref.host,
            run->ref.repo, reference, expected);
  http_response_release(&resp);
  free(path);
  return r;
}

static int digest_of_text(struct vab_ctx *ctx, const char *text,
                          char out[72]) {
  struct blob_source s;
  if (memory_blob(ctx, &s, text, strlen(text), "manifest") < 0)
    return -1;
  memcpy(out, s.digest, 72);
  return 0;
}

/* The manifest under the main tag and every extra tag; suffix is added
 * to each (e.g. "-containerdisk"). */
static int put_tagged(struct publish_run *run, const char *json,
                      const char *suffix, char digest[72]) {
  if (digest_of_text(run->ctx, json, digest) < 0)
    return -1;
  for (size_t i = 0; i <= run->opts->n_tags; i++) {
    const char *tag = i == 0 ? run->tag : run->opts->tags[i - 1];
    char full[256];
    snprintf(full, sizeof full, "%s%s", tag, suffix);
    if (!oci_tag_valid(full))
      return vab_error(run->ctx, VAB_E_USAGE, "tag '%s' is not valid", full);
    if (put_manifest(run, full, json, digest) < 0)
      return -1;
  }
  return 0;
}

static int load_build(struct publish_run *run, const char *dir) {
  struct vab_ctx *ctx = run->ctx;
  if (vab_manifest_find(ctx, dir, &run->manifest_path) < 0 ||
      vab_read_small_file(ctx, run->manifest_path, VAB_MANIFEST_MAX_BYTES,
                          &run->manifest_text, &run->manifest_len) < 0 ||
      vab_manifest_parse(ctx, run->manifest_path,
                         (const char *)run->manifest_text, run->manifest_len,
                         &run->build) < 0)
    return -1;
  char sig_path[4096];
  snprintf(sig_path, sizeof sig_path, "%s.sig", run->manifest_path);
  struct stat st;
  if (stat(sig_path, &st) == 0) {
    if (vab_read_small_file(ctx, sig_path, SIGNATURE_MAX, &run->sig,
                            &run->sig_len) < 0)
      return -1;
  } else {
    vab_warn_at(ctx, NULL, "'%s' is not signed: publishing it without a "
                           "signature",
                run->manifest_path);
  }
  /* created: SOURCE_DATE_EPOCH when set, so republishing is reproducible;
   * else when the build was made. */
  int64_t when = run->build.build_time;
  if (getenv("SOURCE_DATE_EPOCH") != NULL && vab_build_time(ctx, &when) < 0)
    return -1;
  vab_format_utc(when, run->created);
  return 0;
}

/* Open every artifact and check it is the size the manifest says. */
static int open_artifacts(struct publish_run *run, const char *dir) {
  struct vab_ctx *ctx = run->ctx;
  run->fds = calloc(run->build.n_artifacts + 1, sizeof *run->fds);
  if (run->fds == NULL)
    return nomem(ctx);
  for (size_t i = 0; i < run->build.n_artifacts; i++)
    run->fds[i] = -1;
  for (size_t i = 0; i < run->build.n_artifacts; i++) {
    const struct vab_manifest_artifact *a = &run->build.artifacts[i];
    char path[4096 + 260];  /* dir + "/" + a file name */
    snprintf(path, sizeof path, "%s/%s", dir, a->name);
    if (!oci_title_valid(a->name))
      return vab_error(ctx, VAB_E_USAGE,
                       "artifact name '%s' cannot be a layer title", a->name);
    struct stat st;
    bool not_regular;
    run->fds[i] = open_regular_file(path, &st, &not_regular);
    if (run->fds[i] < 0 && not_regular)
      return vab_error(ctx, VAB_E_IO, "artifact '%s' is not a regular file",
                       path);
    if (run->fds[i] < 0)
      return vab_error_errno(ctx, VAB_E_IO, errno, "cannot open artifact '%s'",
                             path);
    if ((uint64_t)st.st_size != a->size)
      return vab_error(ctx, VAB_E_SIGNATURE,
                       "artifact '%s' is %lld bytes, the manifest says %llu",
                       a->name, (long long)st.st_size,
                       (unsigned long long)a->size);
  }
  return 0;
}

static int annotate_manifest(struct publish_run *run, struct oci_manifest *m,
                             bool with_title) {
  int r = oci_annotate(&m->annotations,
                       "org.opencontainers.image.created", run->created);
  r |= oci_annotate(&m->annotations,
                    "org.opencontainers.image.version", run->build.version);
  if (with_title)
    r |= oci_annotate(&m->annotations, OCI_TITLE,
                      run->build.name);
  r |= oci_annotate(&m->annotations, "io.vab.name",
                    run->build.name);
  r |= oci_annotate(&m->annotations,
                    "io.vab.template.digest", run->build.template_digest);
  r |= oci_annotate(&m->annotations, "io.vab.vab-version",
                    run->build.vab_version);
  return r ? nomem(run->ctx) : 0;
}

/* Annotate m, and push it under every tag with suffix ("", or
 * "-containerdisk"). */
static int push_manifest(struct publish_run *run, struct oci_manifest *m,
                         const char *suffix, char digest[72]) {
  if (annotate_manifest(run, m, true) < 0)
    return -1;
  char *json = oci_manifest_to_json(m);
  if (json == NULL)
    return nomem(run->ctx);
  int r = put_tagged(run, json, suffix, digest);
  free(json);
  return r;
}

/* The artifact: empty config, one layer per artifact, then the build
 * manifest and its signature. */
static int publish_artifact(struct publish_run *run, char digest[72]) {
  struct vab_ctx *ctx = run->ctx;
  struct oci_manifest m = {0};
  char config_digest[72], manifest_digest[72], sig_digest[72];
  int r = -1;
  if (push_memory(run, "{}", 2, "empty config", config_digest) < 0)
    goto out;
  if (strcmp(config_digest, OCI_EMPTY_DIGEST) != 0) {
    vab_error(ctx, VAB_E_INTERNAL, "empty config digest is %s", config_digest);
    goto out;
  }
  m.artifact_type = strdup(VAB_ARTIFACT_TYPE);
  if (m.artifact_type == NULL ||
      oci_set_config(&m.config, OCI_EMPTY_TYPE, OCI_EMPTY_DIGEST, 2) < 0) {
    nomem(ctx);
    goto out;
  }
  for (size_t i = 0; i < run->build.n_artifacts; i++) {
    const struct vab_manifest_artifact *a = &run->build.artifacts[i];
    struct blob_source s = {.fd = run->fds[i], .file_len = a->size,
                            .size = a->size, .name = a->name};
    snprintf(s.digest, sizeof s.digest, "sha256:%s", a->sha256);
    if (blob_push(run->reg, &s, run->chunk, &run->stats) < 0)
      goto out;
    struct oci_descriptor *d = oci_add_layer(
        &m, oci_media_type_for_format(a->format), s.digest, a->size);
    if (d == NULL ||
        oci_annotate(&d->annotations, OCI_TITLE, a->name) ||
        oci_annotate(&d->annotations, "io.vab.format",
                     a->format) ||
        (a->target && oci_annotate(&d->annotations,
                                   "io.vab.target", a->target))) {
      nomem(ctx);
      goto out;
    }
  }
  const char *manifest_name = path_base_name(run->manifest_path);
  if (push_memory(run, run->manifest_text, run->manifest_len, manifest_name,
                  manifest_digest) < 0)
    goto out;
  struct oci_descriptor *d = oci_add_layer(&m, VAB_MANIFEST_LAYER_TYPE,
                                           manifest_digest, run->manifest_len);
  if (d == NULL ||
      oci_annotate(&d->annotations, OCI_TITLE,
                   manifest_name) < 0) {
    nomem(ctx);
    goto out;
  }
  if (run->sig != NULL) {
    char sig_name[300];
    snprintf(sig_name, sizeof sig_name, "%s.sig", manifest_name);
    if (push_memory(run, run->sig, run->sig_len, sig_name, sig_digest) < 0)
      goto out;
    d = oci_add_layer(&m, VAB_SIGNATURE_LAYER_TYPE, sig_digest, run->sig_len);
    if (d == NULL ||
        oci_annotate(&d->annotations, OCI_TITLE,
                     sig_name) < 0) {
      nomem(ctx);
      goto out;
    }
  }
  r = push_manifest(run, &m, "", digest);
out:
  oci_manifest_release(&m);
  return r;
}

/* The containerDisk image of the (one) qcow2 artifact. */
static int publish_containerdisk(struct publish_run *run, char digest[72]) {
  struct vab_ctx *ctx = run->ctx;
  size_t qcow2 = run->build.n_artifacts;
  for (size_t i = 0; i < run->build.n_artifacts; i++)
    if (strcmp(run->build.artifacts[i].format, "qcow2") == 0) {
      if (qcow2 != run->build.n_artifacts)
        return vab_error(ctx, VAB_E_USAGE,
                         "--containerdisk: the build has more than one qcow2; "
                         "a containerDisk holds exactly one disk");
      qcow2 = i;
    }
  if (qcow2 == run->build.n_artifacts)
    return vab_error(ctx, VAB_E_USAGE,
                     "--containerdisk needs a qcow2 artifact, and the build "
                     "has none");
  const struct vab_manifest_artifact *a = &run->build.artifacts[qcow2];
  uint8_t *head = NULL, *tail = NULL;
  size_t head_len = 0, tail_len = 0;
  char *config = NULL;
  struct oci_manifest m = {0};
  int r = -1;
  if (containerdisk_tar(ctx, a->name, a->size, run->build.build_time, &head,
                        &head_len, &tail, &tail_len) < 0)
    return -1;
  char layer_name[300];
  snprintf(layer_name, sizeof layer_name, "containerDisk layer of %s", a->name);
  struct blob_source layer = {.head = head, .head_len = head_len,
                              .fd = run->fds[qcow2], .file_len = a->size,
                              .tail = tail, .tail_len = tail_len,
                              .name = layer_name};
  char config_digest[72];
  vab_log(ctx, VAB_LOG_INFO, "hashing the containerDisk layer of %s", a->name);
  if (blob_source_digest(ctx, &layer) < 0 ||
      blob_push(run->reg, &layer, run->chunk, &run->stats) < 0)
    goto out;
  config = containerdisk_config(layer.digest, run->created, run->build.name,
                                run->build.version);
  if (config == NULL) {
    nomem(ctx);
    goto out;
  }
  if (push_memory(run, config, strlen(config), "containerDisk config",
                  config_digest) < 0)
    goto out;
  if (oci_set_config(&m.config, OCI_CONFIG_TYPE, config_digest,
                     strlen(config)) < 0 ||
      oci_add_layer(&m, OCI_LAYER_TAR_TYPE, layer.digest, layer.size) == NULL) {
    nomem(ctx);
    goto out;
  }
  r = push_manifest(run, &m, "-containerdisk", digest);
out:
  free(head);
  free(tail);
  free(config);
  oci_manifest_release(&m);
  return r;
}

/* A cosign-style signature of the manifest with this digest. */
static int publish_signature(struct publish_run *run, const char *digest,
                             char tag[80]) {
  struct vab_ctx *ctx = run->ctx;
  char reference[600];
  snprintf(reference, sizeof reference, "%s/%s", run->ref.host, run->ref.repo);
  char *payload = cosign_payload(reference, digest);
  char *config = NULL, *sig64 = NULL, *json = NULL;
  uint8_t *sig = NULL;
  size_t sig_len = 0;
  struct oci_manifest m = {0};
  char payload_digest[72], config_digest[72], manifest_digest[72];
  int r = -1;
  if (payload == NULL) {
    nomem(ctx);
    goto out;
  }
  if (vab_sign_buffer(ctx, run->opts->signer, payload, strlen(payload), &sig,
                      &sig_len) < 0)
    goto out;
  sig64 = base64_encode(sig, sig_len);
  if (sig64 == NULL) {
    nomem(ctx);
    goto out;
  }
  if (push_memory(run, payload, strlen(payload), "signature payload",
                  payload_digest) < 0)
    goto out;
  config = cosign_config(payload_digest);
  if (config == NULL) {
    nomem(ctx);
    goto out;
  }
  if (push_memory(run, config, strlen(config), "signature config",
                  config_digest) < 0)
    goto out;
  struct oci_descriptor *d = NULL;
  if (oci_set_config(&m.config, OCI_CONFIG_TYPE, config_digest,
                     strlen(config)) < 0 ||
      (d = oci_add_layer(&m, COSIGN_LAYER_TYPE, payload_digest,
                         strlen(payload))) == NULL ||
      oci_annotate(&d->annotations,
                   COSIGN_SIGNATURE_ANNOTATION, sig64) < 0 ||
      (json = oci_manifest_to_json(&m)) == NULL) {
    nomem(ctx);
    goto out;
  }
  cosign_tag(digest, tag);
  if (digest_of_text(ctx, json, manifest_digest) < 0 ||
      put_manifest(run, tag, json, manifest_digest) < 0)
    goto out;
  r = 0;
out:
  free(payload);
  free(config);
  free(sig64);
  free(sig);
  free(json);
  oci_manifest_release(&m);
  return r;
}

static int check_options(struct publish_run *run) {
  struct vab_ctx *ctx = run->ctx;
  if (run->ref.digest != NULL)
    return vab_error(ctx, VAB_E_USAGE, "%s", OCI_DIGEST_PUSH_REFUSED);
  for (size_t i = 0; i < run->opts->n_tags; i++)
    if (!oci_tag_valid(run->opts->tags[i]))
      return vab_error(ctx, VAB_E_USAGE,
                       "tag '%s' is not valid (at most 128 of A-Z a-z 0-9 . "
                       "_ -, not starting with . or -)",
                       run->opts->tags[i]);
  return 0;
}

int vab_publish_dir(struct vab_ctx *ctx, const char *dir, const char *ref,
                    const struct vab_publish_opts *opts,
                    struct vab_publish_result *result) {
  struct publish_run run = {.ctx = ctx, .opts = opts};
  struct vab_publish_result local;
  if (result == NULL)
    result = &local;
  memset(result, 0, sizeof *result);
  run.chunk = opts->registry.chunk_size ? opts->registry.chunk_size
                                        : VAB_PUBLISH_DEFAULT_CHUNK;
  int r = -1;
  if (oci_ref_parse(ctx, ref, &run.ref) < 0 || check_options(&run) < 0 ||
      load_build(&run, dir) < 0)
    goto out;
  run.tag = run.ref.tag ? run.ref.tag : run.build.version;
  if (!oci_tag_valid(run.tag)) {
    vab_error(ctx, VAB_E_USAGE,
              "the build's version '%s' is not a valid tag; give one in the "
              "reference (HOST/REPO:TAG)",
              run.tag);
    goto out;
  }
  bool cosign = false;
  if (opts->signer != NULL) {
    if (vab_signer_type(opts->signer) == VAB_KEY_ECDSA_P256)
      cosign = true;
    else
      vab_warn_at(ctx, NULL,
                  "the signing key is %s: cosign signatures need ecdsa-p256, "
                  "so none is pushed",
                  vab_key_type_name(vab_signer_type(opts->signer)));
  }
  /* Artifacts sit beside the manifest, whether dir named a folder or the
   * manifest itself. */
  char artifacts_dir[4096];
  snprintf(artifacts_dir, sizeof artifacts_dir, "%.*s",
           (int)(path_base_name(run.manifest_path) - run.manifest_path),
           run.manifest_path);
  if (artifacts_dir[0] == '\0')
    snprintf(artifacts_dir, sizeof artifacts_dir, ".");
  if (open_artifacts(&run, artifacts_dir) < 0 ||
      registry_open(ctx, run.ref.host, run.ref.repo, &opts->registry, true,
                    &run.reg) < 0)
    goto out;
  if (publish_artifact(&run, result->digest) < 0)
    goto out;
  if (opts->containerdisk &&
      publish_containerdisk(&run, result->containerdisk_digest) < 0)
    goto out;
  if (cosign) {
    char tag[80];
    if (publish_signature(&run, result->digest, result->signature_tag) < 0)
      goto out;
    if (opts->containerdisk &&
        publish_signature(&run, result->containerdisk_digest, tag) < 0)
      goto out;
  }
  r = 0;
out:
  result->blobs_uploaded = run.stats.uploaded;
  result->blobs_skipped = run.stats.skipped;
  result->bytes_uploaded = run.reg ? registry_bytes_sent(run.reg) : 0;
  registry_close(run.reg);
  if (run.fds != NULL)
    for (size_t i = 0; i < run.build.n_artifacts; i++)
      if (run.fds[i] >= 0)
        close(run.fds[i]);
  free(run.fds);
  vab_manifest_release(&run.build);
  free(run.manifest_path);
  free(run.manifest_text);
  free(run.sig);
  oci_ref_release(&run.ref);
  return r;
}
