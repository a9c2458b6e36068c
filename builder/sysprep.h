/* The sysprep stage: reset the guest's identity so that every VM made from
 * the image is unique, and drop what only the build needed.  Each
 * operation of docs/template.md ("sysprep") is one entry of a table in
 * sysprep.c; the template chooses which run. */
#ifndef VAB_BUILDER_SYSPREP_H
#define VAB_BUILDER_SYSPREP_H

#include "vab/template.h"
#include "builder/guest.h"

/* Run the template's operations against the mounted guest, "trim" last. */
int vab_sysprep_run(struct vab_ctx *ctx, const struct vab_sysprep *sysprep,
                    struct vab_guest *g);

#endif
