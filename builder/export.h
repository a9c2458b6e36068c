/* The export stage: write every output of the template from the finished
 * disk through the format writers, each atomically, each checked, each
 * hashed. */
#ifndef VAB_BUILDER_EXPORT_H
#define VAB_BUILDER_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vab/template.h"

/* `vm: vmx` on a disk that is not monolithicSparse: refused by validate
 * (builder/vocab.c) and again by the export, with these words. */
#define VAB_VMX_NEEDS_SPARSE                                               \
  "'vm: vmx' needs 'subformat: monolithicSparse': VMware Workstation "     \
  "does not open streamOptimized disks"

struct vab_signer;

struct vab_artifact {
  char *path;          /* final path in the output folder */
  char *file_name;     /* NAME-VERSION[-TARGET].EXT */
  char *format;        /* "qcow2", "ova"... */
  char *target;        /* ova target, or NULL */
  uint64_t size;       /* bytes */
  char sha256[65];
  double seconds;
};

struct vab_export_opts {
  const char *disk_path;       /* the finished disk */
  const char *disk_format;     /* "raw" or "qcow2" */
  const char *output_dir;      /* created if missing */
  const char *const *only;     /* --only FORMAT filter, or NULL */
  double *output_seconds;      /* NULL, or one per template output: filled
                                  with each export's seconds */
  size_t n_only;
  const char *guest_os;        /* detected guest ("debian12"), or NULL */
  struct vab_signer *signer;   /* `sign:`: OVAs get a .cert, or NULL */
  const bool *skip;            /* NULL, or one per template output: true
                                  leaves it out (the step cache had it) */
};

int vab_export_outputs(struct vab_ctx *ctx, const struct vab_template *t,
                       const struct vab_export_opts *opts,
                       struct vab_artifact **artifacts, size_t *n_artifacts);
void vab_artifacts_free(struct vab_artifact *a, size_t n);

/* NAME-VERSION[-SUFFIX].EXT, refusing anything that is not a plain file
 * name (a template can never steer a path outside the output folder). */
int vab_artifact_name(struct vab_ctx *ctx, const struct vab_template *t,
                      const char *suffix, const char *ext, char **out);

/* The file name output index of t gets (it depends on the other outputs
 * of the same extension: web-1.0.qcow2, or web-1.0-1.qcow2 beside a
 * second qcow2). */
int vab_export_file_name(struct vab_ctx *ctx, const struct vab_template *t,
                         size_t index, char **out);

#endif
