/* firstboot: a script that runs once, at the appliance's first boot,
 * through a systemd unit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provisioners/util.h"
#include "vab/guest.h"
#include "common/buf.h"

struct firstboot_config {
  struct vab_mark mark;              /* the step */
  char *script;                      /* absolute host path, or NULL */
  const char *script_written;
  struct vab_mark script_mark;
  struct prov_list lines;            /* inline: one command per item */
};

static const char *const firstboot_keys[] = {"script", "inline", NULL};
static const char *const firstboot_path_keys[] = {"script", NULL};

static void firstboot_free(void *opaque) {
  struct firstboot_config *c = opaque;
  if (c == NULL)
    return;
  free(c->script);
  prov_list_free(&c->lines);
  free(c);
}

static int firstboot_config(struct vab_ctx *ctx, const struct vab_node *spec,
                            const char *template_dir, void **out) {
  struct firstboot_config *c = calloc(1, sizeof *c);
  if (c == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  c->mark = spec->mark;
  int r = prov_exactly_one(ctx, spec, "firstboot", "script", "inline");
  if (prov_host_path(ctx, spec, "script", "script", template_dir, &c->script,
                     &c->script_written, &c->script_mark) < 0)
    r = -1;
  if (prov_list_read(ctx, spec, "inline", "inline", &c->lines) < 0)
    r = -1;
  if (r < 0) {
    firstboot_free(c);
    return -1;
  }
  *out = c;
  return 0;
}

static int firstboot_check(struct vab_ctx *ctx, const void *opaque) {
  const struct firstboot_config *c = opaque;
  int r = 0;
  if (c->lines.node != NULL && c->lines.n == 0)
    r = vab_error_at(ctx, VAB_E_SCHEMA, &c->lines.node->mark,
                     "inline has no commands");
  if (c->script != NULL &&
      prov_check_host_file(ctx, c->script, c->script_written, &c->script_mark,
                           "script") < 0)
    r = -1;
  return r;
}

static size_t firstboot_inputs(const void *opaque, const char **paths,
                               size_t max) {
  const struct firstboot_config *c = opaque;
  if (c->script == NULL)
    return 0;
  if (max > 0)
    paths[0] = c->script;
  return 1;
}

/* Scripts wait in FIRSTBOOT_DIR; a oneshot unit runs them in name order
 * once the network is up, deletes each one that succeeds, and removes the
 * folder when all did, so that the unit's condition is false from then
 * on.  A failing script stays for the next boot and is in the journal. */
#define FIRSTBOOT_DIR "/var/lib/vab/firstboot"
#define FIRSTBOOT_RUNNER "/usr/local/sbin/vab-firstboot"
#define FIRSTBOOT_UNIT "/etc/systemd/system/vab-firstboot.service"
#define FIRSTBOOT_MAX 1000

static const char firstboot_runner[] =
  "#!/bin/sh\n"
  "# Written by vab: run the first-boot scripts once.\n"
  "for script in " FIRSTBOOT_DIR "/*; do\n"
  "  [ -f \"$script\" ] || continue\n"
  "  echo \"vab-firstboot: running $script\"\n"
  "  \"$script\" || exit 1\n"
  "  rm -f \"$script\"\n"
  "done\n"
  "rmdir " FIRSTBOOT_DIR "\n";

static const char firstboot_unit[] =
  "[Unit]\n"
  "Description=vab first-boot scripts\n"
  "Wants=network-online.target\n"
  "After=network-online.target\n"
  "ConditionPathIsDirectory=" FIRSTBOOT_DIR "\n"
  "\n"
  "[Service]\n"
  "Type=oneshot\n"
  "ExecStart=" FIRSTBOOT_RUNNER "\n"
  "RemainAfterExit=yes\n"
  "StandardOutput=journal+console\n"
  "\n"
  "[Install]\n"
  "WantedBy=multi-user.target\n";

static int firstboot_run(struct vab_ctx *ctx, const void *opaque,
                         struct vab_guest *guest) {
  const struct firstboot_config *c = opaque;
  if (vab_guest_mkdir_p(guest, FIRSTBOOT_DIR) < 0)
    return -1;
  /* Each step gets the next free number, so scripts run in template
   * order. */
  char path[64];
  bool exists = true;
  for (int i = 1; exists && i < FIRSTBOOT_MAX; i++) {
    snprintf(path, sizeof path, FIRSTBOOT_DIR "/%03d", i);
    if (vab_guest_exists(guest, path, &exists) < 0)
      return -1;
  }
  if (exists)
    return vab_error_at(ctx, VAB_E_PROVISION, &c->mark,
                        "firstboot: too many first-boot scripts");
  int r = 0;
  if (c->script != NULL) {
    r = vab_guest_upload(guest, c->script, path);
  } else {
    struct buf text = BUF_INIT;
    r = buf_puts(&text, "#!/bin/sh\nset -e\n");
    for (size_t i = 0; r == 0 && i < c->lines.n; i++)
      r = buf_printf(&text, "%s\n", c->lines.items[i]);
    if (r < 0)
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
    else
      r = vab_guest_write(guest, path, text.data, text.len);
    buf_release(&text);
  }
  if (r == 0)
    r = vab_guest_chmod(guest, 0755, path);
  if (r == 0)
    r = vab_guest_mkdir_p(guest, "/usr/local/sbin");
  if (r == 0)
    r = vab_guest_write(guest, FIRSTBOOT_RUNNER, firstboot_runner,
                        strlen(firstboot_runner));
  if (r == 0)
    r = vab_guest_chmod(guest, 0755, FIRSTBOOT_RUNNER);
  if (r == 0)
    r = vab_guest_write(guest, FIRSTBOOT_UNIT, firstboot_unit,
                        strlen(firstboot_unit));
  if (r == 0)
    r = vab_guest_script_at(guest, "systemctl enable vab-firstboot.service\n",
                            NULL, &c->mark, "firstboot: systemctl enable");
  return r;
}

const struct vab_step_type vab_step_type_firstboot = {
  .name = "firstboot",
  .summary = "run a script once, at the appliance's first boot",
  .keys = firstboot_keys,
  .path_keys = firstboot_path_keys,
  .flags = 0,
  .config = firstboot_config,
  .check = firstboot_check,
  .inputs = firstboot_inputs,
  .free = firstboot_free,
};

const struct vab_provisioner vab_provisioner_firstboot = {
  .name = "firstboot",
  .run = firstboot_run,
};
