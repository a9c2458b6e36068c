/* OVA: an OVF 1.0 descriptor, its .mf manifest, an optional .cert and a
 * streamOptimized VMDK in one ustar archive, for VMware (vmx) or VirtualBox
 * importers.  It takes what it needs of the template as plain values
 * (struct vab_ova_hardware), so that formats/ include no template header.
 * formats/ova/ is, with builder/source.c, the only user of libarchive. */
#ifndef VAB_FORMATS_OVA_H
#define VAB_FORMATS_OVA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vab/format.h"

/* The virtual hardware the descriptor declares.  builder/export.c copies
 * it from the template's hardware: and disk.firmware: formats/ know no
 * template. */
struct vab_ova_hardware {
  unsigned cpus;                /* 0: 1 */
  uint64_t memory;              /* bytes; 0: 1 GiB */
  unsigned nics;
  const char *disk_bus;         /* scsi | sata | ide | virtio; NULL: scsi */
  const char *nic_model;        /* auto | virtio | e1000 | vmxnet3; NULL: auto */
  bool uefi_only;               /* firmware uefi: the disk boots no BIOS */
};

struct vab_ova_opts {
  const char *disk_path;        /* the finished disk */
  const char *disk_format;      /* its format, or NULL to probe */
  const char *name;             /* VirtualSystem name, and the members'
                                   base name (a plain file name) */
  const char *target;           /* "vmware" or "virtualbox" */
  const struct vab_ova_hardware *hardware;   /* NULL: the defaults */
  const char *guest_os;         /* detected ("debian12"), or NULL */
  const struct vab_option *vmdk_options;  /* for the VMDK writer */
  size_t n_vmdk_options;
  unsigned threads;             /* 0: online cores */
  /* With a signer: make the NAME.cert member (the OVF signature of the
   * .mf plus the PEM certificate).  formats/ does not sign by itself:
   * signing/ (OpenSSL) does, through this callback.  It returns 0 and a
   * malloc'd text, or 0 and NULL when the signer cannot make one. */
  int (*make_cert)(void *opaque, struct vab_ctx *ctx, const char *mf_name,
                   const char *mf, size_t mf_len, char **cert);
  void *cert_opaque;
};

/* The OVF descriptor alone, for a disk of capacity bytes whose VMDK file
 * is vmdk_size bytes long with populated bytes of data.  Returns a
 * malloc'd string, or NULL with an error. */
char *vab_ova_descriptor(struct vab_ctx *ctx, const struct vab_ova_opts *opts,
                         const char *vmdk_name, uint64_t vmdk_size,
                         uint64_t capacity, uint64_t populated);

/* Write dst_path (written under a temporary name and renamed when
 * complete; nothing is left on failure).  result may be NULL. */
int vab_ova_write(struct vab_ctx *ctx, const struct vab_ova_opts *opts,
                  const char *dst_path, struct vab_convert_result *result);

#endif
