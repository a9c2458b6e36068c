/* Test helper: write a build manifest listing the given files, as
 * `vab build` would.   make-manifest OUT.manifest.json FILE...          */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <libgen.h>

#include "vab/vab.h"
#include "signing/digest.h"
#include "signing/manifest.h"

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: make-manifest OUT FILE...\n");
    return 2;
  }
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_manifest m = {0};
  m.name = "app";
  m.version = "1.0";
  m.vab_version = (char *)vab_version();
  m.template_digest =
      "sha256:0000000000000000000000000000000000000000000000000000000000000000";
  int r = vab_build_time(ctx, &m.build_time);
  m.n_artifacts = (size_t)(argc - 2);
  m.artifacts = calloc(m.n_artifacts + 1, sizeof *m.artifacts);
  for (int i = 2; r == 0 && i < argc; i++) {
    struct vab_manifest_artifact *a = &m.artifacts[i - 2];
    struct stat st;
    uint8_t digest[32];
    char *copy = strdup(argv[i]);
    a->name = strdup(basename(copy));
    free(copy);
    char *dot = strrchr(a->name, '.');
    a->format = strdup(dot ? dot + 1 : "raw");
    if (stat(argv[i], &st) < 0 || vab_sha256_file(ctx, argv[i], digest) < 0) {
      r = -1;
      break;
    }
    a->size = (uint64_t)st.st_size;
    vab_hex(digest, 32, a->sha256);
  }
  if (r == 0)
    r = vab_manifest_write(ctx, argv[1], &m);
  for (size_t i = 0; i < vab_diag_count(ctx); i++)
    fprintf(stderr, "make-manifest: %s\n", vab_diag_get(ctx, i)->message);
  for (size_t i = 0; i < m.n_artifacts; i++) {
    free(m.artifacts[i].name);
    free(m.artifacts[i].format);
  }
  free(m.artifacts);
  vab_ctx_free(ctx);
  return r == 0 ? 0 : 1;
}
