/* The sysprep stage: reset the guest's identity so that every VM made from
 * the image is unique, and drop what only the build needed.  Each
 * operation of docs/template.md ("sysprep") is one entry of a table in
 * sysprep.c, the only list of them: the template schema gets the names
 * from it (builder/vocab.c), and the template chooses which run. */
#ifndef VAB_BUILDER_SYSPREP_H
#define VAB_BUILDER_SYSPREP_H

#include <stdbool.h>
#include "vab/template.h"
#include "builder/guest.h"

/* The operation names, in run order, NULL-terminated. */
const char *const *vab_sysprep_operations(void);

/* What a sysprep will do, without a guest. */
struct vab_sysprep_plan {
  char *script;          /* one shell script for the chosen operations */
  char *names;           /* "machine-id, logs, trim" for the log */
  bool trim;             /* fstrim afterwards */
  bool ssh_hostkeys;     /* install the first-boot key unit */
};
int vab_sysprep_plan(struct vab_ctx *ctx, const struct vab_sysprep *sysprep,
                     struct vab_sysprep_plan *plan);
void vab_sysprep_plan_release(struct vab_sysprep_plan *plan);

/* Run the template's operations against the mounted guest, "trim" last. */
int vab_sysprep_run(struct vab_ctx *ctx, const struct vab_sysprep *sysprep,
                    struct vab_guest *g);

#endif
