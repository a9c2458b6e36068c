/* Reproducible builds (issue 12 item 5; docs/build.md "Reproducible
 * builds").
 *
 *   ids         every id the layout writes (GPT disk and partition GUIDs,
 *               file system UUIDs, the ext4 directory hash seed, the vfat
 *               volume id) is derived from the layout step's key, so the
 *               same template gives the same ids, with or without
 *               SOURCE_DATE_EPOCH.
 *   normalise   with SOURCE_DATE_EPOCH set, after the builder VM is gone,
 *               the ext4 root is normalised on the host with e2fsprogs:
 *               inode times clamped (mtime) or set (atime, ctime, crtime)
 *               to the epoch, inode generations from the sysprep key, free
 *               inodes cleared, the journal recreated empty, the superblock's mount counts, times and write
 *               counters reset, free blocks discarded.
 *               What the kernel of the builder VM decided at random or
 *               from its clock is then gone from the image.
 */
#ifndef VAB_BUILDER_REPRODUCIBLE_H
#define VAB_BUILDER_REPRODUCIBLE_H

#include <stdbool.h>
#include <stdint.h>

#include "vab/error.h"
#include "builder/guest.h"
#include "builder/layout.h"

/* A version 4 style UUID ("8-4-4-4-12", lowercase) from seed and what it
 * is for ("gpt disk", "root fs"...). */
void vab_repro_uuid(const char *seed, const char *what, char out[37]);
/* 32 bits from seed and what: the vfat volume id, inode generations. */
uint32_t vab_repro_u32(const char *seed, const char *what);

/* Set an unmounted ext4 file system's directory hash seed (before anything
 * is written to it: the kernel places top-level directories by that hash). */
int vab_repro_ext4_hash_seed(struct vab_ctx *ctx, struct vab_guest *g,
                             const char *device, const char *uuid);
/* The same on a superblock in memory (1024 bytes, as read at offset
 * 1024): -1 unless it is ext2/3/4's and uuid is a UUID. */
int vab_repro_ext4_sb_hash_seed(uint8_t *sb, const char *uuid);
/* Set an unmounted vfat file system's volume id (its "UUID"). */
int vab_repro_vfat_volume_id(struct vab_ctx *ctx, struct vab_guest *g,
                             const char *device, uint32_t id);

/* SOURCE_DATE_EPOCH: *set false when it is not set; -1 (VAB_E_USAGE) when
 * it is not a whole number of seconds. */
int vab_repro_epoch(struct vab_ctx *ctx, bool *set, int64_t *epoch);

/* Normalise the finished disk (closed, on the host) for a reproducible
 * build: a no-op unless the root is ext4 on a raw disk.  seed: the sysprep
 * step key. */
int vab_repro_normalise(struct vab_ctx *ctx, const char *disk_path,
                        const char *disk_format,
                        const struct vab_layout *layout, const char *seed,
                        int64_t epoch);

/* What the build calls once the builder VM is closed: reads
 * SOURCE_DATE_EPOCH and, when it is set, normalises the disk. */
int vab_repro_finish(struct vab_ctx *ctx, const char *disk_path,
                     const char *disk_format, const struct vab_layout *layout,
                     const char *seed);

#endif
