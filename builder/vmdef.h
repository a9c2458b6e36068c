/* VM definitions written beside exported disks, for hypervisors that want
 * one (docs/template.md, output key `vm`):
 *
 *   qcow2  vm: libvirt  NAME-VERSION.xml       a libvirt domain
 *   vmdk   vm: vmx      NAME-VERSION.vmx       VMware Workstation (with
 *                                              subformat monolithicSparse)
 *   vhdx   vm: hyperv   NAME-VERSION.hyperv.md Hyper-V notes and PowerShell
 *   vhd    vm: hyperv   (generation 1)
 *
 * Each is made from the template's `hardware:` and `disk.firmware`. */
#ifndef VAB_BUILDER_VMDEF_H
#define VAB_BUILDER_VMDEF_H

#include "vab/template.h"

struct vab_vmdef_input {
  const struct vab_template *t;
  const char *disk_path;    /* the exported disk, as written */
  const char *disk_format;  /* "qcow2", "vmdk", "vhdx", "vhd" */
  const char *guest_os;     /* "debian12", or NULL */
  unsigned hwversion;       /* VMware virtual hardware version, 0: default */
};

/* The definition's text (malloc'd). */
int vab_vmdef_libvirt(struct vab_ctx *ctx, const struct vab_vmdef_input *in,
                      char **text);
int vab_vmdef_vmx(struct vab_ctx *ctx, const struct vab_vmdef_input *in,
                  char **text);
int vab_vmdef_hyperv(struct vab_ctx *ctx, const struct vab_vmdef_input *in,
                     char **text);

#endif
