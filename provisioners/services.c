/* services: enable, disable or mask systemd units in the guest. */
#include <stdlib.h>
#include <string.h>

#include "provisioners/util.h"
#include "vab/guest.h"
#include "common/buf.h"
#include "common/shell-quote.h"

struct services_config {
  struct vab_mark mark;              /* the step */
  struct prov_list enable;           /* unit names; ".service" optional */
  struct prov_list disable;
  struct prov_list mask;
};

static const char *const services_keys[] = {"enable", "disable", "mask",
                                            NULL};

static void services_free(void *opaque) {
  struct services_config *c = opaque;
  if (c == NULL)
    return;
  prov_list_free(&c->enable);
  prov_list_free(&c->disable);
  prov_list_free(&c->mask);
  free(c);
}

static int services_config(struct vab_ctx *ctx, const struct vab_node *spec,
                           const char *template_dir, void **out) {
  struct services_config *c = calloc(1, sizeof *c);
  if (c == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  c->mark = spec->mark;
  int r = 0;
  if (prov_list_read(ctx, spec, "enable", "enable", &c->enable) < 0)
    r = -1;
  if (prov_list_read(ctx, spec, "disable", "disable", &c->disable) < 0)
    r = -1;
  if (prov_list_read(ctx, spec, "mask", "mask", &c->mask) < 0)
    r = -1;
  if (r < 0) {
    services_free(c);
    return -1;
  }
  *out = c;
  return 0;
}

/* What systemd accepts in a unit name: ASCII letters, digits and ":-_.\@",
 * at most 255 bytes; never a path. */
static bool valid_unit(const char *name) {
  size_t len = strlen(name);
  if (len == 0 || len > 255 || name[0] == '-' || name[0] == '.')
    return false;
  for (size_t i = 0; i < len; i++) {
    char ch = name[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || strchr(":-_.\\@", ch) != NULL))
      return false;
  }
  return true;
}

/* One entry per listed unit, for finding a unit listed twice. */
struct unit_ref {
  const char *name;
  size_t len;          /* without a ".service" suffix: nginx = nginx.service */
  size_t list, item;   /* where it was listed, in listing order */
};

static int compare_units(const void *a, const void *b) {
  const struct unit_ref *x = a, *y = b;
  size_t len = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->name, y->name, len);
  if (c != 0)
    return c;
  if (x->len != y->len)
    return x->len < y->len ? -1 : 1;
  if (x->list != y->list)
    return x->list < y->list ? -1 : 1;
  return x->item < y->item ? -1 : x->item > y->item;
}

static size_t unit_len(const char *name) {
  size_t len = strlen(name);
  const char *suffix = ".service";
  size_t n = strlen(suffix);
  if (len > n && strcmp(name + len - n, suffix) == 0)
    return len - n;
  return len;
}

static int services_check(struct vab_ctx *ctx, const void *opaque) {
  const struct services_config *c = opaque;
  const struct prov_list *lists[] = {&c->enable, &c->disable, &c->mask};
  const char *names[] = {"enable", "disable", "mask"};
  size_t total = c->enable.n + c->disable.n + c->mask.n;
  int r = 0;
  if (total == 0)
    return vab_error_at(ctx, VAB_E_SCHEMA, &c->mark,
                        "a services step needs units to 'enable', 'disable' "
                        "or 'mask'");
  struct unit_ref *refs = calloc(total, sizeof *refs);
  if (refs == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  size_t n = 0;
  for (size_t l = 0; l < 3; l++)
    for (size_t i = 0; i < lists[l]->n; i++) {
      const char *unit = lists[l]->items[i];
      if (!valid_unit(unit)) {
        r = vab_error_at(ctx, VAB_E_SCHEMA, prov_list_mark(lists[l], i),
                         "'%.200s' is not a systemd unit name", unit);
        continue;
      }
      refs[n++] = (struct unit_ref){unit, unit_len(unit), l, i};
    }
  /* Sorted by name, then by where it was listed: a repeat follows the
   * first listing of its unit.  One unit, one fate. */
  qsort(refs, n, sizeof *refs, compare_units);
  size_t first = 0;
  for (size_t k = 1; k < n; k++) {
    if (refs[k].len != refs[first].len ||
        memcmp(refs[k].name, refs[first].name, refs[k].len) != 0) {
      first = k;
      continue;
    }
    const struct unit_ref *a = &refs[first], *b = &refs[k];
    r = vab_error_at(ctx, VAB_E_SCHEMA, prov_list_mark(lists[b->list], b->item),
                     "'%.200s' is listed twice (in %s and %s)", b->name,
                     names[a->list], names[b->list]);
    vab_note_at(ctx, prov_list_mark(lists[a->list], a->item),
                "'%.200s' is first listed here", a->name);
  }
  free(refs);
  return r;
}

static int systemctl_line(struct buf *script, const char *verb,
                          const struct prov_list *list) {
  if (list->n == 0)
    return 0;
  /* "--": a unit name is never read as an option. */
  if (buf_printf(script, "systemctl %s --", verb) < 0)
    return -1;
  for (size_t i = 0; i < list->n; i++)
    if (buf_putc(script, ' ') < 0 || shell_quote(script, list->items[i]) < 0)
      return -1;
  return buf_putc(script, '\n');
}

/* systemctl works offline in a chroot for these verbs: it only edits the
 * unit symlinks. */
static int services_run(struct vab_ctx *ctx, const void *opaque,
                        struct vab_guest *guest) {
  const struct services_config *c = opaque;
  struct buf script = BUF_INIT;
  if (buf_puts(&script, "set -e\n") < 0 ||
      systemctl_line(&script, "enable", &c->enable) < 0 ||
      systemctl_line(&script, "disable", &c->disable) < 0 ||
      systemctl_line(&script, "mask", &c->mask) < 0) {
    buf_release(&script);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  int r = vab_guest_script_at(guest, script.data, NULL, &c->mark,
                              "services: systemctl");
  buf_release(&script);
  return r;
}

const struct vab_step_type vab_step_type_services = {
  .name = "services",
  .summary = "enable, disable or mask systemd units",
  .keys = services_keys,
  .flags = 0,
  .config = services_config,
  .check = services_check,
  .free = services_free,
};

const struct vab_provisioner vab_provisioner_services = {
  .name = "services",
  .run = services_run,
};
