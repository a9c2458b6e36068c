/* Disk checkpoints of the step cache: the work disk as a qcow2 chain.
 *
 * A disk step's cache entry (layout, each provisioner) holds:
 *
 *   disk.qcow2   the disk after the step: layout's is a whole disk; a
 *                provisioner's is an overlay whose backing file is
 *                "../BASE/disk.qcow2", BASE being the key of the entry it
 *                was made on.  The name is relative, so it resolves both
 *                in CACHE/steps/ and in a build's work folder, where the
 *                entries of a chain are linked out as steps/KEY/.
 *   state        what is not on the disk (below).
 *
 * Sysprep's entry holds the finished disk as one standalone qcow2 (what
 * the tests and exports read) and its state (guest_os).
 *
 * state, line by line, each line ending in '\n', every field once, in
 * this order ("-" for an empty value):
 *
 *   vab-disk 1
 *   base KEY|-             the entry disk.qcow2 is backed by
 *   base-sha256 HEX|-      that entry's disk.qcow2 when this one was made:
 *                          an entry rebuilt since (--no-cache) no longer
 *                          matches, and this one is then not used
 *   root-device DEV        the layout (vab_layout_finish, remounts)
 *   root-fstype TYPE
 *   root-uuid UUID
 *   esp-device DEV|-
 *   esp-uuid UUID|-
 *   guest-os ID|-          "debian12" (sysprep's entry; exports read it)
 */
#ifndef VAB_BUILDER_CHAIN_H
#define VAB_BUILDER_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vab/error.h"
#include "common/buf.h"
#include "builder/layout.h"

#define VAB_CHAIN_DISK "disk.qcow2"
#define VAB_CHAIN_STATE "state"
#define VAB_CHAIN_MAX_STATE 2048

struct vab_chain_state {
  char base[65];
  char base_sha256[65];
  struct vab_layout layout;
  char guest_os[32];
  char root_offset[24];   /* layout.root_offset as text; "" when 0 */
};

/* Parse a state record.  0, or -1 with "line 2: ..." in err. */
int vab_chain_state_parse(const char *text, size_t len,
                          struct vab_chain_state *state, char *err,
                          size_t err_len);
/* Append state in the format above.  -1 when a field holds a space, a
 * control character or is too long for its parser. */
int vab_chain_state_format(const struct vab_chain_state *state,
                           struct buf *out);

/* qemu-img create -f qcow2 PATH SIZE: an empty disk. */
int vab_chain_create(struct vab_ctx *ctx, const char *path, uint64_t size);
/* qemu-img create -f qcow2 -F qcow2 -b BACKING OVERLAY.  backing is
 * relative to the overlay's folder. */
int vab_chain_overlay(struct vab_ctx *ctx, const char *backing,
                      const char *overlay);
/* qemu-img rebase -u: rename the backing file of an image whose data is
 * the same over either name. */
int vab_chain_rebase(struct vab_ctx *ctx, const char *image,
                     const char *backing);
/* qemu-img convert to a standalone qcow2 (the chain read through). */
int vab_chain_flatten(struct vab_ctx *ctx, const char *src,
                      const char *src_format, const char *dst);
/* qemu-img convert src to dst in dst_format ("raw" for the host's
 * e2fsprogs). */
int vab_chain_convert(struct vab_ctx *ctx, const char *src,
                      const char *src_format, const char *dst,
                      const char *dst_format);

/* dst (new) becomes a copy of src: a hard link when link is set and both
 * are on one file system, else a copy that keeps src's holes. */
int vab_chain_copy(struct vab_ctx *ctx, const char *src, const char *dst,
                   bool link_ok);

#endif
