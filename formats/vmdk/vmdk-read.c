/* VMDK reader: hosted sparse extents with an embedded descriptor, i.e.
 * monolithicSparse and streamOptimized, with the GD at the front (qemu,
 * open-vmdk, VMware Workstation) or at the end behind a footer (vab,
 * VirtualBox, the VMware technote).
 *
 * Every offset read from the file is checked against the file size before
 * it is used, and every allocation is bounded by the VMDK_MAX_* limits, so
 * a hostile image gets a VAB_E_FORMAT error naming the file and offset.
 * A reader is used from one thread at a time.
 */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/io.h"
#include "formats/image.h"
#include "formats/vmdk/vmdk.h"
#include "vab/error.h"
#include "vab/progress.h"

#define NO_INDEX UINT64_MAX
/* Most problems check() describes one by one; the rest are counted. */
#define CHECK_MAX_REPORTS 10
/* Entries the overlap check may hold (8 bytes each). */
#define CHECK_MAX_EXTENTS (4u << 20)

struct vmdk_reader {
  struct vmdk_header header;   /* the footer's, when the header defers */
  struct vmdk_descriptor descriptor;
  bool have_descriptor;
  bool compressed;
  bool markers;
  bool zeroed_gte;
  uint64_t grain_bytes;
  uint64_t capacity_bytes;
  uint32_t n_gdes;
  uint32_t *gd;
  uint32_t gt_entries;
  uint32_t *gt;                /* the cached grain table */
  uint64_t gt_index;           /* which one, or NO_INDEX */
  uint8_t *grain;              /* the cached inflated grain */
  uint64_t grain_index;        /* which one, or NO_INDEX */
  uint8_t *packed;             /* compressed payload buffer */
  size_t packed_cap;
  struct libdeflate_decompressor *inflater;
  bool quiet;                  /* check(): keep errors in quiet_msg */
  char quiet_msg[256];
};

/* Record an error, or during check() keep it as a finding instead. */
static int vfail(struct vab_reader *r, enum vab_code code, int errnum,
                 const char *fmt, va_list ap) VAB_PRINTF(4, 0);
static int vfail(struct vab_reader *r, enum vab_code code, int errnum,
                 const char *fmt, va_list ap) {
  struct vmdk_reader *s = r->priv;
  if (s != NULL && s->quiet) {
    vsnprintf(s->quiet_msg, sizeof s->quiet_msg, fmt, ap);
    return -1;
  }
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  if (errnum != 0)
    return vab_error_errno(r->ctx, code, errnum, "%s", msg);
  return vab_error(r->ctx, code, "%s", msg);
}

static int fail(struct vab_reader *r, enum vab_code code, const char *fmt,
                ...) VAB_PRINTF(3, 4);
static int fail(struct vab_reader *r, enum vab_code code, const char *fmt,
                ...) {
  va_list ap;
  va_start(ap, fmt);
  int ret = vfail(r, code, 0, fmt, ap);
  va_end(ap);
  return ret;
}

static int fail_errno(struct vab_reader *r, enum vab_code code, int errnum,
                      const char *fmt, ...) VAB_PRINTF(4, 5);
static int fail_errno(struct vab_reader *r, enum vab_code code, int errnum,
                      const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int ret = vfail(r, code, errnum, fmt, ap);
  va_end(ap);
  return ret;
}

static int read_at(struct vab_reader *r, void *buf, size_t len, uint64_t off,
                   const char *what) {
  if (off > r->file_size || len > r->file_size - off)
    return fail(r, VAB_E_FORMAT,
                     "'%s': %s at offset %" PRIu64 " (%zu bytes) lies past "
                     "the end of the file (%" PRIu64 " bytes)",
                     r->path, what, off, len, r->file_size);
  ssize_t n = pread_full(r->fd, buf, len, off);
  if (n < 0)
    return fail_errno(r, VAB_E_IO, errno,
                      "'%s': cannot read %s at offset %" PRIu64, r->path,
                      what, off);
  if ((size_t)n != len)
    return fail(r, VAB_E_FORMAT,
                "'%s': file ends inside %s at offset %" PRIu64, r->path, what,
                off + (uint64_t)n);
  return 0;
}

bool vmdk_probe(const uint8_t *head, size_t len, uint64_t file_size) {
  (void)file_size;
  /* A descriptor file is probed too, so that it gets a clear refusal
   * (vmdk_reader_open) rather than being read as a raw disk of text. */
  return (len >= 4 && load_le32(head) == VMDK_MAGIC) ||
         vmdk_descriptor_signature(head, len);
}

static bool is_power_of_two(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

/* Check the fields everything else relies on. */
static int validate_header(struct vab_reader *r, const struct vmdk_header *h,
                           uint64_t at) {
  if (h->version < 1 || h->version > 3)
    return fail(r, VAB_E_UNSUPPORTED,
                     "'%s': VMDK version %" PRIu32 " at offset %" PRIu64
                     " is not supported (1 to 3 are)",
                     r->path, h->version, at);
  uint32_t unknown_incompat = h->flags & 0xffff0000u & ~VMDK_FLAG_KNOWN;
  if (unknown_incompat != 0)
    return fail(r, VAB_E_UNSUPPORTED,
                     "'%s': unknown incompatible VMDK flags 0x%08" PRIx32
                     " in the header at offset %" PRIu64,
                     r->path, unknown_incompat, at);
  if (!is_power_of_two(h->grain_size) || h->grain_size > VMDK_MAX_GRAIN_SECTORS)
    return fail(r, VAB_E_FORMAT,
                     "'%s': grain size %" PRIu64 " sectors in the header at "
                     "offset %" PRIu64 " is not a power of two up to %u",
                     r->path, h->grain_size, at, VMDK_MAX_GRAIN_SECTORS);
  if (h->num_gtes_per_gt == 0 || h->num_gtes_per_gt > 512)
    return fail(r, VAB_E_FORMAT,
                     "'%s': %" PRIu32 " entries per grain table in the header "
                     "at offset %" PRIu64 " (1 to 512 are valid)",
                     r->path, h->num_gtes_per_gt, at);
  uint64_t coverage = h->grain_size * h->num_gtes_per_gt;
  if (h->capacity > (UINT64_C(1) << 54) ||
      (h->capacity + coverage - 1) / coverage > VMDK_MAX_GD_ENTRIES)
    return fail(r, VAB_E_FORMAT,
                     "'%s': capacity %" PRIu64 " sectors in the header at "
                     "offset %" PRIu64 " is too large",
                     r->path, h->capacity, at);
  if ((h->flags & VMDK_FLAG_COMPRESSED) &&
      h->compress_algorithm != VMDK_COMPRESS_DEFLATE)
    return fail(r, VAB_E_UNSUPPORTED,
                     "'%s': compression algorithm %u in the header at offset "
                     "%" PRIu64 " is not supported (1, deflate, is)",
                     r->path, h->compress_algorithm, at);
  return 0;
}

/* The header says the GD is at the end: the footer holds the real one. */
static int read_footer(struct vab_reader *r, struct vmdk_header *h) {
  uint8_t sector[VMDK_SECTOR];
  if (r->file_size < 4 * VMDK_SECTOR)
    return fail(r, VAB_E_FORMAT,
                     "'%s': the header defers to a footer, but the file is "
                     "only %" PRIu64 " bytes",
                     r->path, r->file_size);
  uint64_t marker_at = r->file_size - 3 * VMDK_SECTOR;
  if (read_at(r, sector, sizeof sector, marker_at, "footer marker") < 0)
    return -1;
  if (load_le32(sector + 8) != 0 || load_le32(sector + 12) != VMDK_MARKER_FOOTER)
    return fail(r, VAB_E_FORMAT,
                     "'%s': no footer marker at offset %" PRIu64
                     " (truncated stream?)",
                     r->path, marker_at);
  uint64_t footer_at = marker_at + VMDK_SECTOR;
  if (read_at(r, sector, sizeof sector, footer_at, "footer") < 0)
    return -1;
  if (!vmdk_header_decode(sector, h))
    return fail(r, VAB_E_FORMAT,
                     "'%s': footer at offset %" PRIu64 " has no KDMV magic",
                     r->path, footer_at);
  if (h->gd_offset == VMDK_GD_AT_END)
    return fail(r, VAB_E_FORMAT,
                     "'%s': footer at offset %" PRIu64
                     " does not say where the grain directory is",
                     r->path, footer_at);
  return validate_header(r, h, footer_at);
}

static int read_descriptor(struct vab_reader *r, struct vmdk_reader *s) {
  const struct vmdk_header *h = &s->header;
  if (h->descriptor_offset == 0)
    return 0;
  if (h->descriptor_size == 0 ||
      h->descriptor_size > VMDK_MAX_DESCRIPTOR_BYTES / VMDK_SECTOR ||
      h->descriptor_offset > r->file_size / VMDK_SECTOR)
    return fail(r, VAB_E_FORMAT,
                     "'%s': descriptor of %" PRIu64 " sectors at sector %" PRIu64
                     " is out of range",
                     r->path, h->descriptor_size, h->descriptor_offset);
  size_t len = (size_t)(h->descriptor_size * VMDK_SECTOR);
  char *text = malloc(len);
  if (text == NULL)
    return fail(r, VAB_E_NOMEM, "out of memory");
  uint64_t at = h->descriptor_offset * VMDK_SECTOR;
  const char *why = NULL;
  int ret = read_at(r, text, len, at, "descriptor");
  if (ret == 0 && vmdk_descriptor_parse(text, len, &s->descriptor, &why) < 0)
    ret = fail(r, VAB_E_FORMAT,
                    "'%s': bad descriptor at offset %" PRIu64 ": %s", r->path,
                    at, why);
  free(text);
  if (ret == 0)
    s->have_descriptor = true;
  return ret;
}

/* A descriptor file without data of its own (monolithicFlat, vmfs,
 * twoGbMaxExtent*...): its extents are other files.  vab does not follow
 * them (docs/formats.md, Confinement): a clear refusal, never a read. */
static int refuse_descriptor_file(struct vab_reader *r) {
  size_t len = r->file_size < VMDK_MAX_DESCRIPTOR_BYTES
                   ? (size_t)r->file_size
                   : VMDK_MAX_DESCRIPTOR_BYTES;
  char *text = malloc(len ? len : 1);
  if (text == NULL)
    return fail(r, VAB_E_NOMEM, "out of memory");
  struct vmdk_descriptor d;
  const char *why = NULL;
  int ret = read_at(r, text, len, 0, "descriptor");
  if (ret == 0 && vmdk_descriptor_parse(text, len, &d, &why) < 0)
    ret = fail(r, VAB_E_FORMAT, "'%s': bad VMDK descriptor file: %s",
               r->path, why);
  else if (ret == 0)
    ret = fail(r, VAB_E_UNSUPPORTED,
               "'%s' is a VMDK descriptor file (createType \"%s\") whose "
               "data is in %u other file%s (the first: %s extent '%s'); vab "
               "reads only VMDKs that hold their own data (monolithicSparse, "
               "streamOptimized) and does not open files a descriptor names",
               r->path, d.create_type, d.n_extents,
               d.n_extents == 1 ? "" : "s", d.extent_type, d.extent_file);
  free(text);
  return ret;
}

/* An embedded descriptor must describe this one file: a single sparse
 * extent (its name is this file's, and is never opened). */
static int check_descriptor(struct vab_reader *r, const struct vmdk_reader *s) {
  const struct vmdk_descriptor *d = &s->descriptor;
  if (strcasecmp(d->create_type, "monolithicSparse") != 0 &&
      strcasecmp(d->create_type, "streamOptimized") != 0)
    return fail(r, VAB_E_UNSUPPORTED,
                "'%s': VMDK createType \"%s\" is not supported (vab reads "
                "monolithicSparse and streamOptimized)",
                r->path, d->create_type);
  if (d->n_extents != 1 || strcmp(d->extent_type, "SPARSE") != 0)
    return fail(r, VAB_E_UNSUPPORTED,
                "'%s': its descriptor names %u extent%s (the first: %s '%s'); "
                "vab reads only one sparse extent, the file itself",
                r->path, d->n_extents, d->n_extents == 1 ? "" : "s",
                d->extent_type, d->extent_file);
  return 0;
}

/* A delta disk: unallocated grains read from the parent, which must be
 * the disk the child was made from (its CID is the child's parentCID). */
static int open_parent(struct vab_reader *r, const struct vmdk_reader *s) {
  const struct vmdk_descriptor *d = &s->descriptor;
  if (d->parent_hint[0] == '\0')
    return fail(r, VAB_E_FORMAT,
                "'%s' is a delta disk (parentCID %08" PRIx32 ") that does "
                "not name its parent (no parentFileNameHint)",
                r->path, d->parent_cid);
  snprintf(r->info.backing_file, sizeof r->info.backing_file, "%s",
           d->parent_hint);
  snprintf(r->info.backing_format, sizeof r->info.backing_format, "vmdk");
  if (vab_image_open_backing(r, d->parent_hint, "vmdk", "parent",
                             &r->backing) < 0)
    return -1;
  const struct vmdk_reader *ps = r->backing->priv;
  if (!ps->have_descriptor)
    return fail(r, VAB_E_FORMAT,
                "'%s': its parent '%s' has no descriptor, so its CID cannot "
                "be checked against the child's parentCID %08" PRIx32,
                r->path, d->parent_hint, d->parent_cid);
  if (ps->descriptor.cid != d->parent_cid)
    return fail(r, VAB_E_FORMAT,
                "'%s' was made from a parent with CID %08" PRIx32 ", but its "
                "parent '%s' has CID %08" PRIx32 " (the parent changed since; "
                "reading through it would give wrong data)",
                r->path, d->parent_cid, d->parent_hint, ps->descriptor.cid);
  return 0;
}

static int load_gt(struct vab_reader *r, struct vmdk_reader *s, uint64_t index);

/* Work budget.  VMDK never shares a grain table or a grain, so the file
 * holds at most file_size / table size distinct grain tables and one grain
 * per grain's worth of bytes (per sector, compressed).  A grain directory
 * that points at more shares them: 32768 GD entries pointing at one table
 * in a 131 KB file would make every check and read inflate 16 Mi grains. */
static int check_gd_sharing(struct vab_reader *r, const struct vmdk_reader *s) {
  uint64_t tables = 0;
  for (uint32_t i = 0; i < s->n_gdes; i++)
    if (s->gd[i] != 0)
      tables++;
  if (tables <= r->file_size / ((uint64_t)s->gt_entries * 4))
    return 0;
  return fail(r, VAB_E_FORMAT,
              "'%s': the grain directory points at %" PRIu64 " grain tables, "
              "more than the file's %" PRIu64 " bytes can hold: grain tables "
              "are shared (work budget exceeded)",
              r->path, tables, r->file_size);
}

static int check_grain_sharing(struct vab_reader *r,
                               const struct vmdk_reader *s, uint64_t grains) {
  uint64_t smallest = s->compressed ? VMDK_SECTOR : s->grain_bytes;
  if (grains <= r->file_size / smallest)
    return 0;
  return fail(r, VAB_E_FORMAT,
              "'%s': the grain tables map %" PRIu64 " grains, more than the "
              "file's %" PRIu64 " bytes can hold: grains are shared (work "
              "budget exceeded)",
              r->path, grains, r->file_size);
}

int vmdk_reader_open(struct vab_reader *r) {
  struct vmdk_reader *s = calloc(1, sizeof *s);
  if (s == NULL)
    return fail(r, VAB_E_NOMEM, "out of memory");
  r->priv = s;
  s->gt_index = NO_INDEX;
  s->grain_index = NO_INDEX;

  uint8_t sector[VMDK_SECTOR];
  size_t head = r->file_size < VMDK_SECTOR ? (size_t)r->file_size : VMDK_SECTOR;
  if (read_at(r, sector, head, 0, "header") < 0)
    return -1;
  if (vmdk_descriptor_signature(sector, head))
    return refuse_descriptor_file(r);
  if (r->file_size < VMDK_SECTOR)
    return fail(r, VAB_E_FORMAT,
                     "'%s': %" PRIu64 " bytes is too short for a VMDK header",
                     r->path, r->file_size);
  if (!vmdk_header_decode(sector, &s->header))
    return fail(r, VAB_E_FORMAT,
                     "'%s': no VMDK sparse extent magic (KDMV) at offset 0",
                     r->path);
  if (validate_header(r, &s->header, 0) < 0)
    return -1;
  if (s->header.gd_offset == VMDK_GD_AT_END) {
    struct vmdk_header footer;
    if (read_footer(r, &footer) < 0)
      return -1;
    /* The footer has the real gdOffset; the descriptor is the header's. */
    footer.descriptor_offset = s->header.descriptor_offset;
    footer.descriptor_size = s->header.descriptor_size;
    s->header = footer;
  }
  struct vmdk_header *h = &s->header;
  if (read_descriptor(r, s) < 0)
    return -1;
  if (s->have_descriptor && check_descriptor(r, s) < 0)
    return -1;

  s->compressed = (h->flags & VMDK_FLAG_COMPRESSED) != 0;
  s->markers = (h->flags & VMDK_FLAG_MARKERS) != 0;
  s->zeroed_gte = (h->flags & VMDK_FLAG_ZEROED_GTE) != 0;
  s->grain_bytes = h->grain_size * VMDK_SECTOR;
  s->capacity_bytes = h->capacity * VMDK_SECTOR;
  s->gt_entries = h->num_gtes_per_gt;
  uint64_t coverage = h->grain_size * h->num_gtes_per_gt;
  s->n_gdes = (uint32_t)((h->capacity + coverage - 1) / coverage);

  size_t gd_bytes = (size_t)s->n_gdes * 4;
  if (h->gd_offset > r->file_size / VMDK_SECTOR)
    return fail(r, VAB_E_FORMAT,
                     "'%s': grain directory at sector %" PRIu64
                     " lies past the end of the file (%" PRIu64 " bytes)",
                     r->path, h->gd_offset, r->file_size);
  uint8_t *raw = malloc(gd_bytes ? gd_bytes : 1);
  s->gd = calloc(s->n_gdes ? s->n_gdes : 1, sizeof *s->gd);
  s->gt = calloc(s->gt_entries, sizeof *s->gt);
  s->grain = malloc(s->grain_bytes);
  s->inflater = libdeflate_alloc_decompressor();
  if (raw == NULL || s->gd == NULL || s->gt == NULL || s->grain == NULL ||
      s->inflater == NULL) {
    free(raw);
    return fail(r, VAB_E_NOMEM, "out of memory");
  }
  if (read_at(r, raw, gd_bytes, h->gd_offset * VMDK_SECTOR,
              "grain directory") < 0) {
    free(raw);
    return -1;
  }
  for (uint32_t i = 0; i < s->n_gdes; i++)
    s->gd[i] = load_le32(raw + 4 * (size_t)i);
  free(raw);

  struct vab_image_info *info = &r->info;
  snprintf(info->format, sizeof info->format, "vmdk");
  snprintf(info->subformat, sizeof info->subformat, "%s",
           s->have_descriptor ? s->descriptor.create_type
           : s->compressed    ? "streamOptimized"
                              : "monolithicSparse");
  info->virtual_size = s->capacity_bytes;
  info->file_size = r->file_size;
  info->cluster_size = (uint32_t)s->grain_bytes;
  snprintf(info->compression, sizeof info->compression, "%s",
           s->compressed ? "zlib" : "none");

  if (check_gd_sharing(r, s) < 0)
    return -1;
  /* Allocated bytes: one pass over the grain tables, one GT in memory. */
  uint64_t grains = 0;
  for (uint32_t i = 0; i < s->n_gdes; i++) {
    if (s->gd[i] == 0)
      continue;
    if (load_gt(r, s, i) < 0)
      return -1;
    /* Entries past the capacity are never read (the check reports them). */
    uint64_t first = (uint64_t)i * s->gt_entries;
    uint64_t n = s->gt_entries;
    if ((first + n) * h->grain_size > h->capacity)
      n = (h->capacity + h->grain_size - 1) / h->grain_size - first;
    for (uint32_t j = 0; j < n; j++)
      if (s->gt[j] > 1 || (s->gt[j] == 1 && !s->zeroed_gte))
        grains++;
  }
  info->allocated_bytes = grains * s->grain_bytes;
  if (check_grain_sharing(r, s, grains) < 0)
    return -1;
  if (s->have_descriptor && s->descriptor.parent_cid != VMDK_NO_PARENT)
    return open_parent(r, s);
  return 0;
}

void vmdk_reader_close(struct vab_reader *r) {
  struct vmdk_reader *s = r->priv;
  if (s == NULL)
    return;
  free(s->gd);
  free(s->gt);
  free(s->grain);
  free(s->packed);
  libdeflate_free_decompressor(s->inflater);
  free(s);
  r->priv = NULL;
}

static int load_gt(struct vab_reader *r, struct vmdk_reader *s,
                   uint64_t index) {
  if (s->gt_index == index)
    return 0;
  s->gt_index = NO_INDEX;
  uint32_t sector = s->gd[index];
  size_t bytes = (size_t)s->gt_entries * 4;
  uint8_t raw[512 * 4];
  char what[64];
  snprintf(what, sizeof what, "grain table %" PRIu64, index);
  if (read_at(r, raw, bytes, (uint64_t)sector * VMDK_SECTOR, what) < 0)
    return -1;
  for (uint32_t j = 0; j < s->gt_entries; j++)
    s->gt[j] = load_le32(raw + 4 * (size_t)j);
  s->gt_index = index;
  return 0;
}

/* The GTE of a grain: 0 unallocated, 1 zeroed (if the flag allows), else
 * the grain's sector. */
static int grain_entry(struct vab_reader *r, struct vmdk_reader *s,
                       uint64_t grain, uint32_t *entry) {
  uint64_t gd_index = grain / s->gt_entries;
  if (s->gd[gd_index] == 0) {
    *entry = 0;
    return 0;
  }
  if (load_gt(r, s, gd_index) < 0)
    return -1;
  *entry = s->gt[grain % s->gt_entries];
  return 0;
}

static bool entry_is_zero(const struct vmdk_reader *s, uint32_t entry) {
  return entry == 0 || (entry == 1 && s->zeroed_gte);
}

/* Upper bound of a compressed grain: deflate never grows data by more than
 * a few bytes per 16 KiB, so twice a grain is generous (VirtualBox uses the
 * same bound). */
static size_t max_packed(const struct vmdk_reader *s) {
  return (size_t)(2 * s->grain_bytes + VMDK_SECTOR);
}

/* Read the compressed grain at sector entry into s->packed.  Sets *len to
 * the payload size and *end to the byte after its padded record. */
static int read_packed(struct vab_reader *r, struct vmdk_reader *s,
                       uint64_t grain, uint32_t entry, size_t *len,
                       uint64_t *end) {
  uint64_t at = (uint64_t)entry * VMDK_SECTOR;
  size_t cap = max_packed(s);
  if (s->packed == NULL) {
    s->packed = malloc(cap);
    if (s->packed == NULL)
      return fail(r, VAB_E_NOMEM, "out of memory");
    s->packed_cap = cap;
  }
  if (s->markers) {
    uint8_t marker[VMDK_GRAIN_MARKER_SIZE];
    if (read_at(r, marker, sizeof marker, at, "grain marker") < 0)
      return -1;
    uint64_t lba = load_le64(marker);
    uint32_t size = load_le32(marker + 8);
    if (lba != grain * s->header.grain_size)
      return fail(r, VAB_E_FORMAT,
                       "'%s': grain marker at offset %" PRIu64
                       " is for sector %" PRIu64 ", not %" PRIu64,
                       r->path, at, lba, grain * s->header.grain_size);
    if (size == 0 || size > cap)
      return fail(r, VAB_E_FORMAT,
                       "'%s': grain marker at offset %" PRIu64
                       " has an absurd size of %" PRIu32 " bytes",
                       r->path, at, size);
    if (read_at(r, s->packed, size, at + VMDK_GRAIN_MARKER_SIZE,
                "compressed grain") < 0)
      return -1;
    *len = size;
    *end = (at + VMDK_GRAIN_MARKER_SIZE + size + VMDK_SECTOR - 1) /
           VMDK_SECTOR * VMDK_SECTOR;
    return 0;
  }
  /* No marker: the size is unknown; inflate stops at the stream's end. */
  if (at >= r->file_size)
    return fail(r, VAB_E_FORMAT,
                     "'%s': compressed grain at offset %" PRIu64
                     " lies past the end of the file",
                     r->path, at);
  size_t n = r->file_size - at < cap ? (size_t)(r->file_size - at) : cap;
  if (read_at(r, s->packed, n, at, "compressed grain") < 0)
    return -1;
  *len = n;
  *end = at + VMDK_SECTOR;
  return 0;
}

/* Inflate s->packed into s->grain; a short result (qemu's last grain) is
 * zero-padded. */
static int inflate_grain(struct vab_reader *r, struct vmdk_reader *s,
                         size_t len, uint64_t at) {
  size_t in_used = 0, out_len = 0;
  enum libdeflate_result res = libdeflate_zlib_decompress_ex(
      s->inflater, s->packed, len, s->grain, s->grain_bytes, &in_used,
      &out_len);
  if (res == LIBDEFLATE_INSUFFICIENT_SPACE)
    return fail(r, VAB_E_FORMAT,
                     "'%s': compressed grain at offset %" PRIu64
                     " inflates to more than a grain (%" PRIu64 " bytes)",
                     r->path, at, s->grain_bytes);
  if (res != LIBDEFLATE_SUCCESS)
    return fail(r, VAB_E_FORMAT,
                     "'%s': compressed grain at offset %" PRIu64
                     " is not a valid zlib stream",
                     r->path, at);
  memset(s->grain + out_len, 0, s->grain_bytes - out_len);
  return 0;
}

static int load_grain(struct vab_reader *r, struct vmdk_reader *s,
                      uint64_t grain, uint32_t entry) {
  if (s->grain_index == grain)
    return 0;
  s->grain_index = NO_INDEX;
  size_t len;
  uint64_t end;
  if (read_packed(r, s, grain, entry, &len, &end) < 0 ||
      inflate_grain(r, s, len, (uint64_t)entry * VMDK_SECTOR) < 0)
    return -1;
  s->grain_index = grain;
  return 0;
}

static int check_range(struct vab_reader *r, uint64_t offset, uint64_t len) {
  struct vmdk_reader *s = r->priv;
  if (offset > s->capacity_bytes || len > s->capacity_bytes - offset)
    return fail(r, VAB_E_USAGE,
                     "'%s': read of %" PRIu64 " bytes at %" PRIu64
                     " is past the virtual size %" PRIu64,
                     r->path, len, offset, s->capacity_bytes);
  return 0;
}

int vmdk_pread(struct vab_reader *r, void *buf, size_t len, uint64_t offset) {
  struct vmdk_reader *s = r->priv;
  if (check_range(r, offset, len) < 0)
    return -1;
  uint8_t *out = buf;
  while (len > 0) {
    uint64_t grain = offset / s->grain_bytes;
    uint64_t within = offset % s->grain_bytes;
    size_t n = s->grain_bytes - within < len ? (size_t)(s->grain_bytes - within)
                                             : len;
    uint32_t entry;
    if (grain_entry(r, s, grain, &entry) < 0)
      return -1;
    if (entry == 0 && r->backing != NULL) {
      if (vab_image_read_backing(r, out, n, offset) < 0)
        return -1;
    } else if (entry_is_zero(s, entry)) {
      memset(out, 0, n);
    } else if (s->compressed) {
      if (load_grain(r, s, grain, entry) < 0)
        return -1;
      memcpy(out, s->grain + within, n);
    } else {
      if (read_at(r, out, n, (uint64_t)entry * VMDK_SECTOR + within,
                  "grain") < 0)
        return -1;
    }
    out += n;
    offset += n;
    len -= n;
  }
  return 0;
}

int vmdk_block_status(struct vab_reader *r, uint64_t offset, uint64_t len,
                      uint64_t *run, bool *is_zero) {
  struct vmdk_reader *s = r->priv;
  if (check_range(r, offset, len) < 0)
    return -1;
  uint64_t done = 0;
  bool first_zero = false;
  while (done < len) {
    uint64_t pos = offset + done;
    uint64_t grain = pos / s->grain_bytes;
    uint64_t span = s->grain_bytes - pos % s->grain_bytes;
    bool zero;
    if (s->gd[grain / s->gt_entries] == 0) {
      /* A whole grain table's coverage is unallocated. */
      uint64_t coverage = s->grain_bytes * s->gt_entries;
      span = coverage - pos % coverage;
      zero = r->backing == NULL;   /* else the parent's data shows through */
    } else {
      uint32_t entry;
      if (grain_entry(r, s, grain, &entry) < 0)
        return -1;
      zero = entry_is_zero(s, entry) && !(entry == 0 && r->backing != NULL);
    }
    if (done == 0)
      first_zero = zero;
    else if (zero != first_zero)
      break;
    done += span < len - done ? span : len - done;
  }
  *run = done;
  *is_zero = first_zero;
  return 0;
}

/* check() */

struct extent {
  uint32_t start;    /* sector */
  uint32_t sectors;
};

struct checker {
  struct vab_reader *r;
  struct vmdk_reader *s;
  struct vab_check_result *result;
  struct extent *extents;
  size_t n_extents;
  bool extents_full;
};

static void problem(struct checker *c, const char *fmt, ...)
    VAB_PRINTF(2, 3);
static void problem(struct checker *c, const char *fmt, ...) {
  c->result->errors++;
  if (c->result->errors > CHECK_MAX_REPORTS)
    return;
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  vab_log(c->r->ctx, VAB_LOG_WARNING, "'%s': %s", c->r->path, msg);
}

/* A finding whose text already names the file. */
static void finding(struct checker *c, const char *msg) {
  c->result->errors++;
  if (c->result->errors <= CHECK_MAX_REPORTS)
    vab_log(c->r->ctx, VAB_LOG_WARNING, "%s", msg);
}

static void add_extent(struct checker *c, uint64_t start, uint64_t sectors) {
  if (c->extents_full)
    return;
  if (c->n_extents == CHECK_MAX_EXTENTS) {
    c->extents_full = true;
    return;
  }
  if (c->extents == NULL) {
    c->extents = malloc(CHECK_MAX_EXTENTS * sizeof *c->extents);
    if (c->extents == NULL) {
      c->extents_full = true;
      return;
    }
  }
  c->extents[c->n_extents].start = (uint32_t)start;
  c->extents[c->n_extents].sectors = (uint32_t)sectors;
  c->n_extents++;
}

static int cmp_extent(const void *a, const void *b) {
  const struct extent *x = a, *y = b;
  return x->start < y->start ? -1 : x->start > y->start;
}

/* Is [sector, sector+count) inside the file? */
static bool in_file(const struct checker *c, uint64_t sector, uint64_t count) {
  uint64_t end_sectors = c->r->file_size / VMDK_SECTOR;
  return sector <= end_sectors && count <= end_sectors - sector;
}

static void check_grain(struct checker *c, uint64_t grain, uint32_t entry) {
  struct vmdk_reader *s = c->s;
  struct vab_reader *r = c->r;
  uint64_t at = (uint64_t)entry * VMDK_SECTOR;
  c->result->checked++;
  if (entry < s->header.overhead && entry != 0)
    problem(c, "grain %" PRIu64 " at offset %" PRIu64
               " lies inside the metadata (before sector %" PRIu64 ")",
            grain, at, s->header.overhead);
  if (!s->compressed) {
    if (!in_file(c, entry, s->header.grain_size))
      problem(c, "grain %" PRIu64 " at offset %" PRIu64
                 " lies past the end of the file",
              grain, at);
    else
      add_extent(c, entry, s->header.grain_size);
    return;
  }
  size_t len;
  uint64_t end;
  s->quiet = true;
  int ret = read_packed(r, s, grain, entry, &len, &end);
  if (ret == 0)
    ret = inflate_grain(r, s, len, at);
  s->quiet = false;
  if (ret < 0) {
    finding(c, s->quiet_msg);
    return;
  }
  s->grain_index = NO_INDEX;  /* s->grain was overwritten */
  add_extent(c, entry, (end - at) / VMDK_SECTOR);
}

static void check_tables(struct checker *c) {
  struct vmdk_reader *s = c->s;
  const struct vmdk_header *h = &s->header;
  uint64_t gt_sectors = ((uint64_t)s->gt_entries * 4 + VMDK_SECTOR - 1) /
                        VMDK_SECTOR;
  uint64_t gd_sectors = ((uint64_t)s->n_gdes * 4 + VMDK_SECTOR - 1) /
                        VMDK_SECTOR;
  add_extent(c, 0, 1);
  if (h->descriptor_offset != 0)
    add_extent(c, h->descriptor_offset, h->descriptor_size);
  add_extent(c, h->gd_offset, gd_sectors);

  for (uint32_t i = 0; i < s->n_gdes; i++) {
    uint32_t sector = s->gd[i];
    if (sector == 0)
      continue;
    if (!in_file(c, sector, gt_sectors)) {
      problem(c, "grain directory entry %" PRIu32 " points past the end of "
                 "the file (sector %" PRIu32 ")",
              i, sector);
      continue;
    }
    add_extent(c, sector, gt_sectors);
    s->quiet = true;
    int ret = load_gt(c->r, s, i);
    s->quiet = false;
    if (ret < 0) {
      finding(c, s->quiet_msg);
      continue;
    }
    /* check_grain() reuses the reader's buffers, not the GT cache; copy
     * the table so nested reads cannot change it. */
    uint32_t table[512];
    memcpy(table, s->gt, (size_t)s->gt_entries * sizeof *table);
    for (uint32_t j = 0; j < s->gt_entries; j++) {
      uint64_t grain = (uint64_t)i * s->gt_entries + j;
      if (entry_is_zero(s, table[j]))
        continue;
      if (grain * h->grain_size >= h->capacity) {
        problem(c, "grain table %" PRIu32 " maps grain %" PRIu64
                   ", beyond the capacity",
                i, grain);
        continue;
      }
      check_grain(c, grain, table[j]);
    }
    if (vab_check_cancel(c->r->ctx) < 0)
      return;
  }
}

static void check_overlaps(struct checker *c) {
  if (c->extents_full) {
    vab_log(c->r->ctx, VAB_LOG_INFO,
                "'%s': more than %u allocations; overlap check skipped",
                c->r->path, CHECK_MAX_EXTENTS);
    return;
  }
  qsort(c->extents, c->n_extents, sizeof *c->extents, cmp_extent);
  for (size_t i = 1; i < c->n_extents; i++) {
    const struct extent *prev = &c->extents[i - 1], *cur = &c->extents[i];
    if ((uint64_t)prev->start + prev->sectors > cur->start)
      problem(c, "allocations at offsets %" PRIu64 " and %" PRIu64 " overlap",
              (uint64_t)prev->start * VMDK_SECTOR,
              (uint64_t)cur->start * VMDK_SECTOR);
  }
}

/* Walk the marker stream of a streamOptimized file from the first grain:
 * every marker must be a grain or a known metadata marker.  Grain LBAs out
 * of order are valid, but VirtualBox refuses them: a note says so. */
static void check_markers(struct checker *c) {
  struct vmdk_reader *s = c->s;
  struct vab_reader *r = c->r;
  uint64_t at = s->header.overhead * VMDK_SECTOR;
  uint64_t last_lba = 0;
  bool any_grain = false, saw_eos = false, noted_order = false;
  while (at + VMDK_SECTOR <= r->file_size) {
    uint8_t m[16];
    s->quiet = true;
    int ret = read_at(r, m, sizeof m, at, "marker");
    s->quiet = false;
    if (ret < 0) {
      finding(c, s->quiet_msg);
      return;
    }
    uint64_t value = load_le64(m);
    uint32_t size = load_le32(m + 8);
    if (size != 0) {
      if (size > max_packed(s)) {
        problem(c, "grain marker at offset %" PRIu64
                   " has an absurd size of %" PRIu32 " bytes",
                at, size);
        return;
      }
      if (any_grain && value <= last_lba && !noted_order) {
        vab_log(r->ctx, VAB_LOG_INFO,
                    "'%s': grain LBAs are not ascending at offset %" PRIu64
                    " (VirtualBox refuses such streams)",
                    r->path, at);
        noted_order = true;
      }
      any_grain = true;
      last_lba = value;
      at += (VMDK_GRAIN_MARKER_SIZE + size + VMDK_SECTOR - 1) / VMDK_SECTOR *
            VMDK_SECTOR;
      continue;
    }
    uint32_t type = load_le32(m + 12);
    if (type == VMDK_MARKER_EOS) {
      /* Zero padding reads as EOS too; only the real one ends the file. */
      saw_eos = at + VMDK_SECTOR == r->file_size;
      if (saw_eos)
        break;
      at += VMDK_SECTOR;
      continue;
    }
    if (type != VMDK_MARKER_GT && type != VMDK_MARKER_GD &&
        type != VMDK_MARKER_FOOTER && type != VMDK_MARKER_PROGRESS) {
      problem(c, "unknown marker type %" PRIu32 " at offset %" PRIu64, type,
              at);
      return;
    }
    if (value > r->file_size / VMDK_SECTOR) {
      problem(c, "marker at offset %" PRIu64 " claims %" PRIu64
                 " sectors, past the end of the file",
              at, value);
      return;
    }
    at += (1 + value) * VMDK_SECTOR;
  }
  if (!saw_eos && s->header.version >= 3 &&
      strcmp(r->info.subformat, "streamOptimized") == 0)
    vab_log(r->ctx, VAB_LOG_INFO,
                "'%s': no end-of-stream marker (ESXi wants one in an OVA)",
                r->path);
}

int vmdk_check(struct vab_reader *r, struct vab_check_result *result) {
  struct vmdk_reader *s = r->priv;
  struct checker c = {.r = r, .s = s, .result = result};
  memset(result, 0, sizeof *result);

  if (s->have_descriptor) {
    if (s->descriptor.n_extents != 1)
      problem(&c, "descriptor lists %u extents; an embedded descriptor has 1",
              s->descriptor.n_extents);
    else if (s->descriptor.extent_sectors != s->header.capacity)
      problem(&c, "descriptor extent has %" PRIu64
                  " sectors but the header says %" PRIu64,
              s->descriptor.extent_sectors, s->header.capacity);
  }
  if ((s->header.flags & VMDK_FLAG_NEWLINE_TEST) &&
      !s->header.newline_bytes_ok)
    problem(&c, "header check bytes are damaged (text-mode transfer?)");
  if (s->header.overhead > r->file_size / VMDK_SECTOR)
    problem(&c, "header overhead of %" PRIu64 " sectors is past the end of "
                "the file",
            s->header.overhead);

  check_tables(&c);
  if (vab_cancelled(r->ctx)) {
    free(c.extents);
    return -1;
  }
  check_overlaps(&c);
  if (s->markers && s->header.overhead <= r->file_size / VMDK_SECTOR)
    check_markers(&c);
  free(c.extents);
  s->gt_index = NO_INDEX;
  return 0;
}
