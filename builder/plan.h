/* The build plan: an ordered list of steps, each with a key.
 *
 * key = SHA-256(parent key || step kind || canonical YAML of the step's spec
 *               || for each host file the step reads: its path and bytes)
 *
 * so that a change to a step or to anything it reads changes its key and
 * every key after it.  Layer caching rests on these keys. */
#ifndef VAB_BUILDER_PLAN_H
#define VAB_BUILDER_PLAN_H

#include <stddef.h>
#include "vab/template.h"

enum vab_plan_kind {
  VAB_PLAN_SOURCE,
  VAB_PLAN_LAYOUT,
  VAB_PLAN_PROVISION,
  VAB_PLAN_SYSPREP,
  VAB_PLAN_TEST,
  VAB_PLAN_EXPORT,
};

struct vab_plan_step {
  enum vab_plan_kind kind;
  char label[128];                      /* "provision 2/5: shell (web.yaml:14)" */
  char name[96];                        /* "provision 2/5: shell" */
  struct vab_mark mark;                 /* where the template wrote it */
  const struct vab_step *provision;     /* VAB_PLAN_PROVISION */
  const struct vab_boot_test *test;     /* VAB_PLAN_TEST */
  const struct vab_output_spec *output; /* VAB_PLAN_EXPORT */
  char key[65];                         /* lowercase hex SHA-256 */
  char parent_key[65];                  /* "" for the first step */
};

struct vab_plan {
  struct vab_plan_step *steps;
  size_t n_steps;
};

const char *vab_plan_kind_name(enum vab_plan_kind kind);
int vab_plan_build(struct vab_ctx *ctx, const struct vab_template *t,
                   struct vab_plan *plan);
void vab_plan_release(struct vab_plan *plan);

#endif
