/* timezone: set the guest's time zone (/etc/localtime, /etc/timezone). */
#include <stdlib.h>
#include <string.h>

#include "provisioners/util.h"
#include "vab/guest.h"
#include "common/buf.h"

struct timezone_config {
  struct vab_mark mark;              /* the step */
  const char *timezone;              /* "Europe/Madrid", "UTC" */
  struct vab_mark timezone_mark;
};

static const char *const timezone_keys[] = {"timezone", NULL};

static void timezone_free(void *opaque) { free(opaque); }

static int timezone_config(struct vab_ctx *ctx, const struct vab_node *spec,
                           const char *template_dir, void **out) {
  struct timezone_config *c = calloc(1, sizeof *c);
  if (c == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  c->mark = spec->mark;
  if (prov_string(ctx, spec, "timezone", "timezone", &c->timezone,
                  &c->timezone_mark) < 0) {
    timezone_free(c);
    return -1;
  }
  *out = c;
  return 0;
}

/* The tz database's shape: "UTC", or Area/Location[/More], each part
 * starting with a letter, then letters, digits, '_', '-' and '+'.  Whether
 * the zone exists is the guest's tzdata's business, checked at build. */
static bool valid_timezone(const char *tz) {
  if (strcmp(tz, "UTC") == 0)
    return true;
  if (strlen(tz) > 64)
    return false;
  size_t parts = 0;
  const char *p = tz;
  while (*p != '\0') {
    if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
      return false;
    while (*p != '\0' && *p != '/') {
      char ch = *p++;
      if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
            (ch >= '0' && ch <= '9') || strchr("_-+", ch) != NULL))
        return false;
    }
    parts++;
    if (*p == '/' && *++p == '\0')
      return false;
  }
  return parts >= 2;
}

static int timezone_check(struct vab_ctx *ctx, const void *opaque) {
  const struct timezone_config *c = opaque;
  if (c->timezone == NULL)
    return vab_error_at(ctx, VAB_E_SCHEMA, &c->mark,
                        "a timezone step needs 'timezone'");
  if (!valid_timezone(c->timezone)) {
    vab_error_at(ctx, VAB_E_SCHEMA, &c->timezone_mark,
                 "'%.200s' does not look like a time zone", c->timezone);
    vab_diag_hint(ctx, "use Area/City as in the tz database, for example "
                       "Europe/Madrid, or UTC");
    return -1;
  }
  return 0;
}

static int timezone_run(struct vab_ctx *ctx, const void *opaque,
                        struct vab_guest *guest) {
  const struct timezone_config *c = opaque;
  struct buf zone = BUF_INIT;
  struct buf text = BUF_INIT;
  if (buf_printf(&zone, "/usr/share/zoneinfo/%s", c->timezone) < 0 ||
      buf_printf(&text, "%s\n", c->timezone) < 0) {
    buf_release(&zone);
    buf_release(&text);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  bool exists = false;
  int r = vab_guest_exists(guest, zone.data, &exists);
  if (r == 0 && !exists) {
    r = vab_error_at(ctx, VAB_E_PROVISION, &c->timezone_mark,
                     "timezone: the guest has no %s", zone.data);
    vab_diag_hint(ctx, "install the 'tzdata' package before this step");
  }
  /* /etc/localtime is what libc reads; /etc/timezone is Debian's name
   * for it (dpkg-reconfigure tzdata reads it). */
  if (r == 0)
    r = vab_guest_rm_rf(guest, "/etc/localtime");
  if (r == 0)
    r = vab_guest_symlink(guest, zone.data, "/etc/localtime");
  if (r == 0)
    r = vab_guest_write(guest, "/etc/timezone", text.data, text.len);
  buf_release(&zone);
  buf_release(&text);
  return r;
}

const struct vab_step_type vab_step_type_timezone = {
  .name = "timezone",
  .summary = "set the time zone",
  .keys = timezone_keys,
  .flags = 0,
  .config = timezone_config,
  .check = timezone_check,
  .free = timezone_free,
};

const struct vab_provisioner vab_provisioner_timezone = {
  .name = "timezone",
  .run = timezone_run,
};
