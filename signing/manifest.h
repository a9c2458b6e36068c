/* The build manifest, NAME-VERSION.manifest.json: every artifact's name,
 * format, target, size and SHA-256, the template digest, the vab version
 * and the build time (SOURCE_DATE_EPOCH when set). */
#ifndef VAB_SIGNING_MANIFEST_H
#define VAB_SIGNING_MANIFEST_H

#include <stddef.h>
#include <stdint.h>
#include "vab/error.h"

/* Manifests are small; a larger file is refused, never read whole. */
#define VAB_MANIFEST_MAX_BYTES (4u * 1024 * 1024)

struct vab_manifest_artifact {
  char *name;          /* a plain file name in the manifest's folder */
  char *format;
  char *target;        /* or NULL */
  uint64_t size;
  char sha256[65];
};

struct vab_manifest {
  char *name;
  char *version;
  char *template_digest;   /* "sha256:<hex>" */
  char *vab_version;
  int64_t build_time;      /* seconds since the epoch, UTC */
  struct vab_manifest_artifact *artifacts;
  size_t n_artifacts;
};

/* The manifest's canonical JSON text (what is signed). */
char *vab_manifest_to_json(struct vab_ctx *ctx, const struct vab_manifest *m);
int vab_manifest_write(struct vab_ctx *ctx, const char *path,
                       const struct vab_manifest *m);
int vab_manifest_parse(struct vab_ctx *ctx, const char *path,
                       const char *text, size_t len, struct vab_manifest *m);
void vab_manifest_release(struct vab_manifest *m);

/* Check every artifact's size and SHA-256 against the files in dir.  Each
 * failure is an error naming the artifact; returns -1 if any failed. */
int vab_manifest_check_artifacts(struct vab_ctx *ctx, const char *dir,
                                 const struct vab_manifest *m,
                                 size_t *n_failed);

/* Build time: SOURCE_DATE_EPOCH if set and valid, else now. */
int vab_build_time(struct vab_ctx *ctx, int64_t *out);
/* "2026-11-26T06:00:00Z" */
void vab_format_utc(int64_t t, char out[32]);

/* path is a manifest or a folder holding exactly one *.manifest.json;
 * *manifest is malloc'd. */
int vab_manifest_find(struct vab_ctx *ctx, const char *path, char **manifest);

struct vab_verifier;
/* Check the detached signature (MANIFEST.sig) and then every artifact.
 * Each failure is recorded and named; *n_failed counts them. */
int vab_verify_build(struct vab_ctx *ctx, struct vab_verifier *v,
                     const char *manifest_path, size_t *n_failed);

#endif
