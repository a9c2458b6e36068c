/* Booted steps: the appliance itself booted under qemu and reached over
 * SSH (builder/ssh.h), for steps with `booted: true` and the types that
 * always boot (vab/step.h).
 *
 * A segment of consecutive booted steps goes:
 *
 *   vab_booted_new        the build's one-time key pair (private folder)
 *   vab_booted_prepare    in the builder VM, offline: openssh-server if the
 *                         image lacks it (network on for that), a host key
 *                         if none, vab's key for root beside any existing
 *                         authorized_keys, sshd enabled and allowing root by
 *                         key, the builder's policy-rc.d moved aside; every
 *                         change is recorded in the guest (STATE_DIR)
 *   (the builder VM stops: its disk is the one qemu boots)
 *   vab_booted_boot       qemu on the disk, 127.0.0.1:PORT to guest port 22
 *                         only, until SSH answers with the host key read
 *   vab_booted_guest      the struct vab_guest the steps run against;
 *                         vab_booted_begin_step bounds its calls
 *   vab_booted_shutdown   poweroff over SSH, qemu's exit awaited, killed
 *                         after a bound (then the segment fails)
 *   (the builder VM again, on the same disk)
 *   vab_booted_restore    undo what prepare recorded: the key out and
 *                         authorized_keys as it was, packages vab installed
 *                         purged (their host keys with them), the host key,
 *                         sshd drop-in and unit link vab made removed,
 *                         policy-rc.d back
 *   vab_booted_free       qemu killed if still running, the key folder
 *                         removed: on every path, Ctrl-C included.
 */
#ifndef VAB_BUILDER_BOOTED_H
#define VAB_BUILDER_BOOTED_H

#include <stdint.h>
#include "vab/error.h"
#include "vab/guest.h"
#include "vab/template.h"
#include "builder/accel.h"

/* Where prepare records what it changed, in the guest. */
#define VAB_BOOTED_STATE_DIR "/var/lib/vab-booted"

struct vab_booted;

struct vab_booted_opts {
  const char *disk_path;        /* the work overlay, booted as is */
  const char *disk_format;      /* "qcow2" */
  enum vab_firmware firmware;
  enum vab_accel accel;         /* resolved */
  unsigned cpus;
  uint64_t memory;
  const char *work_dir;         /* the key folder and temporary files */
  const char *serial_log_path;  /* kept */
};

int vab_booted_new(struct vab_ctx *ctx, const struct vab_booted_opts *opts,
                   struct vab_booted **out);
void vab_booted_free(struct vab_booted *b);

/* builder is the builder VM's session (builder/guest.h), mounted. */
int vab_booted_prepare(struct vab_booted *b, struct vab_guest *builder);
/* Boot and wait, at most timeout_ms, for SSH. */
int vab_booted_boot(struct vab_booted *b, uint64_t timeout_ms);
struct vab_guest *vab_booted_guest(struct vab_booted *b);
/* The step that runs now: its calls end by now + timeout_ms, and an error
 * of a call that ran out names it. */
void vab_booted_begin_step(struct vab_booted *b, const char *label,
                           uint64_t timeout_ms);
int vab_booted_shutdown(struct vab_booted *b);
int vab_booted_restore(struct vab_booted *b, struct vab_guest *builder);

/* Seconds from qemu's start to SSH's first answer (0 before). */
double vab_booted_boot_seconds(const struct vab_booted *b);

#endif
