/* Reproducible builds (issue 12 item 5; docs/build.md "Reproducible
 * builds").
 *
 *   ids         every id the layout writes (GPT disk and partition GUIDs,
 *               file system UUIDs, the ext4 directory hash seed, the vfat
 *               volume id) is derived from the layout step's key, so the
 *               same template gives the same ids, with or without
 *               SOURCE_DATE_EPOCH.
 *   normalise   with SOURCE_DATE_EPOCH set, after the builder VM is gone,
 *               the ext4 root is made anew on the host from its files
 *               (mke2fs -d, same UUID, hash seed, features and sizes),
 *               inode times clamped (mtime) or set (atime, ctime, crtime)
 *               to the epoch, the superblock's times and counters at the
 *               epoch or 0.  What the kernel of the builder VM decided at
 *               random, from its clock or from the order of its writes is
 *               then gone from the image.
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

/* An ext4 file system's parameters, as "dumpe2fs -h" prints them. */
struct vab_ext4_params {
  uint64_t block_count, inode_count, reserved_blocks, journal_blocks;
  unsigned block_size, inode_size, flex_bg;
  char features[512];   /* for mke2fs -O: "none,has_journal,..." */
  bool features_truncated;
  char uuid[37], hash_seed[37];
  char label[17];       /* "" when none */
};
/* Take what one line of "dumpe2fs -h" says (start from a zeroed struct). */
void vab_repro_ext4_param_line(struct vab_ext4_params *p, const char *line);
/* -1 unless every parameter mke2fs needs is there and sane. */
int vab_repro_ext4_params_check(const struct vab_ext4_params *p);

/* Normalise the finished disk (closed, on the host) for a reproducible
 * build: the ext4 root is made anew from root_tar (the root's files, as
 * vab_guest_tar_out wrote them; removed as soon as it is unpacked) with
 * the same parameters.  A no-op unless the root is ext4 on a raw disk and
 * root_tar is given.  Temporary files (the unpacked tree, the tools'
 * scripts) go beside disk_path and are removed on every path, a cancel
 * (the context's flag) included. */
int vab_repro_normalise(struct vab_ctx *ctx, const char *disk_path,
                        const char *disk_format,
                        const struct vab_layout *layout, const char *root_tar,
                        int64_t epoch);

/* An ESP's parameters, as mtools' "minfo" prints them. */
struct vab_vfat_params {
  unsigned sector_size, cluster_sectors, reserved, fats, root_entries;
  unsigned sectors_per_track, heads, drive;
  uint64_t hidden, small_size, big_size;
  uint32_t serial;
  bool have_serial;
  int fat_bits;         /* 12, 16, 32 */
  char label[12];       /* "" when none */
};
void vab_repro_vfat_param_line(struct vab_vfat_params *p, const char *line);
int vab_repro_vfat_params_check(const struct vab_vfat_params *p);

/* The same for the ESP at offset (its first byte on the raw disk): made
 * anew from esp_tar (removed once unpacked) with mkfs.vfat --invariant and
 * the old one's parameters, its files copied in sorted order by mtools,
 * every time at most the epoch. */
int vab_repro_normalise_esp(struct vab_ctx *ctx, const char *disk_path,
                            uint64_t offset, const char *esp_tar,
                            int64_t epoch);

/* What the build calls once the builder VM is closed: reads
 * SOURCE_DATE_EPOCH and, when it is set, normalises the disk's root and,
 * given esp_tar and esp_offset, its ESP. */
int vab_repro_finish(struct vab_ctx *ctx, const char *disk_path,
                     const char *disk_format, const struct vab_layout *layout,
                     const char *root_tar, uint64_t esp_offset,
                     const char *esp_tar);

#endif
