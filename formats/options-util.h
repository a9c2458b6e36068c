/* Parsing helpers for the writers' -o values. */
#ifndef VAB_FORMATS_OPTIONS_UTIL_H
#define VAB_FORMATS_OPTIONS_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include "vab/format.h"

/* A decimal integer in [min, max]; the error names the format and key. */
int vab_option_int(struct vab_writer *w, const char *key, const char *value,
                   long min, long max, long *out);
/* "on"/"off" (also "true"/"false", "yes"/"no", "1"/"0"). */
int vab_option_bool(struct vab_writer *w, const char *key, const char *value,
                    bool *out);
/* An unknown key: the error lists the format's option names. */
int vab_option_unknown(struct vab_writer *w, const char *key);
/* The hint after an unknown key: the format's option names. */
void vab_option_hint_names(struct vab_ctx *ctx, const struct vab_format *f);
/* A size in the grammar of common/size.h. */
int vab_option_size(struct vab_writer *w, const char *key, const char *value,
                    uint64_t *out);

#endif
