/* hostname: set the appliance's host name (/etc/hostname, /etc/hosts). */
#include <stdlib.h>
#include <string.h>

#include "provisioners/util.h"
#include "vab/guest.h"
#include "common/buf.h"
#include "common/shell-quote.h"

struct hostname_config {
  struct vab_mark mark;              /* the step */
  const char *hostname;              /* RFC 1123, checked */
  struct vab_mark hostname_mark;
};

static const char *const hostname_keys[] = {"hostname", NULL};

static void hostname_free(void *opaque) { free(opaque); }

static int hostname_config(struct vab_ctx *ctx, const struct vab_node *spec,
                           const char *template_dir, void **out) {
  struct hostname_config *c = calloc(1, sizeof *c);
  if (c == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  c->mark = spec->mark;
  if (prov_string(ctx, spec, "hostname", "hostname", &c->hostname,
                  &c->hostname_mark) < 0) {
    hostname_free(c);
    return -1;
  }
  *out = c;
  return 0;
}

/* Dot-separated labels of letters, digits and '-', each 1 to 63 long and
 * not starting or ending with '-'; 253 in all. */
static bool valid_hostname(const char *name) {
  size_t len = strlen(name);
  if (len == 0 || len > 253)
    return false;
  size_t label = 0;
  for (size_t i = 0; i <= len; i++) {
    char ch = name[i];
    if (ch == '.' || ch == '\0') {
      if (label == 0 || label > 63 || name[i - 1] == '-')
        return false;
      label = 0;
      continue;
    }
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || (ch == '-' && label > 0);
    if (!ok)
      return false;
    label++;
  }
  return true;
}

static int hostname_check(struct vab_ctx *ctx, const void *opaque) {
  const struct hostname_config *c = opaque;
  if (c->hostname == NULL)
    return vab_error_at(ctx, VAB_E_SCHEMA, &c->mark,
                        "a hostname step needs 'hostname'");
  if (!valid_hostname(c->hostname)) {
    vab_error_at(ctx, VAB_E_SCHEMA, &c->hostname_mark,
                 "'%.200s' is not a valid host name", c->hostname);
    vab_diag_hint(ctx, "use letters, digits and '-' in labels of up to 63 "
                       "characters, separated by dots");
    return -1;
  }
  return 0;
}

static int hostname_run(struct vab_ctx *ctx, const void *opaque,
                        struct vab_guest *guest) {
  const struct hostname_config *c = opaque;
  struct buf text = BUF_INIT;
  struct buf script = BUF_INIT;
  /* 127.0.1.1 is Debian's line for the machine's own name. */
  int r = buf_printf(&text, "%s\n", c->hostname) < 0 ||
          buf_puts(&script, "set -e\ntouch /etc/hosts\n"
                            "sed -i '/^127\\.0\\.1\\.1[[:space:]]/d' /etc/hosts\n"
                            "printf '127.0.1.1\\t%s\\n' ") < 0 ||
          shell_quote(&script, c->hostname) < 0 ||
          buf_puts(&script, " >> /etc/hosts\n") < 0;
  if (r != 0)
    r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  if (r == 0)
    r = vab_guest_write(guest, "/etc/hostname", text.data, text.len);
  if (r == 0)
    r = vab_guest_script_at(guest, script.data, NULL, &c->hostname_mark,
                            "hostname");
  buf_release(&text);
  buf_release(&script);
  return r;
}

const struct vab_step_type vab_step_type_hostname = {
  .name = "hostname",
  .summary = "set the host name",
  .keys = hostname_keys,
  .flags = 0,
  .config = hostname_config,
  .check = hostname_check,
  .free = hostname_free,
};

const struct vab_provisioner vab_provisioner_hostname = {
  .name = "hostname",
  .run = hostname_run,
};
