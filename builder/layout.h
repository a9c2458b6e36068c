/* The layout stage: turn the empty work disk into a bootable one.
 *
 *   partitions  GPT or MBR, aligned to 1 MiB.  firmware bios: GPT gets a
 *               1 MiB BIOS-boot partition (MBR needs none); uefi: a 200 MiB
 *               EFI system partition; both: the two, so that one disk boots
 *               under SeaBIOS, VirtualBox and UEFI hypervisors.  The root
 *               filesystem (ext4 or xfs) takes the rest.
 *   contents    the rootfs tarball, unpacked in the builder VM.
 *   identity    fstab by UUID, /etc/hostname, DHCP on every NIC through
 *               systemd-networkd (en* and eth*: virtio, e1000 and vmxnet3
 *               names alike).
 *   boot        GRUB from the guest's own packages: grub-install for each
 *               firmware, then update-grub with a serial console.
 *
 * An image source is adopted instead: its last partition and root
 * filesystem are grown into the space disk.size added. */
#ifndef VAB_BUILDER_LAYOUT_H
#define VAB_BUILDER_LAYOUT_H

#include "vab/template.h"
#include "builder/guest.h"

struct vab_layout {
  /* Given by the caller: the layout step's key.  The GPT GUIDs, file
   * system UUIDs and hash seed derive from it (builder/reproducible.h). */
  char seed[72];
  char root_device[64];     /* in the builder VM: "/dev/sda3" */
  uint64_t root_offset;     /* its first byte on the disk; 0: unknown */
  char root_fstype[16];     /* "ext4", "xfs" */
  char root_uuid[64];
  char esp_device[64];      /* "" when there is no ESP */
  char esp_uuid[64];
};

/* Partition, format, unpack tarball and make the disk bootable.  The root
 * (and the ESP) stay mounted for the provisioners.  layout->seed is kept;
 * the rest is filled in. */
int vab_layout_create(struct vab_ctx *ctx, const struct vab_template *t,
                      struct vab_guest *g, const char *tarball,
                      struct vab_layout *layout);
/* Adopt an existing image: find its root, grow it, mount it (its ids are
 * the image's own).  layout->seed is kept. */
int vab_layout_adopt(struct vab_ctx *ctx, const struct vab_template *t,
                     struct vab_guest *g, struct vab_layout *layout);
/* Unmount everything and check that the root filesystem is clean. */
int vab_layout_finish(struct vab_ctx *ctx, struct vab_guest *g,
                      const struct vab_layout *layout);

#endif
