/* vab: the whole public API (for cli/ and tests; the layers include
 * only the headers they may use: scripts/check-layers.sh). */
#ifndef VAB_VAB_H
#define VAB_VAB_H

#include "vab/error.h"
#include "vab/progress.h"
#include "vab/template.h"
#include "vab/format.h"
#include "vab/step.h"
#include "vab/provisioner.h"
#include "vab/guest.h"
#include "vab/version.h"

#endif
