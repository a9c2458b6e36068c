/* vab: the whole public API. */
#ifndef VAB_VAB_H
#define VAB_VAB_H

#include "vab/error.h"
#include "vab/progress.h"
#include "vab/template.h"
#include "vab/format.h"
#include "vab/provisioner.h"
#include "vab/guest.h"

const char *vab_version(void);

#endif
