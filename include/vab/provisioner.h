/* vab: provisioners, the run half of a step type.
 *
 * A step type (one `type:` of step in `provisioners:`) has a schema half,
 * struct vab_step_type in vab/step.h, which the template layer loads and
 * checks steps with, and this run half, which does the step inside the
 * builder VM.  Both are const structs in provisioners/<name>.c, listed in
 * provisioners/registry.c; the builder finds a step's run half by the
 * step's type name.  Every step type has one (tests/unit/test-registration.c
 * checks it), so vab_provisioner_by_name() of a loaded step never fails.
 * The run half works on the guest through the interface of vab/guest.h
 * (in a build, the builder VM with the guest mounted; in tests, a fake).
 */
#ifndef VAB_PROVISIONER_H
#define VAB_PROVISIONER_H

#include <stddef.h>
#include "vab/error.h"
#include "vab/step.h"

struct vab_guest;   /* vab/guest.h: what run() works on */

struct vab_provisioner {
  const char *name;                 /* its step type's name */
  /* config is what the step type's config() made. */
  int (*run)(struct vab_ctx *ctx, const void *config,
             struct vab_guest *guest);
};

/* The schema halves, NULL-terminated, in the order help lists them: what
 * builder/vocab.c hands the template loader. */
const struct vab_step_type *const *vab_step_types(void);

/* The run halves. */
const struct vab_provisioner *vab_provisioner_by_name(const char *name);
size_t vab_provisioner_count(void);
const struct vab_provisioner *vab_provisioner_at(size_t i);

#endif
