/* -o KEY=VALUE[,KEY=VALUE]..., and the checks of options against the
 * writers' spec tables (the same ones `vab validate` runs). */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/size.h"
#include "vab/format.h"
#include "formats/options-util.h"

int vab_options_parse(struct vab_ctx *ctx, const char *text,
                      struct vab_option **options, size_t *n, char **buf) {
  *options = NULL;
  *n = 0;
  *buf = NULL;
  char *copy = strdup(text);
  if (copy == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  size_t count = 1;
  for (const char *p = copy; *p; p++)
    count += *p == ',';
  struct vab_option *opts = calloc(count, sizeof *opts);
  if (opts == NULL) {
    free(copy);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  size_t used = 0;
  char *save = NULL;
  for (char *item = strtok_r(copy, ",", &save); item != NULL;
       item = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(item, '=');
    if (eq == NULL || eq == item) {
      vab_error(ctx, VAB_E_USAGE, "option '%s' is not KEY=VALUE", item);
      free(opts);
      free(copy);
      return -1;
    }
    *eq = '\0';
    opts[used].key = item;
    opts[used].value = eq + 1;
    used++;
  }
  *options = opts;
  *n = used;
  *buf = copy;
  return 0;
}

static bool parse_bool(const char *value, bool *out) {
  static const char *const yes[] = {"on", "true", "yes", "1"};
  static const char *const no[] = {"off", "false", "no", "0"};
  for (size_t i = 0; i < 4; i++) {
    if (strcmp(value, yes[i]) == 0) {
      *out = true;
      return true;
    }
    if (strcmp(value, no[i]) == 0) {
      *out = false;
      return true;
    }
  }
  return false;
}

static bool parse_int(const char *value, long *out) {
  char *end;
  /* strtol would also take spaces and a '+'. */
  if (!isdigit((unsigned char)value[0]) &&
      !(value[0] == '-' && isdigit((unsigned char)value[1])))
    return false;
  errno = 0;
  long n = strtol(value, &end, 10);
  if (errno != 0 || end == value || *end != '\0')
    return false;
  *out = n;
  return true;
}

static int problem(struct vab_option_problem *p, enum vab_code code,
                   const char *fmt, ...) VAB_PRINTF(3, 4);
static int problem(struct vab_option_problem *p, enum vab_code code,
                   const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->message, sizeof p->message, fmt, ap);
  va_end(ap);
  p->code = code;
  return -1;
}

/* "a, b or c" into buf. */
static void list_values(const char *const *values, char *buf, size_t len) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; values != NULL && values[i] != NULL; i++) {
    const char *sep = i == 0 ? "" : values[i + 1] == NULL ? " or " : ", ";
    int k = snprintf(buf + used, len - used, "%s%s", sep, values[i]);
    if (k < 0 || (size_t)k >= len - used)
      break;
    used += (size_t)k;
  }
}

const struct vab_option_spec *vab_option_spec_find(
    const struct vab_option_spec *table, const char *key) {
  for (size_t i = 0; table != NULL && table[i].key != NULL; i++)
    if (strcmp(table[i].key, key) == 0)
      return &table[i];
  return NULL;
}

int vab_option_parse_value(const char *owner,
                           const struct vab_option_spec *spec,
                           const char *value, struct vab_option_value *out,
                           struct vab_option_problem *p) {
  char list[200];
  long n;
  uint64_t size;
  memset(out, 0, sizeof *out);
  out->spec = spec;
  out->text = value;
  switch (spec->kind) {
  case VAB_OPTION_ENUM:
    for (size_t i = 0; spec->values[i] != NULL; i++)
      if (strcmp(spec->values[i], value) == 0) {
        out->choice = i;
        return 0;
      }
    list_values(spec->values, list, sizeof list);
    return problem(p, VAB_E_USAGE, "%s option %s must be %s, not '%.100s'",
                   owner, spec->key, list, value);
  case VAB_OPTION_INT:
    if (!parse_int(value, &n) || n < (long)spec->min || n > (long)spec->max)
      return problem(p, VAB_E_USAGE,
                     "%s option %s must be a number from %ld to %ld, "
                     "not '%.100s'",
                     owner, spec->key, (long)spec->min, (long)spec->max,
                     value);
    out->number = (uint64_t)n;
    return 0;
  case VAB_OPTION_SIZE:
    if (vab_parse_size(value, &size) < 0)
      return problem(p, VAB_E_USAGE,
                     "%s option %s must be a size such as 65536 or 64K, "
                     "not '%.100s'",
                     owner, spec->key, value);
    if (size < spec->min || size > spec->max ||
        ((spec->flags & VAB_OPTION_POWER_OF_TWO) && (size & (size - 1))))
      return problem(p, VAB_E_USAGE,
                     "%s option %s must be a %sfrom %llu to %llu bytes, "
                     "not '%.100s'",
                     owner, spec->key,
                     (spec->flags & VAB_OPTION_POWER_OF_TWO)
                         ? "power of two " : "size ",
                     (unsigned long long)spec->min,
                     (unsigned long long)spec->max, value);
    out->number = size;
    return 0;
  case VAB_OPTION_BOOL:
    if (!parse_bool(value, &out->on))
      return problem(p, VAB_E_USAGE,
                     "%s option %s must be 'on' or 'off', not '%.100s'",
                     owner, spec->key, value);
    return 0;
  case VAB_OPTION_STRING:
    return 0;
  }
  return problem(p, VAB_E_INTERNAL, "%s option %s has no kind", owner,
                 spec->key);
}

int vab_option_check_value(const char *owner,
                           const struct vab_option_spec *spec,
                           const char *value,
                           struct vab_option_problem *p) {
  struct vab_option_value unused;
  return vab_option_parse_value(owner, spec, value, &unused, p);
}

int vab_format_check_options(const struct vab_format *f,
                             const struct vab_option *options, size_t n,
                             struct vab_option_problem *p) {
  memset(p, 0, sizeof *p);
  for (size_t i = 0; i < n; i++) {
    p->index = i;
    const struct vab_option_spec *spec =
        vab_option_spec_find(f->options, options[i].key);
    if (spec == NULL)
      return problem(p, VAB_E_USAGE, "format %s has no option '%.100s'",
                     f->name, options[i].key);
    if (vab_option_check_value(f->name, spec, options[i].value, p) < 0)
      return -1;
  }
  p->index = 0;
  if (f->check_options != NULL && f->check_options(options, n, p) < 0)
    return -1;
  return 0;
}

void vab_option_hint_names(struct vab_ctx *ctx, const struct vab_format *f) {
  char names[256] = "";
  size_t used = 0;
  for (size_t i = 0; f->options != NULL && f->options[i].key != NULL; i++) {
    int k = snprintf(names + used, sizeof names - used, "%s%s",
                     used ? ", " : "", f->options[i].key);
    if (k < 0 || (size_t)k >= sizeof names - used)
      break;
    used += (size_t)k;
  }
  vab_diag_hint(ctx, "%s options: %s%sthreads", f->name, names,
                used ? ", " : "");
}

int vab_writer_set_options(struct vab_writer *w,
                           const struct vab_option *options, size_t n) {
  const struct vab_format *f = w->format;
  struct vab_option_problem p;
  if (vab_format_check_options(f, options, n, &p) < 0) {
    vab_error(w->ctx, p.code, "%s", p.message);
    if (n > 0 && vab_option_spec_find(f->options, options[p.index].key) ==
                     NULL)
      vab_option_hint_names(w->ctx, f);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    struct vab_option_value value;
    const struct vab_option_spec *spec =
        vab_option_spec_find(f->options, options[i].key);
    /* The check above found every key's spec and parsed every value, and
     * tests/unit/test-registration.c asserts that a format with options
     * has set_option(). */
    if (vab_option_parse_value(f->name, spec, options[i].value, &value,
                               &p) < 0)
      return vab_error(w->ctx, p.code, "%s", p.message);
    if (f->set_option(w, &value) < 0)
      return -1;
  }
  return 0;
}
