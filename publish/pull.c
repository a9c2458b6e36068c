/* vab_pull: a vab artifact from a registry -> files in a folder. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "publish/blob.h"
#include "publish/http.h"
#include "publish/oci.h"
#include "publish/publish.h"
#include "publish/ref.h"
#include "signing/digest.h"
#include "signing/manifest.h"
#include "signing/signing.h"

#define SIGNATURE_MAX (64u * 1024)

void vab_pull_result_release(struct vab_pull_result *result) {
  if (result == NULL)
    return;
  for (size_t i = 0; i < result->n_files; i++)
    free(result->files[i].name);
  free(result->files);
  result->files = NULL;
  result->n_files = 0;
}

/* GET the manifest, check its digest, parse it. */
static int fetch_manifest(struct vab_ctx *ctx, struct registry *reg,
                          const struct oci_ref *ref, const char *ref_text,
                          struct oci_manifest *m, char digest[72]) {
  const char *reference = ref->digest ? ref->digest : ref->tag;
  char *path = NULL;
  if (asprintf(&path, "/v2/%s/manifests/%s", ref->repo, reference) < 0)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  struct http_request req = {.method = "GET", .url = path,
                             .accept = OCI_ACCEPT,
                             .max_body = OCI_MANIFEST_MAX};
  struct http_response resp = {0};
  int r = registry_request(reg, &req, &resp);
  if (r == 0 && resp.status == 404)
    r = registry_http_error(reg, &resp, "'%s' not found", ref_text);
  else if (r == 0 && resp.status != 200)
    r = registry_http_error(reg, &resp, "cannot get manifest of '%s'",
                            ref_text);
  if (r == 0) {
    if (vab_sha256_buffer(ctx, resp.body.data, resp.body.len, digest) < 0) {
      r = -1;
    } else {
      const char *expected = ref->digest ? ref->digest : resp.docker_digest;
      char shown[100];
      registry_scrub(reg, expected, shown, sizeof shown);
      if (expected != NULL && strcmp(expected, digest) != 0)
        r = vab_error(ctx, VAB_E_SIGNATURE,
                      "manifest of '%s' has digest %s, but %s was %s",
                      ref_text, digest,
                      ref->digest ? "asked for" : "announced", shown);
    }
  }
  if (r == 0 && resp.content_type != NULL &&
      strncmp(resp.content_type, OCI_INDEX_TYPE, strlen(OCI_INDEX_TYPE)) == 0)
    r = vab_error(ctx, VAB_E_UNSUPPORTED,
                  "'%s' is an image index, not a vab appliance artifact",
                  ref_text);
  if (r == 0)
    r = oci_manifest_parse(ctx, ref_text, resp.body.data ? resp.body.data : "",
                           resp.body.len, m);
  http_response_release(&resp);
  free(path);
  return r;
}

/* Every layer needs a safe, unique title before anything is written. */
static int check_layers(struct vab_ctx *ctx, struct registry *reg,
                        const char *ref_text, const struct oci_manifest *m) {
  const char *type = m->artifact_type ? m->artifact_type : m->config.media_type;
  char shown[300];
  if (strcmp(type, VAB_ARTIFACT_TYPE) != 0) {
    registry_scrub(reg, type, shown, sizeof shown);
    vab_error(ctx, VAB_E_UNSUPPORTED,
              "'%s' is not a vab appliance artifact (its type is %s)",
              ref_text, shown);
    if (strcmp(type, OCI_CONFIG_TYPE) == 0)
      vab_diag_hint(ctx, "a containerDisk image is a container image: pull "
                         "it with podman or skopeo");
    return -1;
  }
  for (size_t i = 0; i < m->n_layers; i++) {
    const char *title = oci_annotation_get(&m->layers[i], OCI_TITLE);
    if (title == NULL)
      return vab_error(ctx, VAB_E_FORMAT,
                       "'%s': layer %zu has no %s annotation", ref_text, i + 1,
                       OCI_TITLE);
    registry_scrub(reg, title, shown, sizeof shown);
    if (!oci_title_valid(title))
      return vab_error(ctx, VAB_E_FORMAT,
                       "'%s': layer %zu has the title '%s', which is not a "
                       "plain file name; refusing to write outside the "
                       "folder",
                       ref_text, i + 1, shown);
    for (size_t j = 0; j < i; j++)
      if (strcmp(oci_annotation_get(&m->layers[j], OCI_TITLE), title) == 0)
        return vab_error(ctx, VAB_E_FORMAT,
                         "'%s': two layers have the title '%s'", ref_text,
                         shown);
  }
  return 0;
}

static const struct oci_descriptor *layer_of_type(const struct oci_manifest *m,
                                                  const char *media_type) {
  for (size_t i = 0; i < m->n_layers; i++)
    if (strcmp(m->layers[i].media_type, media_type) == 0)
      return &m->layers[i];
  return NULL;
}

/* With a key: the build manifest's signature must be good, and every
 * layer must be an artifact it lists with the same size and digest (so
 * the signature covers every byte about to be written), and the other
 * way round. */
static int verify_build(struct vab_ctx *ctx, struct registry *reg,
                        const char *ref_text, const struct oci_manifest *m,
                        struct vab_verifier *v) {
  const struct oci_descriptor *ml = layer_of_type(m, VAB_MANIFEST_LAYER_TYPE);
  const struct oci_descriptor *sl = layer_of_type(m, VAB_SIGNATURE_LAYER_TYPE);
  if (ml == NULL || sl == NULL)
    return vab_error(ctx, VAB_E_SIGNATURE,
                     "'%s' holds no signed build manifest; cannot check it "
                     "with the key",
                     ref_text);
  const char *title = oci_annotation_get(ml, OCI_TITLE);
  uint8_t *text = NULL, *sig = NULL;
  struct vab_manifest build;
  int r = -1;
  if (blob_pull_to_memory(reg, ml->digest, ml->size, VAB_MANIFEST_MAX_BYTES,
                          &text) < 0 ||
      blob_pull_to_memory(reg, sl->digest, sl->size, SIGNATURE_MAX, &sig) < 0)
    goto out;
  if (vab_verify_buffer(ctx, v, title, text, ml->size, sig, sl->size) < 0 ||
      vab_manifest_parse(ctx, title, (const char *)text, ml->size, &build) < 0)
    goto out;
  r = 0;
  for (size_t i = 0; i < m->n_layers; i++) {
    const struct oci_descriptor *d = &m->layers[i];
    if (d == ml || d == sl)
      continue;
    const char *name = oci_annotation_get(d, OCI_TITLE);
    const struct vab_manifest_artifact *a = NULL;
    for (size_t j = 0; j < build.n_artifacts; j++)
      if (strcmp(build.artifacts[j].name, name) == 0)
        a = &build.artifacts[j];
    if (a == NULL) {
      r = vab_error(ctx, VAB_E_SIGNATURE,
                    "layer '%s' is not in the signed build manifest", name);
      continue;
    }
    if (a->size != d->size || strcmp(d->digest + 7, a->sha256) != 0)
      r = vab_error(ctx, VAB_E_SIGNATURE,
                    "layer '%s' is %s (%llu bytes), the signed build manifest "
                    "says sha256:%s (%llu bytes)",
                    name, d->digest, (unsigned long long)d->size, a->sha256,
                    (unsigned long long)a->size);
  }
  for (size_t j = 0; j < build.n_artifacts; j++) {
    bool present = false;
    for (size_t i = 0; i < m->n_layers && !present; i++)
      present = strcmp(oci_annotation_get(&m->layers[i], OCI_TITLE),
                       build.artifacts[j].name) == 0;
    if (!present)
      r = vab_error(ctx, VAB_E_SIGNATURE,
                    "artifact '%s' of the signed build manifest is missing "
                    "from '%s'",
                    build.artifacts[j].name, ref_text);
  }
  vab_manifest_release(&build);
out:
  free(text);
  free(sig);
  return r;
}

/* The layers' declared sizes, less what .part files already hold, must
 * fit in the folder's free space before a byte is downloaded. */
static int check_free_space(struct vab_ctx *ctx, const char *dir,
                            const struct oci_manifest *m) {
  uint64_t need = 0;
  for (size_t i = 0; i < m->n_layers; i++) {
    const struct oci_descriptor *d = &m->layers[i];
    char part[4096];
    snprintf(part, sizeof part, "%s/.%s.part", dir,
             oci_annotation_get(d, OCI_TITLE));
    struct stat st;
    uint64_t have = lstat(part, &st) == 0 && S_ISREG(st.st_mode) &&
                            (uint64_t)st.st_size <= d->size
                        ? (uint64_t)st.st_size
                        : 0;
    if (d->size - have > UINT64_MAX - need)
      return vab_error(ctx, VAB_E_FORMAT,
                       "the layers' declared sizes add up to more than 2^64 "
                       "bytes");
    need += d->size - have;
  }
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct statvfs sv;
  if (fd < 0 || fstatvfs(fd, &sv) < 0) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    return vab_error_errno(ctx, VAB_E_IO, e,
                           "cannot check the free space of '%s'", dir);
  }
  close(fd);
  uint64_t avail = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
  if (need > avail)
    return vab_error(ctx, VAB_E_IO,
                     "not enough free space in '%s' for the download: its "
                     "layers declare %" PRIu64 " bytes still to fetch, %" PRIu64
                     " are free",
                     dir, need, avail);
  return 0;
}

static int make_dir(struct vab_ctx *ctx, const char *dir) {
  if (mkdir(dir, 0755) == 0)
    return 0;
  struct stat st;
  if (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
    return 0;
  return vab_error_errno(ctx, VAB_E_IO, errno, "cannot create folder '%s'",
                         dir);
}

int vab_pull(struct vab_ctx *ctx, const char *ref_text, const char *dir,
             const struct vab_pull_opts *opts, struct vab_pull_result *result) {
  struct oci_ref ref;
  struct registry *reg = NULL;
  struct oci_manifest m = {0};
  struct vab_pull_result local = {0};
  if (result == NULL)
    result = &local;
  memset(result, 0, sizeof *result);
  int r = -1;
  if (oci_ref_parse(ctx, ref_text, &ref) < 0)
    return -1;
  if (ref.tag == NULL && ref.digest == NULL) {
    vab_error(ctx, VAB_E_USAGE, "'%s' names no tag or digest; write "
                                "HOST/REPO:TAG or HOST/REPO@sha256:...",
              ref_text);
    goto out;
  }
  if (registry_open(ctx, ref.host, ref.repo, &opts->registry, false, &reg) < 0 ||
      fetch_manifest(ctx, reg, &ref, ref_text, &m, result->digest) < 0 ||
      check_layers(ctx, reg, ref_text, &m) < 0)
    goto out;
  if (opts->verifier != NULL) {
    if (verify_build(ctx, reg, ref_text, &m, opts->verifier) < 0)
      goto out;
    result->verified = true;
  }
  if (make_dir(ctx, dir) < 0 || check_free_space(ctx, dir, &m) < 0)
    goto out;
  result->files = calloc(m.n_layers ? m.n_layers : 1, sizeof *result->files);
  if (result->files == NULL) {
    vab_error(ctx, VAB_E_NOMEM, "out of memory");
    goto out;
  }
  /* Everything lands under .TITLE.part first; final names are given only
   * once every layer is complete and checked. */
  for (size_t i = 0; i < m.n_layers; i++) {
    const struct oci_descriptor *d = &m.layers[i];
    const char *title = oci_annotation_get(d, OCI_TITLE);
    char part[4096];
    snprintf(part, sizeof part, "%s/.%s.part", dir, title);
    struct stat st;
    uint64_t before = stat(part, &st) == 0 ? (uint64_t)st.st_size : 0;
    if (blob_pull_to_file(reg, d->digest, d->size, part, title) < 0)
      goto out;
    result->bytes_downloaded += d->size > before ? d->size - before : 0;
    struct vab_pull_file *f = &result->files[result->n_files];
    f->name = strdup(title);
    if (f->name == NULL) {
      vab_error(ctx, VAB_E_NOMEM, "out of memory");
      goto out;
    }
    f->size = d->size;
    memcpy(f->digest, d->digest, 72);
    result->n_files++;
  }
  for (size_t i = 0; i < result->n_files; i++) {
    char part[4096], final[4096];
    snprintf(part, sizeof part, "%s/.%s.part", dir, result->files[i].name);
    snprintf(final, sizeof final, "%s/%s", dir, result->files[i].name);
    if (rename(part, final) < 0) {
      vab_error_errno(ctx, VAB_E_IO, errno, "cannot rename '%s' to '%s'", part,
                      final);
      goto out;
    }
  }
  r = 0;
out:
  if (r < 0)
    vab_pull_result_release(result);
  vab_pull_result_release(&local);
  oci_manifest_release(&m);
  registry_close(reg);
  oci_ref_release(&ref);
  return r;
}
