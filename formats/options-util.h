/* What the core says about the writers' -o options. */
#ifndef VAB_FORMATS_OPTIONS_UTIL_H
#define VAB_FORMATS_OPTIONS_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include "vab/format.h"

/* The hint after an unknown key: the format's option names. */
void vab_option_hint_names(struct vab_ctx *ctx, const struct vab_format *f);

#endif
