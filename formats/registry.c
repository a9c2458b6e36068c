/* The format registry: every format vab reads or writes, by name. */
#include <string.h>

#include "vab/format.h"
#include "formats/registry.h"

/* One line per format; the order is the probe order of vab_image_open(),
 * so formats with a magic number come before raw, which matches anything. */
static const struct vab_format *const formats[] = {
  &vab_format_qcow2,
  &vab_format_vmdk,
  &vab_format_vhd,
  &vab_format_vhdx,
  &vab_format_raw,
};

size_t vab_format_count(void) { return sizeof formats / sizeof formats[0]; }

const struct vab_format *vab_format_at(size_t i) {
  return i < vab_format_count() ? formats[i] : NULL;
}

const struct vab_format *vab_format_by_name(const char *name) {
  if (name == NULL)
    return NULL;
  for (size_t i = 0; i < vab_format_count(); i++)
    if (strcmp(formats[i]->name, name) == 0)
      return formats[i];
  return NULL;
}
