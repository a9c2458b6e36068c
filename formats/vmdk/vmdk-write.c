/* VMDK writer: streamOptimized (default) and monolithicSparse.
 *
 * streamOptimized is a pure append stream, so it can go straight into a
 * tar member (OVA): header (gdOffset = GD_AT_END) and descriptor, then for
 * each non-zero grain in ascending order a grain marker with its zlib
 * payload, a GT marker + GT after the grains each GT covers, and at the end
 * GD marker + GD, footer marker + footer (the header with the real
 * gdOffset) and the end-of-stream marker: the last three sectors are
 * footer marker, footer, EOS.  Grain tables with no grain are not written
 * (their GD entry is 0).
 *
 * monolithicSparse (Workstation, VirtualBox) is uncompressed: header,
 * descriptor, redundant GD + GTs, GD + GTs, then grains.  All GTs are
 * preallocated, so the GDs are known at open(); each GT (and its copy) is
 * written in place with pwrite() once the grains it covers are stored, so
 * only one GT is ever in memory.
 */
#include <errno.h>
#include <inttypes.h>
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "formats/compressors.h"
#include "formats/image.h"
#include "formats/vmdk/vmdk.h"
#include "vab/error.h"

#define GRAIN_BYTES (VMDK_GRAIN_SECTORS * VMDK_SECTOR)
#define GT_BYTES (VMDK_GTES_PER_GT * 4u)
#define GT_SECTORS (GT_BYTES / VMDK_SECTOR)
#define GT_COVERAGE_BYTES ((uint64_t)VMDK_GTES_PER_GT * GRAIN_BYTES)
/* The unit of encode()/put(): 16 grains, so that the threads hand over
 * work in 1 MiB pieces rather than one grain at a time.  GT coverage is a
 * multiple of it. */
#define BLOCK_BYTES (16u * GRAIN_BYTES)
/* libdeflate level: measured against qemu-img in docs/benchmarks.md. */
#define DEFAULT_LEVEL 5

enum vmdk_subformat { STREAM_OPTIMIZED, MONOLITHIC_SPARSE };

struct vmdk_writer {
  enum vmdk_subformat subformat;
  char adapter_type[16];
  unsigned hw_version;
  int level;
  bool cid_given;
  uint32_t cid;
  char extent_file[256];   /* "" = the output's own file name */

  struct vmdk_header header;
  uint32_t n_gdes;
  uint32_t *gd;            /* streamOptimized: GT sectors, filled as we go */
  uint32_t gt[VMDK_GTES_PER_GT];
  uint32_t gt_index;       /* the GT gt[] belongs to */
  bool gt_used;            /* gt[] has a grain */
  uint64_t gt_base;        /* monolithicSparse: sector of GT 0 */
  uint64_t rgt_base;       /* and of its redundant copy */
};

static const char *const vmdk_subformats[] = {"streamOptimized",
                                              "monolithicSparse", NULL};
static const char *const vmdk_adapters[] = {"ide", "lsilogic", "buslogic",
                                            "legacyESX", NULL};

const struct vab_option_spec vmdk_options[] = {
  {"subformat", VAB_OPTION_ENUM, vmdk_subformats, 0, 0, "streamOptimized", 0,
   "streamOptimized (OVA, ESXi) or monolithicSparse (Workstation)"},
  {"adapter_type", VAB_OPTION_ENUM, vmdk_adapters, 0, 0, "lsilogic", 0,
   "the disk controller the descriptor names"},
  {"hwversion", VAB_OPTION_INT, NULL, 4, 22, "4", 0,
   "virtual hardware version"},
  {"level", VAB_OPTION_INT, NULL, 1, 12, "5", 0, "deflate level of grains"},
  {"cid", VAB_OPTION_STRING, NULL, 0, 0, NULL, VAB_OPTION_NOT_IN_TEMPLATES,
   "content id, 8 hex digits (default: a hash of the descriptor)"},
  {"extent_file", VAB_OPTION_STRING, NULL, 0, 0, NULL,
   VAB_OPTION_NOT_IN_TEMPLATES, "the extent name the descriptor gives"},
  {NULL, VAB_OPTION_STRING, NULL, 0, 0, NULL, 0, NULL},
};

static bool cid_valid(const char *value, unsigned long *out);
static bool extent_file_valid(const char *value);

int vmdk_check_options(const struct vab_option *options, size_t n,
                       struct vab_option_problem *p) {
  for (size_t i = 0; i < n; i++) {
    unsigned long cid;
    const char *key = options[i].key, *value = options[i].value;
    p->index = i;
    p->code = VAB_E_USAGE;
    if (strcmp(key, "cid") == 0 && !cid_valid(value, &cid)) {
      snprintf(p->message, sizeof p->message,
               "vmdk: cid '%.100s' is not 8 hex digits (ffffffff and "
               "fffffffe are reserved)",
               value);
      return -1;
    }
    if (strcmp(key, "extent_file") == 0 && !extent_file_valid(value)) {
      snprintf(p->message, sizeof p->message,
               "vmdk: extent_file '%.100s' is not a plain file name", value);
      return -1;
    }
  }
  return 0;
}

static struct vmdk_writer *writer_state(struct vab_writer *w) {
  if (w->priv == NULL) {
    struct vmdk_writer *s = calloc(1, sizeof *s);
    if (s == NULL) {
      vab_error(w->ctx, VAB_E_NOMEM, "vmdk: out of memory");
      return NULL;
    }
    s->subformat = STREAM_OPTIMIZED;
    snprintf(s->adapter_type, sizeof s->adapter_type, "lsilogic");
    s->hw_version = 4;
    s->level = DEFAULT_LEVEL;
    w->priv = s;
  }
  return w->priv;
}

static bool parse_uint(const char *text, unsigned base, unsigned long *out) {
  char *end;
  if (text[0] == '\0' || text[0] == '-' || text[0] == '+')
    return false;
  errno = 0;
  *out = strtoul(text, &end, (int)base);
  return errno == 0 && *end == '\0';
}

static bool cid_valid(const char *value, unsigned long *out) {
  return strlen(value) == 8 && parse_uint(value, 16, out) &&
         *out < 0xfffffffeUL;
}

/* The OVA writer converts to a temporary file but ships the disk under its
 * member name: the descriptor must name that one. */
static bool extent_file_valid(const char *value) {
  return value[0] != '\0' &&
         strlen(value) < sizeof ((struct vmdk_writer *)0)->extent_file &&
         strpbrk(value, "/\"\n\r") == NULL;
}

/* The values passed vmdk_options and vmdk_check_options(). */
int vmdk_set_option(struct vab_writer *w, const struct vab_option_value *v) {
  /* vmdk_subformats, in order. */
  static const enum vmdk_subformat subformats[] = {STREAM_OPTIMIZED,
                                                   MONOLITHIC_SPARSE};
  struct vmdk_writer *s = writer_state(w);
  if (s == NULL)
    return -1;
  const char *key = v->spec->key;
  unsigned long n;
  if (strcmp(key, "subformat") == 0) {
    s->subformat = subformats[v->choice];
  } else if (strcmp(key, "adapter_type") == 0) {
    snprintf(s->adapter_type, sizeof s->adapter_type, "%s", v->text);
  } else if (strcmp(key, "hwversion") == 0) {
    s->hw_version = (unsigned)v->number;
  } else if (strcmp(key, "level") == 0) {
    s->level = (int)v->number;
  } else if (strcmp(key, "cid") == 0) {
    cid_valid(v->text, &n);
    s->cid = (uint32_t)n;
    s->cid_given = true;
  } else {
    /* extent_file: the extent name the descriptor holds when it is not
     * the output's own file name: the OVA writer streams the disk into a
     * tar member (no file of that name), and passes the member's name. */
    snprintf(s->extent_file, sizeof s->extent_file, "%s", v->text);
  }
  return 0;
}

/* The default CID: a hash of what the descriptor describes, so the same
 * input size and options give the same bytes.  A stream writer cannot hash
 * the content: the descriptor goes out before the first grain. */
static uint32_t default_cid(const struct vmdk_writer *s) {
  char text[128];
  int n = snprintf(text, sizeof text, "%" PRIu64 "/%d/%s/%u",
                   s->header.capacity, (int)s->subformat, s->adapter_type,
                   s->hw_version);
  uint32_t h = 2166136261u;  /* FNV-1a */
  for (int i = 0; i < n; i++) {
    h ^= (uint8_t)text[i];
    h *= 16777619u;
  }
  if (h >= 0xfffffffeu)  /* reserved values */
    h ^= 0x10u;
  return h;
}

/* The file name the descriptor's extent line names: our own, since the
 * descriptor is embedded. */
static void extent_file_name(const char *path, char *out, size_t cap) {
  const char *base = path ? strrchr(path, '/') : NULL;
  base = base ? base + 1 : path;
  if (base == NULL || base[0] == '\0')
    base = "disk.vmdk";
  size_t i = 0;
  for (; base[i] != '\0' && i + 1 < cap; i++) {
    char c = base[i];
    out[i] = (c == '"' || c == '\n' || c == '\r') ? '_' : c;
  }
  out[i] = '\0';
}

static int sink_write(struct vab_writer *w, const void *buf, size_t len) {
  return w->sink->write(w->sink, buf, len);
}

static int sink_skip(struct vab_writer *w, uint64_t len) {
  if (len == 0)
    return 0;
  if (w->sink->skip != NULL)
    return w->sink->skip(w->sink, len);
  /* A sink without holes: append zeros. */
  static const uint8_t zeros[VMDK_SECTOR * 8];
  while (len > 0) {
    size_t n = len < sizeof zeros ? (size_t)len : sizeof zeros;
    if (w->sink->write(w->sink, zeros, n) < 0)
      return -1;
    len -= n;
  }
  return 0;
}

/* Write the header sector and the descriptor (padded to its sectors). */
static int write_header_and_descriptor(struct vab_writer *w,
                                       struct vmdk_writer *s) {
  uint8_t sector[VMDK_SECTOR];
  vmdk_header_encode(&s->header, sector);
  if (sink_write(w, sector, sizeof sector) < 0)
    return -1;

  struct vmdk_descriptor d = {0};
  d.cid = s->cid;
  snprintf(d.create_type, sizeof d.create_type, "%s",
           s->subformat == STREAM_OPTIMIZED ? "streamOptimized"
                                            : "monolithicSparse");
  snprintf(d.adapter_type, sizeof d.adapter_type, "%s", s->adapter_type);
  snprintf(d.hw_version, sizeof d.hw_version, "%u", s->hw_version);
  d.extent_sectors = s->header.capacity;
  char file[256];
  extent_file_name(s->extent_file[0] ? s->extent_file : w->path, file,
                   sizeof file);

  struct buf text = BUF_INIT;
  size_t room = VMDK_DESCRIPTOR_SECTORS * VMDK_SECTOR;
  if (vmdk_descriptor_format(&text, &d, file) < 0) {
    buf_release(&text);
    return vab_error(w->ctx, VAB_E_NOMEM, "vmdk: out of memory");
  }
  if (text.len >= room) {
    buf_release(&text);
    return vab_error(w->ctx, VAB_E_USAGE,
                     "vmdk: descriptor does not fit in %zu bytes (file name "
                     "too long?)",
                     room);
  }
  int r = sink_write(w, text.data, text.len);
  if (r == 0)
    r = sink_skip(w, room - text.len);
  buf_release(&text);
  return r;
}

/* Write a grain directory whose entries point at consecutive GTs from
 * first_gt (monolithicSparse: all GTs preallocated). */
static int write_prefilled_gd(struct vab_writer *w, struct vmdk_writer *s,
                              uint64_t first_gt) {
  uint64_t gd_sectors = ((uint64_t)s->n_gdes * 4 + VMDK_SECTOR - 1) / VMDK_SECTOR;
  size_t bytes = (size_t)(gd_sectors * VMDK_SECTOR);
  uint8_t *gd = calloc(1, bytes);
  if (gd == NULL)
    return vab_error(w->ctx, VAB_E_NOMEM, "vmdk: out of memory");
  for (uint32_t i = 0; i < s->n_gdes; i++)
    store_le32(gd + 4 * (size_t)i, (uint32_t)(first_gt + (uint64_t)i * GT_SECTORS));
  int r = sink_write(w, gd, bytes);
  free(gd);
  return r;
}

int vmdk_open(struct vab_writer *w) {
  struct vmdk_writer *s = writer_state(w);
  if (s == NULL)
    return -1;
  if (w->virtual_size > VMDK_MAX_CAPACITY_BYTES)
    return vab_error(w->ctx, VAB_E_UNSUPPORTED,
                     "vmdk: virtual size %" PRIu64
                     " bytes is over the 2 TiB a sparse VMDK extent can hold",
                     w->virtual_size);
  /* Capacity is in sectors, the source's size where it is whole sectors
   * (as qemu-img writes it).  The last grain may be partial: it is stored
   * zero-padded to a whole grain, as VirtualBox inflates every grain to
   * exactly grainSize bytes. */
  uint64_t capacity_bytes = vab_writer_sector_size(w, "vmdk");
  uint64_t n_gdes = (capacity_bytes + GT_COVERAGE_BYTES - 1) / GT_COVERAGE_BYTES;
  if (n_gdes == 0)
    n_gdes = 1;
  s->n_gdes = (uint32_t)n_gdes;
  uint64_t gd_sectors = (n_gdes * 4 + VMDK_SECTOR - 1) / VMDK_SECTOR;

  struct vmdk_header *h = &s->header;
  memset(h, 0, sizeof *h);
  h->capacity = capacity_bytes / VMDK_SECTOR;
  h->grain_size = VMDK_GRAIN_SECTORS;
  h->descriptor_offset = 1;
  h->descriptor_size = VMDK_DESCRIPTOR_SECTORS;
  h->num_gtes_per_gt = VMDK_GTES_PER_GT;
  s->cid = s->cid_given ? s->cid : default_cid(s);
  uint64_t metadata_end = 1 + VMDK_DESCRIPTOR_SECTORS;

  if (s->subformat == STREAM_OPTIMIZED) {
    h->version = 3;
    h->flags = VMDK_FLAG_NEWLINE_TEST | VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS;
    h->compress_algorithm = VMDK_COMPRESS_DEFLATE;
    h->gd_offset = VMDK_GD_AT_END;
    s->gd = calloc(n_gdes, sizeof *s->gd);
    if (s->gd == NULL)
      return vab_error(w->ctx, VAB_E_NOMEM, "vmdk: out of memory");
  } else {
    if (w->sink->pwrite == NULL)
      return vab_error(w->ctx, VAB_E_USAGE,
                       "vmdk: subformat monolithicSparse needs a seekable "
                       "output file, not a stream");
    h->version = 1;
    h->flags = VMDK_FLAG_NEWLINE_TEST | VMDK_FLAG_REDUNDANT_GT;
    h->compress_algorithm = VMDK_COMPRESS_NONE;
    h->rgd_offset = metadata_end;
    s->rgt_base = h->rgd_offset + gd_sectors;
    h->gd_offset = s->rgt_base + n_gdes * GT_SECTORS;
    s->gt_base = h->gd_offset + gd_sectors;
    metadata_end = s->gt_base + n_gdes * GT_SECTORS;
  }
  /* Grains start on a grain boundary, as qemu and VirtualBox lay it out. */
  h->overhead = (metadata_end + VMDK_GRAIN_SECTORS - 1) / VMDK_GRAIN_SECTORS *
                VMDK_GRAIN_SECTORS;

  if (write_header_and_descriptor(w, s) < 0)
    return -1;
  if (s->subformat == MONOLITHIC_SPARSE) {
    if (write_prefilled_gd(w, s, s->rgt_base) < 0 ||
        sink_skip(w, n_gdes * GT_BYTES) < 0 ||
        write_prefilled_gd(w, s, s->gt_base) < 0)
      return -1;
  }
  if (sink_skip(w, h->overhead * VMDK_SECTOR - w->sink->offset) < 0)
    return -1;
  w->block_size = BLOCK_BYTES;
  s->gt_index = 0;
  s->gt_used = false;
  return 0;
}

/* Compress one grain into a record at out: marker (LBA in sectors,
 * payload size), zlib payload, zero padding to a sector.  Returns the
 * record's length, or 0 if it does not fit in room bytes. */
static size_t encode_grain(struct libdeflate_compressor *compressor,
                           const uint8_t *data, uint64_t offset, uint8_t *out,
                           size_t room) {
  if (room < VMDK_GRAIN_MARKER_SIZE + VMDK_SECTOR)
    return 0;
  size_t n = libdeflate_zlib_compress(compressor, data, GRAIN_BYTES,
                                      out + VMDK_GRAIN_MARKER_SIZE,
                                      room - VMDK_GRAIN_MARKER_SIZE -
                                          VMDK_SECTOR);
  if (n == 0)
    return 0;
  store_le64(out, offset / VMDK_SECTOR);
  store_le32(out + 8, (uint32_t)n);
  size_t used = VMDK_GRAIN_MARKER_SIZE + n;
  size_t padded = (used + VMDK_SECTOR - 1) / VMDK_SECTOR * VMDK_SECTOR;
  memset(out + used, 0, padded - used);
  return padded;
}

/* streamOptimized: b->out gets one grain record per non-zero grain of the
 * block, in order, ready to append. */
int vmdk_encode(struct vab_writer *w, struct vab_block *b) {
  const struct vmdk_writer *s = w->priv;
  b->out_len = 0;
  if (s->subformat != STREAM_OPTIMIZED)
    return 0;  /* stored as is */
  /* Per-thread (formats/compressors.h): encode() runs on the workers. */
  struct libdeflate_compressor *compressor = vab_thread_deflate(s->level);
  if (compressor == NULL)
    return vab_error(w->ctx, VAB_E_NOMEM, "vmdk: cannot set up a compressor");
  for (uint32_t at = 0; at < b->len; at += GRAIN_BYTES) {
    size_t len = b->len - at < GRAIN_BYTES ? b->len - at : GRAIN_BYTES;
    const uint8_t *grain = b->data + at;
    if (vab_buffer_is_zero(grain, len))
      continue;
    /* The last, short grain is compressed zero-padded, as it reads back. */
    if (len < GRAIN_BYTES &&
        (grain = vab_thread_zero_padded(grain, len, GRAIN_BYTES)) == NULL)
      return vab_error(w->ctx, VAB_E_NOMEM, "out of memory");
    size_t n = encode_grain(compressor, grain, b->offset + at,
                            b->out + b->out_len, b->out_capacity - b->out_len);
    if (n == 0)
      return vab_error(w->ctx, VAB_E_INTERNAL,
                       "vmdk: compressed grain at offset %" PRIu64
                       " does not fit its buffer",
                       b->offset + at);
    b->out_len += n;
  }
  return 0;
}

/* Write out gt[] (if it holds a grain) and start the next GT. */
static int flush_gt(struct vab_writer *w, struct vmdk_writer *s) {
  if (s->gt_used) {
    uint8_t table[GT_BYTES];
    for (unsigned i = 0; i < VMDK_GTES_PER_GT; i++)
      store_le32(table + 4 * i, s->gt[i]);
    if (s->subformat == STREAM_OPTIMIZED) {
      uint8_t marker[VMDK_SECTOR];
      vmdk_marker_encode(marker, GT_SECTORS, VMDK_MARKER_GT);
      if (sink_write(w, marker, sizeof marker) < 0)
        return -1;
      s->gd[s->gt_index] = (uint32_t)(w->sink->offset / VMDK_SECTOR);
      if (sink_write(w, table, sizeof table) < 0)
        return -1;
    } else {
      uint64_t at = (uint64_t)s->gt_index * GT_BYTES;
      if (w->sink->pwrite(w->sink, table, sizeof table,
                          s->gt_base * VMDK_SECTOR + at) < 0 ||
          w->sink->pwrite(w->sink, table, sizeof table,
                          s->rgt_base * VMDK_SECTOR + at) < 0)
        return -1;
    }
  }
  memset(s->gt, 0, sizeof s->gt);
  s->gt_used = false;
  s->gt_index++;
  return 0;
}

/* Record that grain is stored at sector (the file would pass 2 TiB if
 * the sector did not fit a GTE). */
static int set_gte(struct vab_writer *w, struct vmdk_writer *s,
                   uint64_t grain, uint64_t sector) {
  if (sector > UINT32_MAX - VMDK_GRAIN_SECTORS)
    return vab_error(w->ctx, VAB_E_UNSUPPORTED,
                     "vmdk: '%s' would grow past 2 TiB, which grain tables "
                     "cannot address",
                     w->path ? w->path : "output");
  s->gt[grain % VMDK_GTES_PER_GT] = (uint32_t)sector;
  s->gt_used = true;
  return 0;
}

/* streamOptimized: append the records encode() made, noting where each
 * grain lands. */
static int put_records(struct vab_writer *w, struct vmdk_writer *s,
                       const struct vab_block *b) {
  for (size_t pos = 0; pos < b->out_len;) {
    uint64_t lba = load_le64(b->out + pos);
    uint32_t size = load_le32(b->out + pos + 8);
    if (set_gte(w, s, lba / VMDK_GRAIN_SECTORS,
                (w->sink->offset + pos) / VMDK_SECTOR) < 0)
      return -1;
    pos += (VMDK_GRAIN_MARKER_SIZE + size + VMDK_SECTOR - 1) / VMDK_SECTOR *
           VMDK_SECTOR;
  }
  if (sink_write(w, b->out, b->out_len) < 0)
    return -1;
  w->stored_bytes += b->out_len;
  return 0;
}

/* monolithicSparse: append each non-zero grain, the last one padded. */
static int put_grains(struct vab_writer *w, struct vmdk_writer *s,
                      const struct vab_block *b) {
  for (uint32_t at = 0; at < b->len; at += GRAIN_BYTES) {
    size_t len = b->len - at < GRAIN_BYTES ? b->len - at : GRAIN_BYTES;
    if (vab_buffer_is_zero(b->data + at, len))
      continue;
    if (set_gte(w, s, (b->offset + at) / GRAIN_BYTES,
                w->sink->offset / VMDK_SECTOR) < 0 ||
        sink_write(w, b->data + at, len) < 0 ||
        sink_skip(w, GRAIN_BYTES - len) < 0)
      return -1;
    w->stored_bytes += GRAIN_BYTES;
  }
  return 0;
}

int vmdk_put(struct vab_writer *w, const struct vab_block *b) {
  struct vmdk_writer *s = w->priv;
  uint64_t gt_index = b->offset / GT_COVERAGE_BYTES;
  if (b->offset % BLOCK_BYTES != 0 || b->len > BLOCK_BYTES ||
      gt_index < s->gt_index || b->offset >= s->header.capacity * VMDK_SECTOR)
    return vab_error(w->ctx, VAB_E_INTERNAL,
                     "vmdk: block at offset %" PRIu64 " out of order or range",
                     b->offset);
  /* A block never straddles two GTs: GT coverage is a multiple of it. */
  while (gt_index > s->gt_index)
    if (flush_gt(w, s) < 0)
      return -1;
  if (b->is_zero)
    return 0;  /* unallocated grains read as zeros */
  if (s->subformat == MONOLITHIC_SPARSE)
    return put_grains(w, s, b);
  if (b->out_len == 0)
    return vab_error(w->ctx, VAB_E_INTERNAL,
                     "vmdk: block at offset %" PRIu64 " was not encoded",
                     b->offset);
  return put_records(w, s, b);
}

/* streamOptimized tail: GD marker + GD, footer marker + footer, EOS. */
static int write_stream_tail(struct vab_writer *w, struct vmdk_writer *s) {
  uint64_t gd_sectors = ((uint64_t)s->n_gdes * 4 + VMDK_SECTOR - 1) / VMDK_SECTOR;
  uint8_t sector[VMDK_SECTOR];
  vmdk_marker_encode(sector, gd_sectors, VMDK_MARKER_GD);
  if (sink_write(w, sector, sizeof sector) < 0)
    return -1;
  uint64_t gd_offset = w->sink->offset / VMDK_SECTOR;

  size_t bytes = (size_t)(gd_sectors * VMDK_SECTOR);
  uint8_t *gd = calloc(1, bytes);
  if (gd == NULL)
    return vab_error(w->ctx, VAB_E_NOMEM, "vmdk: out of memory");
  for (uint32_t i = 0; i < s->n_gdes; i++)
    store_le32(gd + 4 * (size_t)i, s->gd[i]);
  int r = sink_write(w, gd, bytes);
  free(gd);
  if (r < 0)
    return -1;

  vmdk_marker_encode(sector, 1, VMDK_MARKER_FOOTER);
  if (sink_write(w, sector, sizeof sector) < 0)
    return -1;
  struct vmdk_header footer = s->header;
  footer.gd_offset = gd_offset;
  vmdk_header_encode(&footer, sector);
  if (sink_write(w, sector, sizeof sector) < 0)
    return -1;
  vmdk_marker_encode(sector, 0, VMDK_MARKER_EOS);
  return sink_write(w, sector, sizeof sector);
}

int vmdk_close(struct vab_writer *w) {
  struct vmdk_writer *s = w->priv;
  /* Flush the GT being filled and any later ones (all empty). */
  if (s->gt_index < s->n_gdes && flush_gt(w, s) < 0)
    return -1;
  if (s->subformat == STREAM_OPTIMIZED)
    return write_stream_tail(w, s);
  return 0;
}

void vmdk_free(struct vab_writer *w) {
  struct vmdk_writer *s = w->priv;
  /* The core's own thread may have encoded too, and it lives on. */
  vab_thread_compressors_release();
  if (s != NULL) {
    free(s->gd);
    free(s);
    w->priv = NULL;
  }
}
