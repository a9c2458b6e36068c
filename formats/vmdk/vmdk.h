/* VMDK sparse extents: on-disk structures shared by the writer, the reader
 * and their unit tests.  Facts and citations: docs/formats.md (VMDK).
 *
 * All integers are little-endian.  Offsets and sizes in the header, the
 * grain directory (GD) and the grain tables (GT) count 512-byte sectors.
 */
#ifndef VAB_FORMATS_VMDK_H
#define VAB_FORMATS_VMDK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/endian.h"
#include "vab/format.h"

#define VMDK_SECTOR 512u
#define VMDK_MAGIC 0x564d444bu          /* "KDMV" on disk */
#define VMDK_GD_AT_END UINT64_MAX       /* header gdOffset: read the footer */

/* Header flags. */
#define VMDK_FLAG_NEWLINE_TEST 0x1u     /* the four check bytes are valid */
#define VMDK_FLAG_REDUNDANT_GT 0x2u
#define VMDK_FLAG_ZEROED_GTE 0x4u       /* GTE 1 means "grain of zeros" */
#define VMDK_FLAG_COMPRESSED 0x10000u
#define VMDK_FLAG_MARKERS 0x20000u
#define VMDK_FLAG_KNOWN                                                    \
  (VMDK_FLAG_NEWLINE_TEST | VMDK_FLAG_REDUNDANT_GT | VMDK_FLAG_ZEROED_GTE | \
   VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS)

#define VMDK_COMPRESS_NONE 0
#define VMDK_COMPRESS_DEFLATE 1         /* zlib (RFC 1950) payloads in fact */

/* Metadata marker types (the marker's u32 after numSectors and size 0). */
#define VMDK_MARKER_EOS 0u
#define VMDK_MARKER_GT 1u
#define VMDK_MARKER_GD 2u
#define VMDK_MARKER_FOOTER 3u
#define VMDK_MARKER_PROGRESS 4u         /* vSphere writes it; one sector */

/* What vab writes. */
#define VMDK_GRAIN_SECTORS 128u         /* 64 KiB grains */
#define VMDK_GTES_PER_GT 512u
#define VMDK_DESCRIPTOR_SECTORS 20u
#define VMDK_GRAIN_MARKER_SIZE 12u      /* u64 lba + u32 size */

/* Limits the reader enforces so that hostile headers cannot make it
 * allocate without bound. */
#define VMDK_MAX_GRAIN_SECTORS 2048u    /* 1 MiB grains */
#define VMDK_MAX_GD_ENTRIES (4u << 20)  /* 16 MiB of grain directory */
#define VMDK_MAX_DESCRIPTOR_BYTES (1u << 20)
/* GTEs are u32 sector numbers, so a sparse file ends below 2 TiB; the
 * writer refuses capacities it could not address. */
#define VMDK_MAX_CAPACITY_BYTES (UINT64_C(2) << 40)

struct vmdk_header {
  uint32_t version;
  uint32_t flags;
  uint64_t capacity;           /* sectors */
  uint64_t grain_size;         /* sectors */
  uint64_t descriptor_offset;  /* sectors, 0 if none */
  uint64_t descriptor_size;    /* sectors */
  uint32_t num_gtes_per_gt;
  uint64_t rgd_offset;         /* sectors */
  uint64_t gd_offset;          /* sectors or VMDK_GD_AT_END */
  uint64_t overhead;           /* sectors before the first grain */
  uint8_t unclean_shutdown;
  bool newline_bytes_ok;       /* decode: the "\n \r\n" bytes are intact */
  uint16_t compress_algorithm;
};

/* Encode the 512-byte header (magic, fields, check bytes, zero padding). */
void vmdk_header_encode(const struct vmdk_header *h, uint8_t out[VMDK_SECTOR]);
/* Decode; returns false if the magic is not "KDMV". */
bool vmdk_header_decode(const uint8_t in[VMDK_SECTOR], struct vmdk_header *h);

/* A one-sector metadata marker. */
void vmdk_marker_encode(uint8_t out[VMDK_SECTOR], uint64_t num_sectors,
                        uint32_t type);

/* Descriptor contents vab writes or reads. */
struct vmdk_descriptor {
  uint32_t cid;
  char create_type[32];        /* "streamOptimized", "monolithicSparse" */
  char adapter_type[16];       /* "lsilogic"... */
  char hw_version[8];          /* "4" */
  uint64_t extent_sectors;     /* from the RW line */
  char extent_type[16];        /* "SPARSE", "FLAT"... */
  char extent_file[512];       /* the first extent's file name, or "" */
  unsigned n_extents;
  uint32_t parent_cid;         /* VMDK_NO_PARENT unless a delta disk */
  char parent_hint[512];       /* parentFileNameHint, or "" */
};

#define VMDK_NO_PARENT 0xffffffffu      /* parentCID of a disk with none */

/* Write the embedded descriptor text for a single sparse extent. */
int vmdk_descriptor_format(struct buf *out, const struct vmdk_descriptor *d,
                           const char *extent_file);
/* Parse descriptor text (len bytes, need not be NUL-terminated; stops at
 * the first NUL).  Returns 0, or -1 with *why set to a static reason. */
int vmdk_descriptor_parse(const char *text, size_t len,
                          struct vmdk_descriptor *d, const char **why);

/* Does text (len bytes) start like a descriptor file? */
bool vmdk_descriptor_signature(const uint8_t *text, size_t len);

/* The vtable's writer and reader halves (vmdk-write.c, vmdk-read.c). */
extern const struct vab_option_spec vmdk_options[];
int vmdk_check_options(const struct vab_option *options, size_t n,
                       struct vab_option_problem *problem);
int vmdk_set_option(struct vab_writer *w, const struct vab_option_value *v);
int vmdk_open(struct vab_writer *w);
int vmdk_encode(struct vab_writer *w, struct vab_block *b);
int vmdk_put(struct vab_writer *w, const struct vab_block *b);
int vmdk_close(struct vab_writer *w);
void vmdk_free(struct vab_writer *w);

bool vmdk_probe(const uint8_t *head, size_t len, uint64_t file_size);
int vmdk_reader_open(struct vab_reader *r);
int vmdk_block_status(struct vab_reader *r, uint64_t offset, uint64_t len,
                      uint64_t *run, bool *is_zero);
int vmdk_pread(struct vab_reader *r, void *buf, size_t len, uint64_t offset);
int vmdk_check(struct vab_reader *r, struct vab_check_result *result);
void vmdk_reader_close(struct vab_reader *r);

#endif
