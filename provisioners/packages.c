/* packages: install and remove packages with the guest's apt. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provisioners/util.h"
#include "vab/guest.h"
#include "common/buf.h"
#include "common/shell-quote.h"
#include "common/debian.h"

struct packages_config {
  struct vab_mark mark;              /* the step */
  struct prov_list install;          /* package names */
  struct prov_list remove;
};

static const char *const packages_keys[] = {"install", "remove", NULL};

static void packages_free(void *opaque) {
  struct packages_config *c = opaque;
  if (c == NULL)
    return;
  prov_list_free(&c->install);
  prov_list_free(&c->remove);
  free(c);
}

static int packages_config(struct vab_ctx *ctx, const struct vab_node *spec,
                           const char *template_dir, void **out) {
  struct packages_config *c = calloc(1, sizeof *c);
  if (c == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  c->mark = spec->mark;
  int r = 0;
  if (prov_list_read(ctx, spec, "install", "install", &c->install) < 0)
    r = -1;
  if (prov_list_read(ctx, spec, "remove", "remove", &c->remove) < 0)
    r = -1;
  if (r < 0) {
    packages_free(c);
    return -1;
  }
  *out = c;
  return 0;
}

static int check_names(struct vab_ctx *ctx, const struct prov_list *list,
                       const char *what) {
  int r = 0;
  for (size_t i = 0; i < list->n; i++)
    if (!deb_valid_package(list->items[i])) {
      r = vab_error_at(ctx, VAB_E_SCHEMA, prov_list_mark(list, i),
                       "'%.200s' in %s is not a package name", list->items[i],
                       what);
      vab_diag_hint(ctx, DEB_PACKAGE_HINT);
    }
  return r;
}

static int packages_check(struct vab_ctx *ctx, const void *opaque) {
  const struct packages_config *c = opaque;
  if (c->install.n == 0 && c->remove.n == 0)
    return vab_error_at(ctx, VAB_E_SCHEMA, &c->mark,
                        "a packages step needs packages to 'install' or "
                        "'remove'");
  int r = check_names(ctx, &c->install, "install");
  if (check_names(ctx, &c->remove, "remove") < 0)
    r = -1;
  for (size_t i = 0; i < c->remove.n; i++)
    for (size_t j = 0; j < c->install.n; j++)
      if (strcmp(c->remove.items[i], c->install.items[j]) == 0) {
        r = vab_error_at(ctx, VAB_E_SCHEMA, prov_list_mark(&c->remove, i),
                         "'%.200s' is both installed and removed",
                         c->remove.items[i]);
        break;
      }
  return r;
}

/* Append "apt-get ARGS... -- 'pkg'..." to script: each name quoted, after
 * the "--" that ends apt-get's options. */
static int apt_line(struct buf *script, const char *args,
                    const struct prov_list *list) {
  if (buf_printf(script, "apt-get %s --", args) < 0)
    return -1;
  for (size_t i = 0; i < list->n; i++)
    if (buf_putc(script, ' ') < 0 || shell_quote(script, list->items[i]) < 0)
      return -1;
  return buf_putc(script, '\n');
}

static int packages_run(struct vab_ctx *ctx, const void *opaque,
                        struct vab_guest *guest) {
  const struct packages_config *c = opaque;
  /* Checked at validate time; again here, where the names reach a root
   * shell in the guest. */
  if (check_names(ctx, &c->install, "install") < 0 ||
      check_names(ctx, &c->remove, "remove") < 0)
    return -1;
  struct buf script = BUF_INIT;
  /* Keep the guest's own config files when a package ships a new one:
   * nothing may prompt in a build. */
  static const char dpkg_opts[] = "-y -q -o Dpkg::Options::=--force-confdef "
                                  "-o Dpkg::Options::=--force-confold";
  int r = buf_puts(&script, "set -e\n");
  if (r == 0 && c->install.n > 0) {
    char args[256];
    snprintf(args, sizeof args, "install %s", dpkg_opts);
    r = buf_puts(&script, "apt-get update -q\n");
    if (r == 0)
      r = apt_line(&script, args, &c->install);
  }
  if (r == 0 && c->remove.n > 0) {
    char args[256];
    snprintf(args, sizeof args, "remove --purge %s", dpkg_opts);
    r = apt_line(&script, args, &c->remove);
    if (r == 0)
      r = buf_puts(&script, "apt-get autoremove --purge -y -q\n");
  }
  /* The downloaded .debs would only make the image bigger. */
  if (r == 0)
    r = buf_puts(&script, "apt-get clean\n");
  if (r < 0) {
    buf_release(&script);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  r = vab_guest_script_at(guest, script.data, NULL, &c->mark,
                          "packages: apt-get");
  buf_release(&script);
  return r;
}

const struct vab_step_type vab_step_type_packages = {
  .name = "packages",
  .summary = "install and remove packages with the guest's apt",
  .keys = packages_keys,
  .flags = VAB_STEP_NEEDS_NETWORK,
  .config = packages_config,
  .check = packages_check,
  .free = packages_free,
};

const struct vab_provisioner vab_provisioner_packages = {
  .name = "packages",
  .run = packages_run,
};
