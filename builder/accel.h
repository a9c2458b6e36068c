/* Choosing between KVM and TCG for the builder VM and the boot test.
 *
 * /dev/kvm can exist and still hang a guest (nested KVM).  AUTO therefore
 * runs a short probe that cannot hang (a bounded qemu start in a child that
 * is killed at a deadline) and falls back to TCG with a logged reason. */
#ifndef VAB_BUILDER_ACCEL_H
#define VAB_BUILDER_ACCEL_H

#include <stddef.h>
#include "vab/error.h"

enum vab_accel { VAB_ACCEL_AUTO, VAB_ACCEL_KVM, VAB_ACCEL_TCG };

int vab_accel_parse(const char *text, enum vab_accel *out);
const char *vab_accel_name(enum vab_accel accel);

/* Resolve AUTO to KVM or TCG (cached per process).  An explicit KVM that
 * does not work is an error; reason says why TCG was chosen, if it was. */
int vab_accel_resolve(struct vab_ctx *ctx, enum vab_accel requested,
                      enum vab_accel *resolved, char *reason,
                      size_t reason_len);

/* Boot the probe guest under accel (KVM or TCG) with a deadline of
 * timeout_ms.  Returns 1 if the guest ran to its end, 0 if it did not
 * (reason says why: timed out, qemu failed), or -1 with an error when the
 * probe could not run at all (no qemu, cancelled).  Not cached. */
int vab_accel_probe(struct vab_ctx *ctx, enum vab_accel accel,
                    int timeout_ms, char *reason, size_t reason_len);

#endif
