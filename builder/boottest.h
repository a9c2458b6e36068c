/* The boot test: boot a temporary qcow2 overlay of the finished disk in
 * qemu (never the disk itself), forward a free 127.0.0.1 port to each guest
 * port a check needs, and run the template's http/tcp/serial checks within
 * the timeout.  qemu is always killed and the overlay removed. */
#ifndef VAB_BUILDER_BOOTTEST_H
#define VAB_BUILDER_BOOTTEST_H

#include <stdint.h>
#include "vab/template.h"
#include "builder/accel.h"

struct vab_boottest_opts {
  const char *disk_path;        /* the finished disk */
  const char *disk_format;      /* "raw" or "qcow2" */
  enum vab_firmware firmware;   /* BOTH boots with BIOS; UEFI with OVMF */
  enum vab_accel accel;         /* resolved: KVM or TCG */
  unsigned cpus;
  uint64_t memory;              /* bytes */
  const char *work_dir;         /* for the overlay */
  const char *serial_log_path;  /* kept after the test */
};

struct vab_boottest_result {
  double seconds;               /* from qemu start to all checks passed */
  int http_status;              /* last HTTP status seen, 0 if none */
};

/* Returns 0 when every check passed; on failure the error says which check
 * failed and ends with the tail of the serial log. */
int vab_boottest_run(struct vab_ctx *ctx, const struct vab_boottest_opts *opts,
                     const struct vab_boot_test *test,
                     struct vab_boottest_result *result);

#endif
