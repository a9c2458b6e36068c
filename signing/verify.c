/* Finding a build's manifest and verifying a whole build. */
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/files.h"
#include "signing/manifest.h"
#include "signing/signing.h"

#define MANIFEST_SUFFIX ".manifest.json"
#define SIGNATURE_MAX (64u * 1024)

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n > m && strcmp(s + n - m, suffix) == 0;
}

int vab_manifest_find(struct vab_ctx *ctx, const char *path, char **manifest) {
  struct stat st;
  *manifest = NULL;
  if (stat(path, &st) < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot open '%s'", path);
  if (!S_ISDIR(st.st_mode)) {
    *manifest = strdup(path);
    return *manifest ? 0 : vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  DIR *dir = opendir(path);
  if (dir == NULL)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot read folder '%s'",
                           path);
  char *found = NULL;
  int count = 0;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    if (!ends_with(e->d_name, MANIFEST_SUFFIX))
      continue;
    if (count++ == 0 && asprintf(&found, "%s/%s", path, e->d_name) < 0)
      found = NULL;
  }
  closedir(dir);
  if (count == 0)
    return vab_error(ctx, VAB_E_IO, "no *%s in '%s'", MANIFEST_SUFFIX, path);
  if (count > 1) {
    free(found);
    return vab_error(ctx, VAB_E_USAGE,
                     "'%s' holds %d manifests; name the one to use", path,
                     count);
  }
  if (found == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  *manifest = found;
  return 0;
}

int vab_verify_build(struct vab_ctx *ctx, struct vab_verifier *v,
                     const char *manifest_path, size_t *n_failed) {
  size_t failed = 0;
  uint8_t *text = NULL, *sig = NULL;
  size_t len = 0, sig_len = 0;
  char sig_path[4096];
  snprintf(sig_path, sizeof sig_path, "%s.sig", manifest_path);

  if (vab_read_small_file(ctx, manifest_path, VAB_MANIFEST_MAX_BYTES, &text,
                          &len) < 0) {
    *n_failed = 1;
    return -1;
  }
  if (vab_read_small_file(ctx, sig_path, SIGNATURE_MAX, &sig, &sig_len) < 0) {
    failed++;
  } else if (vab_verify_buffer(ctx, v, manifest_path, text, len, sig,
                               sig_len) < 0) {
    failed++;
  }
  /* Check the artifacts even after a bad signature, so that the user
   * learns every problem in one run. */
  struct vab_manifest m;
  if (vab_manifest_parse(ctx, manifest_path, (const char *)text, len, &m) < 0) {
    failed++;
  } else {
    char *copy = strdup(manifest_path);
    size_t bad = 0;
    if (copy == NULL) {
      vab_error(ctx, VAB_E_NOMEM, "out of memory");
      failed++;
    } else {
      vab_manifest_check_artifacts(ctx, dirname(copy), &m, &bad);
      failed += bad;
    }
    free(copy);
    vab_manifest_release(&m);
  }
  free(text);
  free(sig);
  *n_failed = failed;
  return failed ? -1 : 0;
}
