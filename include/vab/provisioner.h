/* vab: provisioners.
 *
 * A provisioner is one `type:` of step in a template's `provisioners:` list.
 * Each is a const struct vab_provisioner in provisioners/<name>.c, listed in
 * provisioners/registry.c.  Lifecycle:
 *
 *   config()  read the step's mapping into a typed struct, with marks;
 *   check()   semantic checks with no side effects (files exist...);
 *             `vab validate` stops here;
 *   inputs()  the host files whose bytes the step reads (for step keys);
 *   run()     do it, through the guest interface of vab/guest.h (in a
 *             build, the builder VM with the guest mounted);
 *   free()    always called.
 */
#ifndef VAB_PROVISIONER_H
#define VAB_PROVISIONER_H

#include <stdbool.h>
#include <stddef.h>
#include "vab/error.h"
#include "vab/template.h"

struct vab_guest;   /* vab/guest.h: what run() works on */

enum {
  VAB_PROV_NEEDS_NETWORK = 1u << 0,   /* turn the appliance's network on */
};

struct vab_provisioner {
  const char *name;                 /* the `type:` value */
  const char *summary;              /* one line, for help */
  const char *const *keys;          /* accepted keys besides `type` */
  unsigned flags;
  /* Keys whose values are host paths (NULL-terminated, or NULL): the
   * loader rewrites them when a step comes from an `extends` parent in
   * another folder, so they stay relative to the template loaded. */
  const char *const *path_keys;

  /* template_dir resolves relative paths. */
  int (*config)(struct vab_ctx *ctx, const struct vab_node *spec,
                const char *template_dir, void **config);
  int (*check)(struct vab_ctx *ctx, const void *config);
  /* Store up to max host paths in paths; return how many there are. */
  size_t (*inputs)(const void *config, const char **paths, size_t max);
  int (*run)(struct vab_ctx *ctx, const void *config,
             struct vab_guest *guest);
  void (*free)(void *config);
};

const struct vab_provisioner *vab_provisioner_by_name(const char *name);
size_t vab_provisioner_count(void);
const struct vab_provisioner *vab_provisioner_at(size_t i);

#endif
