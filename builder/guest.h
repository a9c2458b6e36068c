/* The guest session: the builder VM (a libguestfs appliance) with the work
 * disk attached.  builder/guest.c is the only user of libguestfs.
 *
 * vab_guest_launch() returns a struct vab_guest, the handle of vab/guest.h:
 * files, scripts and reads go through that interface (what provisioners
 * get, and all they get).  The calls below are the builder's own, for
 * layout, sources, sysprep and the build: partitions, filesystems, mounts,
 * inspection, tarballs, commands, the network.  They take only a handle
 * from vab_guest_launch(), never another implementation of vab/guest.h.
 *
 * Paths named "guest path" are inside the guest's root filesystem, which
 * the session mounts at "/" (the appliance's /sysroot).  Commands run in a
 * chroot of that root with /dev, /proc and /sys bound in, so they use the
 * guest's own programs (its apt, its grub-install).
 *
 * Network: libguestfs fixes the appliance's network at launch.  A session
 * therefore starts without it, and vab_guest_set_network() relaunches the
 * appliance (about 17 s under TCG) when a step needs it, remounting what was
 * mounted.  Steps that need no network keep whatever the session has, so a
 * build relaunches at most when the first networked step comes.
 *
 * Cancellation: a watchdog thread polls vab_cancelled() and kills the
 * appliance's qemu, so that a long call (an upload, apt-get) returns at
 * once; no qemu outlives the session.  During a launch, before libguestfs
 * tells its pid, that qemu is found by the work disk it attaches
 * (builder/qemu-child.h), so no other qemu of the process is touched.
 */
#ifndef VAB_BUILDER_GUEST_H
#define VAB_BUILDER_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vab/error.h"
#include "vab/progress.h"
#include "vab/guest.h"
#include "builder/accel.h"

struct vab_guest_opts {
  const char *disk_path;     /* the work disk */
  const char *disk_format;   /* "raw" or "qcow2" */
  enum vab_accel accel;      /* resolved: KVM or TCG */
  bool network;              /* at launch */
};

/* Create the handle and launch the appliance. */
int vab_guest_launch(struct vab_ctx *ctx, const struct vab_guest_opts *opts,
                     struct vab_guest **out);
/* Flush and shut the appliance down cleanly; then free.  Returns -1 when
 * the shutdown failed (the disk may then be incomplete).  NULL is fine. */
int vab_guest_close(struct vab_guest *g);
/* Kill the appliance without flushing (error paths).  NULL is fine. */
void vab_guest_abort(struct vab_guest *g);

/* The phase that upload progress is reported under. */
void vab_guest_set_phase(struct vab_guest *g, enum vab_phase phase);
/* Relaunch with or without network if that differs from now. */
int vab_guest_set_network(struct vab_guest *g, bool on);

/* The work disk's device in the appliance ("/dev/sda") and its size. */
const char *vab_guest_disk(const struct vab_guest *g);
int vab_guest_disk_size(struct vab_guest *g, uint64_t *bytes);
/* "/dev/sda2" for partition n (1-based) of the work disk. */
void vab_guest_partition(const struct vab_guest *g, int n, char *out,
                         size_t len);

/* Partitioning (sectors of 512 bytes; end is inclusive, negative counts
 * back from the end of the disk).  table is "gpt" or "msdos". */
int vab_guest_part_init(struct vab_guest *g, const char *table);
int vab_guest_part_add(struct vab_guest *g, int64_t start, int64_t end);
int vab_guest_part_set_gpt_type(struct vab_guest *g, int n, const char *guid);
int vab_guest_part_set_mbr_id(struct vab_guest *g, int n, int id);
int vab_guest_part_set_bootable(struct vab_guest *g, int n);
/* Grow partition n to the end of the disk (GPT: move the backup header). */
int vab_guest_part_grow(struct vab_guest *g, int n);
int vab_guest_part_count(struct vab_guest *g, int *n);
/* GPT ids ("8-4-4-4-12" hex), set so that a build derives them (issue 12:
 * reproducible builds) instead of keeping parted's random ones. */
int vab_guest_part_set_disk_guid(struct vab_guest *g, const char *guid);
int vab_guest_part_set_gpt_guid(struct vab_guest *g, int n, const char *guid);
/* Partition n's first byte on the work disk. */
int vab_guest_part_start(struct vab_guest *g, int n, uint64_t *offset);

/* Filesystems on appliance devices. */
int vab_guest_mkfs(struct vab_guest *g, const char *fstype, const char *device,
                   const char *label);
int vab_guest_fs_uuid(struct vab_guest *g, const char *device, char *out,
                      size_t len);
/* ext4 with this UUID. */
int vab_guest_mkfs_ext4(struct vab_guest *g, const char *device,
                        const char *label, const char *uuid);
/* Set an (unmounted) ext2/3/4 or xfs filesystem's UUID. */
int vab_guest_set_fs_uuid(struct vab_guest *g, const char *device,
                          const char *uuid);
/* Raw bytes of an appliance device (an unmounted filesystem's superblock):
 * exactly len bytes at offset, or -1. */
int vab_guest_pread_device(struct vab_guest *g, const char *device,
                           void *out, size_t len, int64_t offset);
int vab_guest_pwrite_device(struct vab_guest *g, const char *device,
                            const void *data, size_t len, int64_t offset);
int vab_guest_fs_type(struct vab_guest *g, const char *device, char *out,
                      size_t len);
/* Grow the filesystem on device (mounted at guest path mountpoint for xfs)
 * to fill it. */
int vab_guest_fs_grow(struct vab_guest *g, const char *fstype,
                      const char *device, const char *mountpoint);
/* Check a filesystem (unmounted); -1 unless it is clean. */
int vab_guest_fsck(struct vab_guest *g, const char *fstype, const char *device);

/* Mounts are remembered so that a relaunch can redo them.  mountpoint is a
 * guest path ("/", "/boot/efi"). */
int vab_guest_mount(struct vab_guest *g, const char *device,
                    const char *mountpoint);
int vab_guest_umount_all(struct vab_guest *g);
/* Flush the appliance's writes to the work disk (a checkpoint copies the
 * disk file while the appliance runs). */
int vab_guest_sync(struct vab_guest *g);
/* Inspect the disk: the root filesystem's device and the OS as
 * "debian12" (distro + major version); both "" when none is found. */
int vab_guest_inspect(struct vab_guest *g, char *root, size_t root_len,
                      char *os, size_t os_len);

/* Upload a host tarball (uncompressed) and unpack it at guest path dir,
 * reporting progress under phase/label. */
int vab_guest_tar_in(struct vab_guest *g, const char *host_tar,
                     const char *dir);
/* Mount device read-only at guest path mountpoint (not remembered: a
 * relaunch does not redo it), then pack guest path dir into host_tar
 * (uncompressed, numeric owners, xattrs and ACLs kept). */
int vab_guest_mount_ro(struct vab_guest *g, const char *device,
                       const char *mountpoint);
int vab_guest_tar_out(struct vab_guest *g, const char *dir,
                      const char *host_tar);

/* Discard the guest's free space (so exports stay small). */
int vab_guest_trim(struct vab_guest *g, const char *mountpoint);

/* Run argv in the guest's chroot; its output goes to the build log.  A
 * non-zero exit is an error naming argv[0] and the last lines of output,
 * which vab_guest_output_tail() then returns too. */
int vab_guest_command(struct vab_guest *g, const char *const *argv);

#endif
