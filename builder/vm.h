/* A qemu VM that boots a vab disk: what the boot test and the booted steps
 * (builder/booted.c) share.
 *
 * qemu-system-x86_64 with the build's accelerator, the template's CPUs and
 * memory, BIOS or UEFI (a private copy of OVMF's variables), the disk on
 * virtio, the serial console into a new log file, and user networking
 * (slirp) that forwards a free port on 127.0.0.1 to each guest port asked
 * for, and nothing else.  qemu runs in its own process group
 * (common/subprocess.h): vab_vm_stop() kills it and everything it started,
 * on every path out. */
#ifndef VAB_BUILDER_VM_H
#define VAB_BUILDER_VM_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vab/template.h"
#include "builder/accel.h"
#include "common/subprocess.h"

struct buf;

#define VAB_VM_MAX_PORTS 4

struct vab_vm_opts {
  const char *disk_path;        /* booted as is (writes go to it) */
  const char *disk_format;      /* "qcow2" or "raw" */
  const char *cache;            /* qemu's cache mode; NULL: "unsafe" (a
                                   throwaway overlay) */
  enum vab_firmware firmware;   /* BOTH boots with BIOS; UEFI with OVMF */
  enum vab_accel accel;         /* resolved: KVM or TCG */
  unsigned cpus;                /* 0: 1 */
  uint64_t memory;              /* bytes; at least 256 MiB is given */
  const char *work_dir;         /* for the OVMF variables' copy */
  const char *serial_log_path;  /* created new */
  const uint16_t *guest_ports;  /* forwarded from 127.0.0.1 */
  size_t n_ports;               /* at most VAB_VM_MAX_PORTS */
};

struct vab_vm {
  struct vab_ctx *ctx;
  struct subprocess qemu;
  uint16_t host_ports[VAB_VM_MAX_PORTS];  /* per guest port */
  char qemu_lines[3][256];      /* qemu's last lines of output */
  char qemu_partial[256];
  size_t qemu_partial_len;
  char vars[PATH_MAX];          /* OVMF variables copy, "" if none */
  const char *ovmf_code;
};

/* Start qemu (vm is filled; pass it to vab_vm_stop() whatever this
 * returns).  A forwarded port taken between its probe and qemu's bind is
 * picked again.  -1 when qemu cannot start or exits at once. */
int vab_vm_start(struct vab_ctx *ctx, const struct vab_vm_opts *opts,
                 struct vab_vm *vm);
/* Log what qemu wrote so far, without blocking. */
void vab_vm_drain(struct vab_vm *vm);
/* Has qemu exited?  Reaps it and fills *status if so. */
bool vab_vm_exited(struct vab_vm *vm, int *status);
/* qemu's last line of output ("" if none). */
const char *vab_vm_last_line(const struct vab_vm *vm);
/* Kill qemu's process group (if running) and remove the OVMF copy. */
void vab_vm_stop(struct vab_vm *vm);

/* Append "\nlast lines of the serial log 'PATH':\n..." (its last 20 lines,
 * without terminal escapes) to out. */
void vab_vm_serial_tail(struct buf *out, const char *path);
/* A port that was free on 127.0.0.1 a moment ago. */
int vab_vm_free_port(struct vab_ctx *ctx, uint16_t *port);

#endif
