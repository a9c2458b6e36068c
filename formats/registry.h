/* The formats the registry lists (formats/registry.c).  A new format adds
 * its vtable here and one line to the table in registry.c. */
#ifndef VAB_FORMATS_REGISTRY_H
#define VAB_FORMATS_REGISTRY_H

#include "vab/format.h"

extern const struct vab_format vab_format_raw;
extern const struct vab_format vab_format_qcow2;
extern const struct vab_format vab_format_vmdk;
extern const struct vab_format vab_format_vhd;
extern const struct vab_format vab_format_vhdx;

#endif
