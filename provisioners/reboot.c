/* reboot: restart the booted appliance and wait until it answers over SSH
 * again, so that the steps after it run on a new kernel or a changed boot
 * configuration.  The booted guest bounds the wait by the step's
 * `timeout:` (default 10 minutes). */
#include <stdlib.h>

#include "provisioners/util.h"
#include "vab/guest.h"

struct reboot_config {
  struct vab_mark mark;
};

static const char *const reboot_keys[] = {NULL};

static void reboot_free(void *opaque) { free(opaque); }

static int reboot_config(struct vab_ctx *ctx, const struct vab_node *spec,
                         const char *template_dir, void **out) {
  (void)template_dir;
  struct reboot_config *c = calloc(1, sizeof *c);
  if (c == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  c->mark = spec->mark;
  *out = c;
  return 0;
}

static int reboot_check(struct vab_ctx *ctx, const void *opaque) {
  (void)ctx;
  (void)opaque;
  return 0;
}

/* A failure is the booted guest's to describe (a boot that never reached
 * SSH shows its serial log); the builder adds the step's location. */
static int reboot_run(struct vab_ctx *ctx, const void *opaque,
                      struct vab_guest *guest) {
  (void)ctx;
  (void)opaque;
  return vab_guest_reboot(guest);
}

const struct vab_step_type vab_step_type_reboot = {
  .name = "reboot",
  .summary = "reboot the booted appliance and wait until SSH answers again",
  .keys = reboot_keys,
  .flags = VAB_STEP_BOOTED,
  .booted_timeout_ms = 10ull * 60 * 1000,
  .config = reboot_config,
  .check = reboot_check,
  .free = reboot_free,
};

const struct vab_provisioner vab_provisioner_reboot = {
  .name = "reboot",
  .run = reboot_run,
};
