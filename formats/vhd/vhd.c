/* Fixed VHD (Virtual PC / Hyper-V / Azure): the raw disk followed by one
 * 512-byte big-endian footer.  Facts: docs/formats.md (VHD).
 *
 * The writer keeps the virtual size (rounded up to a whole sector) and
 * writes the force-size geometry 65535/16/255, which makes qemu (and
 * Hyper-V, which always does) take the size from current_size instead of
 * from CHS, as qemu-img's force_size does.  Azure wants a whole number of
 * MiB; a note says when the size is not.  The output is an append stream.
 *
 * Deterministic output: the timestamp is 0 (2000-01-01) and the unique id
 * is derived from a hash of the disk's content and size.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/endian.h"
#include "common/io.h"
#include "formats/image.h"
#include "formats/vhd/vhd.h"
#include "vab/error.h"
#include "vab/progress.h"

#define MIB (UINT64_C(1) << 20)
#define BLOCK_BYTES (1u << 20)

/* Footer byte offsets. */
enum {
  F_COOKIE = 0,
  F_FEATURES = 8,
  F_VERSION = 12,
  F_DATA_OFFSET = 16,
  F_TIMESTAMP = 24,
  F_CREATOR_APP = 28,
  F_CREATOR_VERSION = 32,
  F_CREATOR_OS = 36,
  F_ORIGINAL_SIZE = 40,
  F_CURRENT_SIZE = 48,
  F_GEOMETRY = 56,
  F_DISK_TYPE = 60,
  F_CHECKSUM = 64,
  F_UNIQUE_ID = 68,
  F_SAVED_STATE = 84,
};

uint32_t vhd_checksum(const uint8_t footer[VHD_FOOTER_SIZE]) {
  uint32_t sum = 0;
  for (size_t i = 0; i < VHD_FOOTER_SIZE; i++)
    if (i < F_CHECKSUM || i >= F_CHECKSUM + 4)
      sum += footer[i];
  return ~sum;
}

void vhd_footer_encode(const struct vhd_footer *f,
                       uint8_t out[VHD_FOOTER_SIZE]) {
  memset(out, 0, VHD_FOOTER_SIZE);
  memcpy(out + F_COOKIE, "conectix", 8);
  store_be32(out + F_FEATURES, 0x2);  /* the reserved bit, always set */
  store_be32(out + F_VERSION, 0x00010000);
  store_be64(out + F_DATA_OFFSET, f->disk_type == VHD_TYPE_FIXED
                                    ? UINT64_MAX
                                    : f->data_offset);
  store_be32(out + F_TIMESTAMP, f->timestamp);
  memcpy(out + F_CREATOR_APP, f->creator_app, 4);
  store_be32(out + F_CREATOR_VERSION, f->creator_version);
  memcpy(out + F_CREATOR_OS, "Wi2k", 4);
  store_be64(out + F_ORIGINAL_SIZE, f->original_size);
  store_be64(out + F_CURRENT_SIZE, f->current_size);
  store_be16(out + F_GEOMETRY, f->cylinders);
  out[F_GEOMETRY + 2] = f->heads;
  out[F_GEOMETRY + 3] = f->sectors_per_track;
  store_be32(out + F_DISK_TYPE, f->disk_type);
  memcpy(out + F_UNIQUE_ID, f->unique_id, 16);
  store_be32(out + F_CHECKSUM, vhd_checksum(out));
}

bool vhd_footer_decode(const uint8_t in[VHD_FOOTER_SIZE],
                       struct vhd_footer *f) {
  memset(f, 0, sizeof *f);
  if (memcmp(in + F_COOKIE, "conectix", 8) != 0)
    return false;
  f->data_offset = load_be64(in + F_DATA_OFFSET);
  f->timestamp = load_be32(in + F_TIMESTAMP);
  memcpy(f->creator_app, in + F_CREATOR_APP, 4);
  f->creator_version = load_be32(in + F_CREATOR_VERSION);
  f->original_size = load_be64(in + F_ORIGINAL_SIZE);
  f->current_size = load_be64(in + F_CURRENT_SIZE);
  f->cylinders = load_be16(in + F_GEOMETRY);
  f->heads = in[F_GEOMETRY + 2];
  f->sectors_per_track = in[F_GEOMETRY + 3];
  f->disk_type = load_be32(in + F_DISK_TYPE);
  f->checksum = load_be32(in + F_CHECKSUM);
  memcpy(f->unique_id, in + F_UNIQUE_ID, 16);
  return true;
}

/* The size a reader should use, as qemu's vpc driver decides it: CHS x 512
 * unless the creator is one known to use current_size (Hyper-V "win ",
 * qemu-img's "qem2", Disk2vhd "d2v ", XenConverter "CTXS", XenServer
 * "tap\0") or the geometry is the maximum 65535/16/255, which means "use
 * current_size" (force_size; vab writes it). */
uint64_t vhd_footer_virtual_size(const struct vhd_footer *f) {
  static const char current_size_creators[][4] = {
      {'w', 'i', 'n', ' '}, {'q', 'e', 'm', '2'}, {'d', '2', 'v', ' '},
      {'C', 'T', 'X', 'S'}, {'t', 'a', 'p', '\0'}};
  uint64_t chs = (uint64_t)f->cylinders * f->heads * f->sectors_per_track;
  bool uses_chs = chs != UINT64_C(65535) * 16 * 255;
  for (size_t i = 0; uses_chs && i < sizeof current_size_creators /
                                         sizeof current_size_creators[0];
       i++)
    if (memcmp(f->creator_app, current_size_creators[i], 4) == 0)
      uses_chs = false;
  return uses_chs ? chs * 512 : f->current_size;
}

/* Writer. */

struct vhd_writer {
  uint64_t size;        /* virtual size rounded up to a sector */
  uint64_t hash[2];     /* content hash for the unique id */
};

static const char *const vhd_subformats[] = {"fixed", NULL};

/* vab writes fixed VHDs only (what Azure takes); vhdx is the dynamic one. */
static const struct vab_option_spec vhd_options[] = {
  {"subformat", VAB_OPTION_ENUM, vhd_subformats, 0, 0, "fixed", 0,
   "fixed only (use vhdx for a dynamic disk)"},
  {NULL, VAB_OPTION_STRING, NULL, 0, 0, NULL, 0, NULL},
};

static struct vhd_writer *writer_state(struct vab_writer *w) {
  if (w->priv == NULL) {
    w->priv = calloc(1, sizeof(struct vhd_writer));
    if (w->priv == NULL)
      vab_error(w->ctx, VAB_E_NOMEM, "vhd: out of memory");
  }
  return w->priv;
}

/* The one option, subformat, has the one value vab writes. */
static int vhd_set_option(struct vab_writer *w,
                          const struct vab_option_value *v) {
  (void)v;
  return writer_state(w) == NULL ? -1 : 0;
}

static int vhd_open(struct vab_writer *w) {
  struct vhd_writer *s = writer_state(w);
  if (s == NULL)
    return -1;
  if (w->virtual_size > VHD_MAX_BYTES)
    return vab_error(w->ctx, VAB_E_UNSUPPORTED,
                     "vhd: virtual size %" PRIu64
                     " bytes is over Azure's 32 TiB VHD limit",
                     w->virtual_size);
  s->size = vab_writer_sector_size(w, "vhd");
  if (s->size % MIB != 0)
    vab_log(w->ctx, VAB_LOG_INFO,
            "vhd: %" PRIu64 " bytes is not a whole number of MiB; Azure "
            "refuses such VHDs (give the disk a size in whole MiB)",
            s->size);
  s->hash[0] = 0x9e3779b97f4a7c15u;
  s->hash[1] = s->size;
  w->block_size = BLOCK_BYTES;
  return 0;
}

/* A fast non-cryptographic mix over the data: the unique id only needs to
 * change with the content. */
static void hash_block(uint64_t h[2], uint64_t offset, const uint8_t *data,
                       size_t len) {
  uint64_t a = h[0] ^ offset, b = h[1];
  size_t i = 0;
  for (; i + 16 <= len; i += 16) {
    uint64_t x, y;
    memcpy(&x, data + i, 8);
    memcpy(&y, data + i + 8, 8);
    a = (a ^ x) * 0xff51afd7ed558ccdu;
    b = (b ^ y) * 0xc4ceb9fe1a85ec53u;
    a ^= a >> 29;
    b ^= b >> 31;
  }
  for (; i < len; i++)
    a = (a ^ data[i]) * 0x100000001b3u;
  h[0] = a ^ (b >> 7);
  h[1] = b ^ (a << 3);
}

static int vhd_put(struct vab_writer *w, const struct vab_block *b) {
  struct vhd_writer *s = w->priv;
  if (b->offset != w->sink->offset)
    return vab_error(w->ctx, VAB_E_INTERNAL,
                     "vhd: block at offset %" PRIu64 " out of order",
                     b->offset);
  if (b->is_zero)
    return w->sink->skip ? w->sink->skip(w->sink, b->len)
                         : vab_sink_skip(w->sink, b->len);
  hash_block(s->hash, b->offset, b->data, b->len);
  if (w->sink->write(w->sink, b->data, b->len) < 0)
    return -1;
  w->stored_bytes += b->len;
  return 0;
}

static int vhd_close(struct vab_writer *w) {
  struct vhd_writer *s = w->priv;
  if (w->sink->offset < s->size &&
      vab_sink_skip(w->sink, s->size - w->sink->offset) < 0)
    return -1;
  struct vhd_footer f = {0};
  f.disk_type = VHD_TYPE_FIXED;
  memcpy(f.creator_app, "vab ", 4);
  f.creator_version = 0x00000001;  /* vab 0.1 as major.minor */
  f.original_size = s->size;
  f.current_size = s->size;
  f.cylinders = 65535;
  f.heads = 16;
  f.sectors_per_track = 255;
  for (int i = 0; i < 8; i++) {
    f.unique_id[i] = (uint8_t)(s->hash[0] >> (8 * i));
    f.unique_id[8 + i] = (uint8_t)(s->hash[1] >> (8 * i));
  }
  f.unique_id[6] = (uint8_t)((f.unique_id[6] & 0x0f) | 0x40);  /* v4 */
  f.unique_id[8] = (uint8_t)((f.unique_id[8] & 0x3f) | 0x80);  /* RFC 4122 */
  uint8_t footer[VHD_FOOTER_SIZE];
  vhd_footer_encode(&f, footer);
  return w->sink->write(w->sink, footer, sizeof footer);
}

static void vhd_free(struct vab_writer *w) {
  free(w->priv);
  w->priv = NULL;
}

/* Reader (fixed VHDs). */

struct vhd_reader {
  struct vhd_footer footer;
  bool checksum_ok;
};

static bool vhd_probe(const uint8_t *head, size_t len, uint64_t file_size) {
  /* Only dynamic VHDs carry a footer copy at offset 0; a fixed one is
   * found by probe_tail. */
  (void)file_size;
  return len >= 8 && memcmp(head, "conectix", 8) == 0;
}

/* A fixed VHD is raw data and a footer.  Only a footer that is wholly
 * consistent counts (fixed type, right checksum, describing exactly the
 * bytes before it), so a raw disk is not taken for a VHD by chance. */
static bool vhd_probe_tail(const uint8_t *tail, size_t len,
                           uint64_t file_size) {
  struct vhd_footer f;
  if (len != VHD_FOOTER_SIZE || !vhd_footer_decode(tail, &f))
    return false;
  return f.disk_type == VHD_TYPE_FIXED && vhd_checksum(tail) == f.checksum &&
         f.current_size == file_size - VHD_FOOTER_SIZE &&
         vhd_footer_virtual_size(&f) <= f.current_size;
}

static int vhd_reader_open(struct vab_reader *r) {
  struct vhd_reader *s = calloc(1, sizeof *s);
  if (s == NULL)
    return vab_error(r->ctx, VAB_E_NOMEM, "out of memory");
  r->priv = s;
  if (r->file_size < VHD_FOOTER_SIZE)
    return vab_error(r->ctx, VAB_E_FORMAT,
                     "'%s': %" PRIu64 " bytes is too short for a VHD footer",
                     r->path, r->file_size);
  uint8_t raw[VHD_FOOTER_SIZE];
  uint64_t at = r->file_size - VHD_FOOTER_SIZE;
  ssize_t n = pread(r->fd, raw, sizeof raw, (off_t)at);
  if (n < 0)
    return vab_error_errno(r->ctx, VAB_E_IO, errno,
                           "'%s': cannot read the footer at offset %" PRIu64,
                           r->path, at);
  if (n != (ssize_t)sizeof raw || !vhd_footer_decode(raw, &s->footer))
    return vab_error(r->ctx, VAB_E_FORMAT,
                     "'%s': no VHD footer (conectix) at offset %" PRIu64,
                     r->path, at);
  s->checksum_ok = vhd_checksum(raw) == s->footer.checksum;
  if (s->footer.disk_type != VHD_TYPE_FIXED)
    return vab_error(r->ctx, VAB_E_UNSUPPORTED,
                     "'%s': VHD disk type %" PRIu32
                     " is not supported (vab reads fixed VHDs, type 2)",
                     r->path, s->footer.disk_type);
  uint64_t size = vhd_footer_virtual_size(&s->footer);
  if (size > at)
    return vab_error(r->ctx, VAB_E_FORMAT,
                     "'%s': footer at offset %" PRIu64 " claims %" PRIu64
                     " bytes of disk, more than the file holds",
                     r->path, at, size);
  struct vab_image_info *info = &r->info;
  snprintf(info->subformat, sizeof info->subformat, "fixed");
  info->virtual_size = size;
  info->allocated_bytes = size;
  snprintf(info->compression, sizeof info->compression, "none");
  return 0;
}

static int vhd_pread(struct vab_reader *r, void *buf, size_t len,
                     uint64_t offset) {
  ssize_t n = pread_full(r->fd, buf, len, offset);
  if (n < 0)
    return vab_error_errno(r->ctx, VAB_E_IO, errno,
                           "'%s': cannot read at offset %" PRIu64, r->path,
                           offset);
  if ((size_t)n != len)
    return vab_error(r->ctx, VAB_E_FORMAT, "'%s': file ends at offset %" PRIu64,
                     r->path, offset + (uint64_t)n);
  return 0;
}

/* Holes in the file read as zeros: ask the file system where they are. */
static int vhd_block_status(struct vab_reader *r, uint64_t offset,
                            uint64_t len, uint64_t *run, bool *is_zero) {
  off_t data = lseek(r->fd, (off_t)offset, SEEK_DATA);
  if (data < 0 && errno == ENXIO) {  /* only a hole from here on */
    *run = len;
    *is_zero = true;
    return 0;
  }
  if (data < 0) {  /* no SEEK_DATA here: call it all data */
    *run = len;
    *is_zero = false;
    return 0;
  }
  if ((uint64_t)data > offset) {
    uint64_t hole = (uint64_t)data - offset;
    *run = hole < len ? hole : len;
    *is_zero = true;
    return 0;
  }
  off_t hole = lseek(r->fd, (off_t)offset, SEEK_HOLE);
  uint64_t n = hole > (off_t)offset ? (uint64_t)hole - offset : len;
  *run = n < len ? n : len;
  *is_zero = false;
  return 0;
}

static int vhd_check(struct vab_reader *r, struct vab_check_result *result) {
  struct vhd_reader *s = r->priv;
  memset(result, 0, sizeof *result);
  result->checked = 1;
  if (!s->checksum_ok) {
    result->errors++;
    vab_log(r->ctx, VAB_LOG_WARNING, "'%s': footer checksum is wrong", r->path);
  }
  if (s->footer.data_offset != UINT64_MAX) {
    result->errors++;
    vab_log(r->ctx, VAB_LOG_WARNING,
                "'%s': fixed VHD footer has data offset %" PRIu64
                " instead of all ones",
                r->path, s->footer.data_offset);
  }
  uint64_t data_bytes = r->file_size - VHD_FOOTER_SIZE;
  if (s->footer.current_size != data_bytes) {
    result->errors++;
    vab_log(r->ctx, VAB_LOG_WARNING,
                "'%s': footer current size %" PRIu64 " differs from the %" PRIu64
                " data bytes before it",
                r->path, s->footer.current_size, data_bytes);
  }
  if (s->footer.current_size % MIB != 0)
    vab_log(r->ctx, VAB_LOG_INFO,
                "'%s': size is not a whole number of MiB (Azure refuses it)",
                r->path);
  return 0;
}

static void vhd_reader_close(struct vab_reader *r) {
  free(r->priv);
  r->priv = NULL;
}

const struct vab_format vab_format_vhd = {
    .name = "vhd",
    .extension = "vhd",
    .description = "Microsoft VHD, fixed (Azure, Hyper-V)",
    .caps = VAB_FMT_READ | VAB_FMT_WRITE | VAB_FMT_SPARSE | VAB_FMT_STREAM,
    .options = vhd_options,
    .set_option = vhd_set_option,
    .open = vhd_open,
    .put = vhd_put,
    .close = vhd_close,
    .free = vhd_free,
    .probe = vhd_probe,
    .probe_tail = vhd_probe_tail,
    .reader_open = vhd_reader_open,
    .block_status = vhd_block_status,
    .pread = vhd_pread,
    .check = vhd_check,
    .reader_close = vhd_reader_close,
};
