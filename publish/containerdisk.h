/* KubeVirt containerDisk: a one-layer container image whose tar holds
 * disk/NAME.qcow2, owned by uid/gid 107 (qemu in the virt-launcher pod). */
#ifndef VAB_PUBLISH_CONTAINERDISK_H
#define VAB_PUBLISH_CONTAINERDISK_H

#include <stddef.h>
#include <stdint.h>
#include "vab/error.h"

#define CONTAINERDISK_UID 107

/* The tar stream around a qcow2 of size bytes: *head holds the headers
 * (disk/ and disk/NAME), *tail the padding and the end-of-archive blocks;
 * the qcow2's bytes go in between unchanged.  Both are malloc'd. */
int containerdisk_tar(struct vab_ctx *ctx, const char *file_name,
                      uint64_t size, int64_t mtime, uint8_t **head,
                      size_t *head_len, uint8_t **tail, size_t *tail_len);

/* The OCI image config: amd64/linux, labels, rootfs.diff_ids = the
 * (uncompressed) layer digest.  malloc'd, NULL when out of memory. */
char *containerdisk_config(const char *layer_digest, const char *created,
                           const char *name, const char *version);

#endif
