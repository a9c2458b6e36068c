/* -o KEY=VALUE[,KEY=VALUE]... */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int vab_option_int(struct vab_writer *w, const char *key, const char *value,
                   long min, long max, long *out) {
  char *end;
  errno = 0;
  long n = strtol(value, &end, 10);
  if (errno != 0 || end == value || *end != '\0' || n < min || n > max)
    return vab_error(w->ctx, VAB_E_USAGE,
                     "%s option %s must be a number from %ld to %ld, not '%s'",
                     w->format->name, key, min, max, value);
  *out = n;
  return 0;
}

int vab_option_bool(struct vab_writer *w, const char *key, const char *value,
                    bool *out) {
  static const char *const yes[] = {"on", "true", "yes", "1"};
  static const char *const no[] = {"off", "false", "no", "0"};
  for (size_t i = 0; i < 4; i++) {
    if (strcmp(value, yes[i]) == 0) {
      *out = true;
      return 0;
    }
    if (strcmp(value, no[i]) == 0) {
      *out = false;
      return 0;
    }
  }
  return vab_error(w->ctx, VAB_E_USAGE,
                   "%s option %s must be 'on' or 'off', not '%s'",
                   w->format->name, key, value);
}

int vab_option_unknown(struct vab_writer *w, const char *key) {
  char names[256] = "";
  size_t used = 0;
  for (const char *const *n = w->format->option_names; n && *n; n++) {
    int k = snprintf(names + used, sizeof names - used, "%s%s",
                     used ? ", " : "", *n);
    if (k < 0 || (size_t)k >= sizeof names - used)
      break;
    used += (size_t)k;
  }
  vab_error(w->ctx, VAB_E_USAGE, "format %s has no option '%s'",
            w->format->name, key);
  vab_diag_hint(w->ctx, "%s options: %s, threads", w->format->name,
                used ? names : "none");
  return -1;
}

int vab_option_size(struct vab_writer *w, const char *key, const char *value,
                    uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long n = strtoull(value, &end, 10);
  unsigned shift = 0;
  if (*end == 'K' || *end == 'k')
    shift = 10;
  else if (*end == 'M' || *end == 'm')
    shift = 20;
  else if (*end == 'G' || *end == 'g')
    shift = 30;
  if (shift != 0)
    end++;
  if (errno != 0 || end == value || *end != '\0' || value[0] == '-' ||
      n > (UINT64_MAX >> shift))
    return vab_error(w->ctx, VAB_E_USAGE,
                     "%s option %s must be a size such as 65536 or 64K, "
                     "not '%s'",
                     w->format->name, key, value);
  *out = (uint64_t)n << shift;
  return 0;
}
