/* vab: step types, the schema half.
 *
 * A step type is one `type:` of step in a template's `provisioners:` list.
 * It comes in two halves, both defined in provisioners/<name>.c and listed
 * in provisioners/registry.c:
 *
 *   - the schema half (this header, struct vab_step_type): what the
 *     template layer needs to load and check a step.  It knows no guest and
 *     no builder, so templates/ can use it without linking anything below
 *     it; the loader gets the table through struct vab_load_opts.vocab
 *     (builder/vocab.c hands in vab_step_types());
 *   - the run half (vab/provisioner.h, struct vab_provisioner): run(), found
 *     by the same name, which only the builder calls.
 *
 * Lifecycle of one step's config:
 *
 *   config()  read the step's mapping into a typed struct, with marks;
 *   check()   semantic checks with no side effects (files exist...);
 *             `vab validate` stops here;
 *   inputs()  the host files whose bytes the step reads (for step keys);
 *   run()     the run half: do it, against the mounted guest;
 *   free()    always called, by vab_template_free().
 *
 * tests/unit/test-registration.c checks that every registered step type has
 * config, check and free and a run half of the same name, so callers do
 * not test for them.
 *
 * How to add a step type: write provisioners/<name>.c with both halves
 * (vab_step_type_<name>, vab_provisioner_<name>), list them in
 * provisioners/registry.c and the file in provisioners/meson.build,
 * document its keys in docs/template.md, and test it in tests/templates/.
 */
#ifndef VAB_STEP_H
#define VAB_STEP_H

#include <stddef.h>
#include <stdint.h>
#include "vab/error.h"
#include "vab/template.h"

/* struct vab_step_type.flags */
enum {
  VAB_STEP_NEEDS_NETWORK = 1u << 0,   /* turn the appliance's network on */
  /* The step may run in the booted appliance: the template loader accepts
   * `booted: BOOL` and `timeout: DURATION` on it (shell, file). */
  VAB_STEP_MAY_BOOT = 1u << 1,
  /* The step always runs in the booted appliance (ansible, reboot): the
   * loader accepts `timeout:` and sets struct vab_step.booted. */
  VAB_STEP_BOOTED = 1u << 2,
};

struct vab_step_type {
  const char *name;                 /* the `type:` value */
  const char *summary;              /* one line, for help */
  const char *const *keys;          /* accepted keys besides `type` */
  unsigned flags;
  /* The default of `timeout:` for a booted step of this type (0: 30 min). */
  uint64_t booted_timeout_ms;
  /* Keys whose values are host paths (NULL-terminated, or NULL): the
   * loader rewrites them when a step comes from an `extends` parent in
   * another folder, so they stay relative to the template loaded. */
  const char *const *path_keys;

  /* template_dir resolves relative paths. */
  int (*config)(struct vab_ctx *ctx, const struct vab_node *spec,
                const char *template_dir, void **config);
  int (*check)(struct vab_ctx *ctx, const void *config);
  /* Store up to max host paths in paths; return how many there are.
   * NULL: the step reads no host files. */
  size_t (*inputs)(const void *config, const char **paths, size_t max);
  void (*free)(void *config);
};

#endif
