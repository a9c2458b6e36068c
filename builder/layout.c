/* The layout stage (see layout.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vab/progress.h"
#include "common/buf.h"
#include "builder/layout.h"
#include "builder/reproducible.h"

#define SECTOR 512
#define MIB_SECTORS 2048
#define ESP_MIB 200

#define GPT_BIOS_BOOT "21686148-6449-6E6F-744E-656564454649"
#define GPT_ESP "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
#define MBR_ESP 0xef

/* DHCP on every ethernet NIC, whatever the hypervisor calls it. */
static const char network_unit[] =
  "# Written by vab: DHCP on every wired NIC (virtio, e1000, vmxnet3...).\n"
  "[Match]\n"
  "Name=en* eth*\n"
  "\n"
  "[Network]\n"
  "DHCP=yes\n";

/* Read by update-grub after /etc/default/grub.  A bootstrap with only the
 * grub-*-bin packages has no /etc/default/grub (grub-pc's postinst would
 * copy it): vab copies Debian's default from grub2-common, since users and
 * tools such as virt-v2v edit that file. */
static const char grub_default_file[] =
  "[ -e /etc/default/grub ] || [ ! -e /usr/share/grub/default/grub ] ||\n"
  "  cp /usr/share/grub/default/grub /etc/default/grub\n";

/* Not "quiet" (Debian's default): the boot test's serial log is what a
 * user reads when an appliance does not come up.  no_timer_check: on a
 * busy host (an overcommitted hypervisor, or TCG on a loaded machine) the
 * kernel's early IO-APIC timer check can miss its ticks and panic with
 * "IO-APIC + timer doesn't work"; cloud images pass it for that reason. */
static const char grub_defaults[] =
  "# Written by vab: boot messages and a login on the serial console too.\n"
  "GRUB_TIMEOUT=1\n"
  "GRUB_CMDLINE_LINUX=\"console=tty0 console=ttyS0,115200n8 no_timer_check\"\n"
  "GRUB_CMDLINE_LINUX_DEFAULT=\"\"\n"
  "GRUB_TERMINAL=\"console serial\"\n"
  "GRUB_SERIAL_COMMAND=\"serial --speed=115200\"\n"
  "GRUB_DISABLE_OS_PROBER=true\n";

static const char *fs_name(enum vab_filesystem fs) {
  return fs == VAB_FS_XFS ? "xfs" : "ext4";
}

static int partition(struct vab_ctx *ctx, const struct vab_template *t,
                     struct vab_guest *g, struct vab_layout *layout) {
  const struct vab_disk *d = &t->disk;
  bool gpt = d->partitions == VAB_PART_GPT;
  bool bios = d->firmware == VAB_FW_BIOS || d->firmware == VAB_FW_BOTH;
  bool uefi = d->firmware == VAB_FW_UEFI || d->firmware == VAB_FW_BOTH;
  uint64_t bytes = 0;
  if (vab_guest_disk_size(g, &bytes) < 0)
    return -1;
  int64_t sectors = (int64_t)(bytes / SECTOR);
  /* GPT keeps its backup table in the last 33 sectors. */
  int64_t last = gpt ? sectors - 34 : sectors - 1;
  last = ((last + 1) / MIB_SECTORS) * MIB_SECTORS - 1;
  int64_t need = MIB_SECTORS * (2 + (uefi ? ESP_MIB : 0) + 64);
  if (last < need)
    return vab_error_at(ctx, VAB_E_USAGE, &d->mark,
                        "disk.size of %llu bytes is too small for a root "
                        "filesystem", (unsigned long long)bytes);

  vab_log(ctx, VAB_LOG_INFO, "layout: %s, %s, %s",
          gpt ? "GPT" : "MBR",
          d->firmware == VAB_FW_BOTH ? "BIOS+UEFI" : uefi ? "UEFI" : "BIOS",
          fs_name(d->filesystem));
  if (vab_guest_part_init(g, gpt ? "gpt" : "msdos") < 0)
    return -1;
  int n = 0;
  int64_t start = MIB_SECTORS;
  /* GRUB for BIOS embeds its core in this partition on GPT; on MBR it uses
   * the gap before the first partition. */
  if (gpt && bios) {
    if (vab_guest_part_add(g, start, start + MIB_SECTORS - 1) < 0 ||
        vab_guest_part_set_gpt_type(g, ++n, GPT_BIOS_BOOT) < 0)
      return -1;
    start += MIB_SECTORS;
  }
  if (uefi) {
    int64_t end = start + (int64_t)ESP_MIB * MIB_SECTORS - 1;
    if (vab_guest_part_add(g, start, end) < 0)
      return -1;
    n++;
    if ((gpt ? vab_guest_part_set_gpt_type(g, n, GPT_ESP)
             : vab_guest_part_set_mbr_id(g, n, MBR_ESP)) < 0)
      return -1;
    vab_guest_partition(g, n, layout->esp_device, sizeof layout->esp_device);
    start = end + 1;
  }
  if (vab_guest_part_add(g, start, last) < 0)
    return -1;
  n++;
  if (!gpt && vab_guest_part_set_bootable(g, n) < 0)
    return -1;
  vab_guest_partition(g, n, layout->root_device, sizeof layout->root_device);
  layout->root_offset = (uint64_t)start * SECTOR;
  /* parted draws the GPT GUIDs at random; derived ones make the same
   * template give the same table.  (An MBR's disk signature is 0.) */
  if (gpt) {
    char guid[37];
    vab_repro_uuid(layout->seed, "gpt disk", guid);
    if (vab_guest_part_set_disk_guid(g, guid) < 0)
      return -1;
    for (int i = 1; i <= n; i++) {
      char what[32];
      snprintf(what, sizeof what, "gpt partition %d", i);
      vab_repro_uuid(layout->seed, what, guid);
      if (vab_guest_part_set_gpt_guid(g, i, guid) < 0)
        return -1;
    }
  }
  snprintf(layout->root_fstype, sizeof layout->root_fstype, "%s",
           fs_name(d->filesystem));
  return 0;
}

static int write_text(struct vab_guest *g, const char *path, const char *text) {
  return vab_guest_write(g, path, text, strlen(text));
}

static int write_fstab(struct vab_ctx *ctx, struct vab_guest *g,
                       const struct vab_layout *layout) {
  struct buf fstab = BUF_INIT;
  bool xfs = strcmp(layout->root_fstype, "xfs") == 0;
  int r = buf_printf(&fstab,
                     "# Written by vab: filesystems by UUID, so any disk bus "
                     "works.\n"
                     "UUID=%s / %s %s 0 %d\n",
                     layout->root_uuid, layout->root_fstype,
                     xfs ? "defaults" : "errors=remount-ro", xfs ? 0 : 1);
  if (r == 0 && layout->esp_device[0] != '\0')
    r = buf_printf(&fstab, "UUID=%s /boot/efi vfat umask=0077 0 2\n",
                   layout->esp_uuid);
  if (r < 0) {
    buf_release(&fstab);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  r = write_text(g, "/etc/fstab", fstab.data);
  buf_release(&fstab);
  return r;
}

static int write_identity(struct vab_ctx *ctx, const struct vab_template *t,
                          struct vab_guest *g) {
  struct buf hosts = BUF_INIT;
  struct buf hostname = BUF_INIT;
  if (buf_printf(&hostname, "%s\n", t->name) < 0 ||
      buf_printf(&hosts,
                 "127.0.0.1\tlocalhost\n"
                 "127.0.1.1\t%s\n"
                 "::1\t\tlocalhost ip6-localhost ip6-loopback\n"
                 "ff02::1\t\tip6-allnodes\n"
                 "ff02::2\t\tip6-allrouters\n",
                 t->name) < 0) {
    buf_release(&hosts);
    buf_release(&hostname);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  int r = write_text(g, "/etc/hostname", hostname.data);
  if (r == 0)
    r = write_text(g, "/etc/hosts", hosts.data);
  buf_release(&hosts);
  buf_release(&hostname);
  return r;
}

static int setup_network(struct vab_guest *g) {
  if (vab_guest_mkdir_p(g, "/etc/systemd/network") < 0 ||
      write_text(g, "/etc/systemd/network/80-vab-dhcp.network",
                 network_unit) < 0)
    return -1;
  const char *enable_networkd[] = {"systemctl", "enable",
                                   "systemd-networkd.service", NULL};
  if (vab_guest_command(g, enable_networkd) < 0)
    return -1;
  bool resolved = false;
  if (vab_guest_exists(g, "/lib/systemd/system/systemd-resolved.service",
                       &resolved) < 0)
    return -1;
  if (!resolved)
    return 0;
  /* resolved serves the DNS servers DHCP gave through its stub. */
  const char *enable_resolved[] = {"systemctl", "enable",
                                   "systemd-resolved.service", NULL};
  if (vab_guest_command(g, enable_resolved) < 0 ||
      vab_guest_rm_rf(g, "/etc/resolv.conf") < 0 ||
      vab_guest_symlink(g, "../run/systemd/resolve/stub-resolv.conf",
                        "/etc/resolv.conf") < 0)
    return -1;
  return 0;
}

static int install_grub(struct vab_ctx *ctx, const struct vab_template *t,
                        struct vab_guest *g, const struct vab_layout *layout) {
  bool bios = t->disk.firmware != VAB_FW_UEFI;
  bool uefi = t->disk.firmware != VAB_FW_BIOS;
  bool have = false;
  if (vab_guest_exists(g, "/usr/sbin/grub-install", &have) < 0)
    return -1;
  if (!have)
    return vab_error_at(ctx, VAB_E_GUEST, &t->source.mark,
                        "the guest has no grub-install: its rootfs needs "
                        "grub2-common and grub-pc-bin/grub-efi-amd64-bin");
  int copied = 0;
  if (vab_guest_mkdir_p(g, "/etc/default/grub.d") < 0 ||
      write_text(g, "/etc/default/grub.d/50-vab.cfg", grub_defaults) < 0 ||
      vab_guest_script(g, grub_default_file, NULL, &copied) < 0)
    return -1;
  if (copied != 0)
    return vab_error_at(ctx, VAB_E_GUEST, &t->disk.mark,
                        "cannot write /etc/default/grub in the guest (exit "
                        "status %d)", copied);
  if (bios) {
    vab_log(ctx, VAB_LOG_INFO, "layout: grub-install (BIOS)");
    /* libguestfs renames devices in its own calls, but a command sees the
     * appliance's real names, where the work disk may be sdb: find it
     * from the root filesystem's UUID. */
    struct buf script = BUF_INIT;
    int r = buf_printf(&script,
                       "set -e\n"
                       "part=$(readlink -f /dev/disk/by-uuid/%s)\n"
                       "disk=$(readlink -f \"/sys/class/block/${part##*/}/..\")\n"
                       "grub-install --target=i386-pc \"/dev/${disk##*/}\"\n",
                       layout->root_uuid);
    int status = 0;
    if (r == 0)
      r = vab_guest_script(g, script.data, NULL, &status);
    else
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
    buf_release(&script);
    if (r < 0)
      return -1;
    if (status != 0) {
      vab_error_at(ctx, VAB_E_GUEST, &t->disk.mark,
                   "grub-install for BIOS failed in the guest (exit status "
                   "%d)", status);
      vab_diag_hint(ctx, "its last output lines:\n%s",
                    vab_guest_output_tail(g));
      return -1;
    }
  }
  if (uefi) {
    vab_log(ctx, VAB_LOG_INFO, "layout: grub-install (UEFI)");
    /* --removable: EFI/BOOT/BOOTX64.EFI boots without NVRAM entries, which
     * a fresh VM does not have. */
    const char *argv[] = {"grub-install", "--target=x86_64-efi",
                          "--efi-directory=/boot/efi", "--removable",
                          "--no-nvram", NULL};
    if (vab_guest_command(g, argv) < 0)
      return -1;
  }
  vab_log(ctx, VAB_LOG_INFO, "layout: update-grub");
  const char *update[] = {"update-grub", NULL};
  return vab_guest_command(g, update);
}

/* Empty the layout but for the seed its caller gave. */
static void layout_reset(struct vab_layout *layout) {
  char seed[sizeof layout->seed];
  memcpy(seed, layout->seed, sizeof seed);
  memset(layout, 0, sizeof *layout);
  memcpy(layout->seed, seed, sizeof seed);
  layout->seed[sizeof layout->seed - 1] = '\0';
}

/* The root file system, with its UUID (and ext4's directory hash seed)
 * derived from the seed, set before anything is written to it: the kernel
 * places top-level directories by that hash. */
static int make_root_fs(struct vab_ctx *ctx, struct vab_guest *g,
                        struct vab_layout *layout) {
  char uuid[37];
  vab_repro_uuid(layout->seed, "root file system", uuid);
  if (strcmp(layout->root_fstype, "ext4") == 0) {
    char hash_seed[37];
    vab_repro_uuid(layout->seed, "root directory hash seed", hash_seed);
    if (vab_guest_mkfs_ext4(g, layout->root_device, "root", uuid) < 0 ||
        vab_repro_ext4_hash_seed(ctx, g, layout->root_device, hash_seed) < 0)
      return -1;
  } else if (vab_guest_mkfs(g, layout->root_fstype, layout->root_device,
                            "root") < 0 ||
             vab_guest_set_fs_uuid(g, layout->root_device, uuid) < 0) {
    return -1;
  }
  return vab_guest_fs_uuid(g, layout->root_device, layout->root_uuid,
                           sizeof layout->root_uuid);
}

int vab_layout_create(struct vab_ctx *ctx, const struct vab_template *t,
                      struct vab_guest *g, const char *tarball,
                      struct vab_layout *layout) {
  layout_reset(layout);
  vab_guest_set_phase(g, VAB_PHASE_LAYOUT);
  if (partition(ctx, t, g, layout) < 0)
    return -1;
  if (make_root_fs(ctx, g, layout) < 0)
    return -1;
  if (layout->esp_device[0] != '\0' &&
      (vab_guest_mkfs(g, "vfat", layout->esp_device, "ESP") < 0 ||
       vab_repro_vfat_volume_id(ctx, g, layout->esp_device,
                                vab_repro_u32(layout->seed, "esp volume id")) <
           0 ||
       vab_guest_fs_uuid(g, layout->esp_device, layout->esp_uuid,
                         sizeof layout->esp_uuid) < 0))
    return -1;
  if (vab_guest_mount(g, layout->root_device, "/") < 0)
    return -1;
  if (layout->esp_device[0] != '\0' &&
      (vab_guest_mkdir_p(g, "/boot/efi") < 0 ||
       vab_guest_mount(g, layout->esp_device, "/boot/efi") < 0))
    return -1;
  vab_log(ctx, VAB_LOG_INFO, "layout: unpacking the rootfs");
  if (vab_guest_tar_in(g, tarball, "/") < 0) {
    const struct vab_diag *last = vab_last_error(ctx);
    bool full = last != NULL && last->message != NULL &&
                strstr(last->message, "No space left") != NULL;
    if (last == NULL || last->code != VAB_E_CANCELLED) {
      vab_error_at(ctx, VAB_E_GUEST, &t->disk.mark,
                   "layout: unpacking the rootfs onto the disk failed");
      if (full)
        vab_diag_hint(ctx, "the rootfs does not fit: make disk.size larger");
    }
    return -1;
  }
  if (vab_check_cancel(ctx) < 0)
    return -1;
  if (write_fstab(ctx, g, layout) < 0 || write_identity(ctx, t, g) < 0 ||
      setup_network(g) < 0 || install_grub(ctx, t, g, layout) < 0)
    return -1;
  return 0;
}

int vab_layout_adopt(struct vab_ctx *ctx, const struct vab_template *t,
                     struct vab_guest *g, struct vab_layout *layout) {
  layout_reset(layout);
  vab_guest_set_phase(g, VAB_PHASE_LAYOUT);
  char os[64];
  if (vab_guest_inspect(g, layout->root_device, sizeof layout->root_device, os,
                        sizeof os) < 0)
    return -1;
  if (layout->root_device[0] == '\0')
    return vab_error_at(ctx, VAB_E_GUEST, &t->source.mark,
                        "no operating system found in the source image");
  vab_log(ctx, VAB_LOG_INFO, "layout: image with %s, root on %s", os,
          layout->root_device);
  if (vab_guest_fs_type(g, layout->root_device, layout->root_fstype,
                        sizeof layout->root_fstype) < 0 ||
      vab_guest_fs_uuid(g, layout->root_device, layout->root_uuid,
                        sizeof layout->root_uuid) < 0)
    return -1;
  /* Grow only a root that is the disk's last partition: anything else
   * (LVM, a partition after it) would need moving data around. */
  const char *disk = vab_guest_disk(g);
  size_t disk_len = strlen(disk);
  int count = 0;
  if (vab_guest_part_count(g, &count) < 0)
    return -1;
  bool grow = false;
  if (strncmp(layout->root_device, disk, disk_len) == 0 && count > 0) {
    int n = atoi(layout->root_device + disk_len);
    grow = n == count;
    if (vab_guest_part_start(g, n, &layout->root_offset) < 0)
      return -1;
    if (grow && vab_guest_part_grow(g, n) < 0)
      return -1;
  }
  if (!grow)
    vab_warn_at(ctx, &t->disk.mark,
                "the image's root %s is not the disk's last partition: it "
                "keeps its size", layout->root_device);
  if (grow && strcmp(layout->root_fstype, "xfs") != 0 &&
      vab_guest_fs_grow(g, layout->root_fstype, layout->root_device, "/") < 0)
    return -1;
  if (vab_guest_mount(g, layout->root_device, "/") < 0)
    return -1;
  /* xfs grows while mounted. */
  if (grow && strcmp(layout->root_fstype, "xfs") == 0 &&
      vab_guest_fs_grow(g, layout->root_fstype, layout->root_device, "/") < 0)
    return -1;
  return 0;
}

int vab_layout_finish(struct vab_ctx *ctx, struct vab_guest *g,
                      const struct vab_layout *layout) {
  if (vab_guest_umount_all(g) < 0)
    return -1;
  vab_log(ctx, VAB_LOG_INFO, "checking the root filesystem");
  return vab_guest_fsck(g, layout->root_fstype, layout->root_device);
}
