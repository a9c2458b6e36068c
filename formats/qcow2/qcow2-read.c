/* qcow2 reader (versions 2 and 3); the metadata check is qcow2-check.c.
 *
 * Every offset read from the file is checked against the file size and
 * the cluster alignment before use, and every allocation is bounded by
 * the format's limits (L1 <= 32 MiB, refcount table <= 8 MiB) or by the
 * file size, so a hostile image gets an error naming the file and the
 * offset, never a crash or an unbounded allocation.
 */
#include <errno.h>
#include <stdarg.h>
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "common/io.h"
#include "vab/format.h"
#include "vab/progress.h"
#include "formats/image.h"
#include "formats/qcow2/qcow2.h"
#include "formats/qcow2/qcow2-reader.h"

/* Largest virtual size accepted: keeps every offset computation far from
 * 64-bit overflow. */
#define MAX_VIRTUAL_SIZE (1ull << 56)

bool qcow2_probe(const uint8_t *head, size_t len, uint64_t file_size) {
  (void)file_size;
  return len >= 8 && load_be32(head) == QCOW2_MAGIC;
}

/* Record an error, or during check() keep it as a finding instead, so
 * that the check leaves the caller's diagnostics alone. */
static int fail(struct vab_reader *r, enum vab_code code, int errnum,
                const char *fmt, ...) VAB_PRINTF(4, 5);
static int fail(struct vab_reader *r, enum vab_code code, int errnum,
                const char *fmt, ...) {
  struct qcow2_reader *q = r->priv;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (q != NULL && q->quiet) {
    snprintf(q->quiet_msg, sizeof q->quiet_msg, "%s", msg);
    return -1;
  }
  if (errnum != 0)
    return vab_error_errno(r->ctx, code, errnum, "%s", msg);
  return vab_error(r->ctx, code, "%s", msg);
}

int qcow2_corrupt(struct vab_reader *r, uint64_t offset, const char *what) {
  return fail(r, VAB_E_FORMAT, 0, "'%s': %s (offset %llu)", r->path, what,
              (unsigned long long)offset);
}

/* Read exactly len bytes at offset, which must lie inside the file. */
int qcow2_read_exact(struct vab_reader *r, void *buf, size_t len,
                     uint64_t offset, const char *what) {
  if (offset > r->file_size || len > r->file_size - offset) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s is past the end of the file", what);
    return qcow2_corrupt(r, offset, msg);
  }
  ssize_t n = pread_full(r->fd, buf, len, offset);
  if (n < 0)
    return fail(r, VAB_E_IO, errno, "cannot read '%s' at offset %llu",
                r->path, (unsigned long long)offset);
  if ((size_t)n != len)
    return qcow2_corrupt(r, offset + (uint64_t)n, "the file ends early");
  return 0;
}

static int parse_extensions(struct vab_reader *r, const uint8_t *cluster0,
                            size_t start, size_t limit) {
  size_t pos = start;
  while (pos + 8 <= limit) {
    uint32_t type = load_be32(cluster0 + pos);
    uint32_t len = load_be32(cluster0 + pos + 4);
    if (type == QCOW2_EXT_END)
      return 0;
    if (len > limit - pos - 8)
      return qcow2_corrupt(r, pos,
                           "header extension runs past the header cluster");
    const uint8_t *data = cluster0 + pos + 8;
    if (type == QCOW2_EXT_BACKING_FORMAT) {
      if (len == 0 || len >= sizeof r->info.backing_format ||
          memchr(data, '\0', len) != NULL)
        return qcow2_corrupt(r, pos, "bad backing format header extension");
      memcpy(r->info.backing_format, data, len);
      r->info.backing_format[len] = '\0';
    } else if (type == QCOW2_EXT_DATA_FILE) {
      return vab_error(r->ctx, VAB_E_UNSUPPORTED,
                       "'%s': qcow2 images with an external data file are "
                       "not supported",
                       r->path);
    }
    pos += 8 + (((size_t)len + 7) & ~(size_t)7);
  }
  return 0;
}

static int check_features(struct vab_reader *r, uint64_t incompatible,
                          unsigned compression_type) {
  if (incompatible & QCOW2_INCOMPAT_CORRUPT)
    return vab_error(r->ctx, VAB_E_FORMAT,
                     "'%s': the qcow2 image is marked corrupt", r->path);
  if (incompatible & QCOW2_INCOMPAT_DIRTY)
    return vab_error(r->ctx, VAB_E_UNSUPPORTED,
                     "'%s': the qcow2 image is dirty (its refcounts may be "
                     "stale); repair it with 'qemu-img check -r all'",
                     r->path);
  if (incompatible & QCOW2_INCOMPAT_DATA_FILE)
    return vab_error(r->ctx, VAB_E_UNSUPPORTED,
                     "'%s': qcow2 images with an external data file are "
                     "not supported",
                     r->path);
  if (incompatible & QCOW2_INCOMPAT_EXTL2)
    return vab_error(r->ctx, VAB_E_UNSUPPORTED,
                     "'%s': qcow2 images with extended L2 entries are not "
                     "supported",
                     r->path);
  uint64_t known = QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT |
                   QCOW2_INCOMPAT_DATA_FILE | QCOW2_INCOMPAT_COMPRESSION |
                   QCOW2_INCOMPAT_EXTL2;
  if (incompatible & ~known)
    return vab_error(r->ctx, VAB_E_UNSUPPORTED,
                     "'%s': unknown qcow2 incompatible features 0x%llx",
                     r->path, (unsigned long long)(incompatible & ~known));
  if (compression_type > QCOW2_COMPRESSION_ZSTD)
    return vab_error(r->ctx, VAB_E_UNSUPPORTED,
                     "'%s': unknown qcow2 compression type %u", r->path,
                     compression_type);
  bool bit = (incompatible & QCOW2_INCOMPAT_COMPRESSION) != 0;
  if (bit != (compression_type != QCOW2_COMPRESSION_DEFLATE))
    return qcow2_corrupt(r, 104,
                   "compression type and its incompatible feature bit "
                   "disagree");
  return 0;
}

static int open_backing(struct vab_reader *r, const uint8_t *cluster0,
                        uint64_t offset, uint32_t len) {
  if (len == 0 || len > QCOW2_MAX_BACKING_NAME)
    return qcow2_corrupt(r, 16, "bad backing file name length");
  if (offset > r->file_size || len > r->file_size - offset)
    return qcow2_corrupt(r, 8,
                         "backing file name is past the end of the file");
  char name[QCOW2_MAX_BACKING_NAME + 1];
  if (offset + len <= 4096 && offset + len <= r->file_size) {
    memcpy(name, cluster0 + offset, len);
  } else if (qcow2_read_exact(r, name, len, offset, "backing file name") < 0) {
    return -1;
  }
  name[len] = '\0';
  if (memchr(name, '\0', len) != NULL)
    return qcow2_corrupt(r, offset, "backing file name contains a NUL byte");
  snprintf(r->info.backing_file, sizeof r->info.backing_file, "%s", name);
  const char *fmt = r->info.backing_format[0] ? r->info.backing_format : NULL;
  return vab_image_open_backing(r, name, fmt, "backing file", &r->backing);
}

uint64_t qcow2_work_budget(const struct vab_reader *r) {
  uint64_t budget = r->file_size * QCOW2_WORK_BUDGET_FACTOR;
  return budget > QCOW2_WORK_BUDGET_MIN ? budget : QCOW2_WORK_BUDGET_MIN;
}

/* Distinct L2 tables inside the file number at most its clusters, so an
 * L1 table that points at more shares them: 100,000 L1 entries pointing at
 * one L2 table would make a 10 MiB file map 50 TB of guest clusters, each
 * walked by the check and by every read.  Images qemu and vab write never
 * share an L2 table within one L1 table. */
static int check_l1_sharing(struct vab_reader *r, const struct qcow2_reader *q) {
  uint64_t tables = 0;
  for (uint64_t i = 0; i < q->l1_size; i++)
    if ((q->l1[i] & QCOW2_L1E_OFFSET_MASK) != 0)
      tables++;
  uint64_t clusters = r->file_size >> q->cluster_bits;
  if (tables <= clusters)
    return 0;
  char msg[192];
  snprintf(msg, sizeof msg, "the L1 table points at %llu L2 tables, more "
           "than the file's %llu clusters can hold: L2 tables are shared "
           "(work budget exceeded)", (unsigned long long)tables,
           (unsigned long long)clusters);
  return qcow2_corrupt(r, q->l1_offset, msg);
}

void qcow2_key_set_init(struct qcow2_key_set *set, uint64_t file_size) {
  /* Distinct keys (cluster offsets, compressed descriptors) start at
   * distinct bytes of the file, and real ones are at least a sector apart:
   * size the set by that. */
  set->n_slots = 1024;
  while (set->n_slots < (1u << 20) &&
         set->n_slots < 2 * (file_size / QCOW2_SECTOR))
    set->n_slots *= 2;
  set->slots = calloc(set->n_slots, sizeof *set->slots);
  set->used = 0;
}

enum qcow2_key_set_added qcow2_key_set_add(struct qcow2_key_set *set,
                                           uint64_t key) {
  if (set->slots == NULL || (set->used + 1) * 4 > set->n_slots * 3)
    return QCOW2_KEY_FULL;
  uint64_t mask = set->n_slots - 1;
  uint64_t i = (key * 0x9e3779b97f4a7c15ull) >> 20;
  for (i &= mask;; i = (i + 1) & mask) {
    if (set->slots[i] == key)
      return QCOW2_KEY_SEEN;
    if (set->slots[i] == 0) {
      set->slots[i] = key;
      set->used++;
      return QCOW2_KEY_NEW;
    }
  }
}

/* Has the all-zero cluster at this host offset been read before?  Distinct
 * ones are bounded by the file's size; past the set's cap, every one
 * counts as seen. */
static bool zero_seen_before(struct qcow2_reader *q, uint64_t file_size,
                             uint64_t host) {
  if (q->zero_seen.n_slots == 0)
    qcow2_key_set_init(&q->zero_seen, file_size);
  /* 0 marks an empty slot. */
  return qcow2_key_set_add(&q->zero_seen, host + 1) != QCOW2_KEY_NEW;
}

/* Shared data clusters are fine (dedup), but all-zero ones read again and
 * again cost far more than the sparse output they give; budget them. */
static int spend_zero_budget(struct vab_reader *r, uint64_t host,
                             uint64_t bytes) {
  struct qcow2_reader *q = r->priv;
  if (!zero_seen_before(q, r->file_size, host))
    return 0;
  if (bytes <= q->zero_budget) {
    q->zero_budget -= bytes;
    return 0;
  }
  return vab_error(r->ctx, VAB_E_FORMAT,
                   "'%s': more than %llu bytes of zeros reread from shared "
                   "clusters of a %llu-byte file (work budget exceeded)",
                   r->path, (unsigned long long)qcow2_work_budget(r),
                   (unsigned long long)r->file_size);
}

int qcow2_reader_open(struct vab_reader *r) {
  uint8_t h[4096];
  memset(h, 0, sizeof h);
  size_t head_len = r->file_size < sizeof h ? (size_t)r->file_size : sizeof h;
  if (head_len < QCOW2_V2_HEADER_LENGTH)
    return qcow2_corrupt(r, 0, "file too small for a qcow2 header");
  if (qcow2_read_exact(r, h, head_len, 0, "header") < 0)
    return -1;
  if (load_be32(h) != QCOW2_MAGIC)
    return qcow2_corrupt(r, 0, "no qcow2 magic");
  struct qcow2_reader *q = calloc(1, sizeof *q);
  if (q == NULL)
    return vab_error(r->ctx, VAB_E_NOMEM, "out of memory");
  r->priv = q;
  q->version = load_be32(h + 4);
  if (q->version != 2 && q->version != 3)
    return vab_error(r->ctx, VAB_E_UNSUPPORTED,
                     "'%s': qcow2 version %u is not supported", r->path,
                     q->version);
  uint64_t backing_offset = load_be64(h + 8);
  uint32_t backing_len = load_be32(h + 16);
  q->cluster_bits = load_be32(h + 20);
  uint64_t size = load_be64(h + 24);
  uint32_t crypt = load_be32(h + 32);
  q->l1_size = load_be32(h + 36);
  q->l1_offset = load_be64(h + 40);
  q->reftable_offset = load_be64(h + 48);
  q->reftable_clusters = load_be32(h + 56);
  q->nb_snapshots = load_be32(h + 60);
  q->snapshots_offset = load_be64(h + 64);
  uint64_t incompatible = 0;
  size_t header_length = QCOW2_V2_HEADER_LENGTH;
  q->refcount_order = 4;
  if (q->version == 3) {
    incompatible = load_be64(h + 72);
    q->refcount_order = load_be32(h + 96);
    header_length = load_be32(h + 100);
    if (header_length < QCOW2_V3_MIN_HEADER_LENGTH || header_length > 4096)
      return qcow2_corrupt(r, 100, "bad header length");
    if (header_length > QCOW2_V3_MIN_HEADER_LENGTH)
      q->compression_type = h[104];
  }
  if (q->cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
      q->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
    return qcow2_corrupt(r, 20, "cluster size out of range (512 B to 2 MiB)");
  q->cluster_size = 1ull << q->cluster_bits;
  q->l2_entries = q->cluster_size / 8;
  if (header_length > q->cluster_size)
    return qcow2_corrupt(r, 100, "header is larger than a cluster");
  if (crypt != 0)
    return vab_error(r->ctx, VAB_E_UNSUPPORTED,
                     "'%s': encrypted qcow2 images are not supported",
                     r->path);
  if (check_features(r, incompatible, q->compression_type) < 0)
    return -1;
  if (q->refcount_order > 6)
    return qcow2_corrupt(r, 96, "refcount order above 6");
  if (size > MAX_VIRTUAL_SIZE)
    return qcow2_corrupt(r, 24, "absurd virtual size");
  uint64_t coverage = q->cluster_size * q->l2_entries;
  uint64_t l1_needed = (size + coverage - 1) / coverage;
  if (q->l1_size < l1_needed)
    return qcow2_corrupt(r, 36, "L1 table is too small for the virtual size");
  if (q->l1_size > QCOW2_MAX_L1_BYTES / 8)
    return qcow2_corrupt(r, 36, "L1 table is larger than 32 MiB");
  if (q->l1_offset & (q->cluster_size - 1))
    return qcow2_corrupt(r, 40, "L1 table offset is not cluster aligned");
  if (q->reftable_offset & (q->cluster_size - 1))
    return qcow2_corrupt(r, 48,
                         "refcount table offset is not cluster aligned");
  if (q->reftable_clusters * q->cluster_size > QCOW2_MAX_REFTABLE_BYTES)
    return qcow2_corrupt(r, 56, "refcount table is larger than 8 MiB");
  if (backing_offset != 0 && backing_offset >= q->cluster_size)
    return qcow2_corrupt(r, 8,
                         "backing file name is outside the header cluster");
  size_t ext_limit = (size_t)(q->cluster_size < sizeof h ? q->cluster_size
                                                          : sizeof h);
  if (backing_offset != 0 && backing_offset < ext_limit)
    ext_limit = (size_t)backing_offset;
  if (parse_extensions(r, h, header_length, ext_limit) < 0)
    return -1;
  r->info.virtual_size = size;
  r->info.cluster_size = (uint32_t)q->cluster_size;
  snprintf(r->info.subformat, sizeof r->info.subformat, "v%u", q->version);
  r->info.snapshots = q->nb_snapshots;
  snprintf(r->info.compression, sizeof r->info.compression, "none");

  q->l1 = calloc(q->l1_size ? q->l1_size : 1, sizeof *q->l1);
  if (q->l1 == NULL)
    return vab_error(r->ctx, VAB_E_NOMEM, "out of memory");
  if (q->l1_size > 0) {
    if (qcow2_read_exact(r, q->l1, q->l1_size * 8, q->l1_offset,
                         "L1 table") < 0)
      return -1;
    for (uint64_t i = 0; i < q->l1_size; i++)
      q->l1[i] = load_be64((const uint8_t *)&q->l1[i]);
  }
  if (check_l1_sharing(r, q) < 0)
    return -1;
  q->zero_budget = qcow2_work_budget(r);
  q->cache_size = (unsigned)(QCOW2_L2_CACHE_BYTES / q->cluster_size);
  if (q->cache_size < 1)
    q->cache_size = 1;
  if (q->cache_size > QCOW2_L2_CACHE_MAX)
    q->cache_size = QCOW2_L2_CACHE_MAX;
  if (backing_offset != 0 && open_backing(r, h, backing_offset, backing_len) < 0)
    return -1;
  return 0;
}

/* The L2 entry of a guest cluster (0 if unallocated). */
int qcow2_l2_entry(struct vab_reader *r, uint64_t cluster, uint64_t *entry) {
  struct qcow2_reader *q = r->priv;
  uint64_t l1_index = cluster / q->l2_entries;
  *entry = 0;
  if (l1_index >= q->l1_size)
    return 0;
  uint64_t l1e = q->l1[l1_index];
  uint64_t l1_pos = q->l1_offset + 8 * l1_index;
  if (l1e & QCOW2_L1E_RESERVED_MASK)
    return qcow2_corrupt(r, l1_pos, "L1 entry has reserved bits set");
  uint64_t l2_offset = l1e & QCOW2_L1E_OFFSET_MASK;
  if (l2_offset == 0)
    return 0;
  if (l2_offset & (q->cluster_size - 1))
    return qcow2_corrupt(r, l1_pos, "L2 table offset is not cluster aligned");
  struct qcow2_l2_cache_entry *c = NULL;
  for (unsigned i = 0; i < q->cache_size; i++)
    if (q->cache[i].offset == l2_offset)
      c = &q->cache[i];
  if (c == NULL) {
    c = &q->cache[q->cache_next];
    q->cache_next = (q->cache_next + 1) % q->cache_size;
    if (c->table == NULL) {
      c->table = malloc(q->cluster_size);
      if (c->table == NULL)
        return fail(r, VAB_E_NOMEM, 0, "out of memory");
    }
    c->offset = 0;
    if (qcow2_read_exact(r, c->table, q->cluster_size, l2_offset,
                         "L2 table") < 0)
      return -1;
    for (uint64_t i = 0; i < q->l2_entries; i++)
      c->table[i] = load_be64((const uint8_t *)&c->table[i]);
    c->offset = l2_offset;
  }
  *entry = c->table[cluster % q->l2_entries];
  return 0;
}

int qcow2_classify(struct vab_reader *r, uint64_t cluster, uint64_t entry,
                   enum qcow2_cluster_kind *kind, uint64_t *host) {
  struct qcow2_reader *q = r->priv;
  *host = 0;
  if (entry & QCOW2_OFLAG_COMPRESSED) {
    *kind = QCOW2_KIND_COMPRESSED;
    return 0;
  }
  if (entry & QCOW2_L2E_STD_RESERVED_MASK) {
    char msg[96];
    snprintf(msg, sizeof msg, "L2 entry of guest cluster %llu has reserved "
             "bits set", (unsigned long long)cluster);
    return qcow2_corrupt(r, entry & QCOW2_L2E_OFFSET_MASK, msg);
  }
  *host = entry & QCOW2_L2E_OFFSET_MASK;
  if ((entry & QCOW2_OFLAG_ZERO) && q->version >= 3) {
    *kind = QCOW2_KIND_ZERO;
    return 0;
  }
  if (*host == 0) {
    *kind = QCOW2_KIND_UNALLOCATED;
    return 0;
  }
  if (*host & (q->cluster_size - 1))
    return qcow2_corrupt(r, *host,
                         "data cluster offset is not cluster aligned");
  if (*host >= r->file_size)
    return qcow2_corrupt(r, *host, "data cluster is past the end of the file");
  *kind = QCOW2_KIND_NORMAL;
  return 0;
}

static int decompress_cluster(struct vab_reader *r, uint64_t entry) {
  struct qcow2_reader *q = r->priv;
  if (q->dbuf_entry == entry && q->dbuf != NULL)
    return 0;
  if (q->dbuf == NULL) {
    q->dbuf = malloc(q->cluster_size);
    q->cbuf = malloc(2 * q->cluster_size);
    if (q->dbuf == NULL || q->cbuf == NULL)
      return vab_error(r->ctx, VAB_E_NOMEM, "out of memory");
  }
  q->dbuf_entry = 0;
  uint64_t host, len;
  qcow2_compressed_range(entry, q->cluster_bits, &host, &len);
  if (host >= r->file_size || host >= (1ull << 56))
    return qcow2_corrupt(r, host,
                         "compressed cluster is past the end of the file");
  /* The last sector may be cut short by the end of the file. */
  if (len > r->file_size - host)
    len = r->file_size - host;
  if (qcow2_read_exact(r, q->cbuf, (size_t)len, host,
                       "compressed cluster") < 0)
    return -1;
  size_t produced = 0;
  if (q->compression_type == QCOW2_COMPRESSION_DEFLATE) {
    if (q->inflater == NULL && (q->inflater = libdeflate_alloc_decompressor()) == NULL)
      return vab_error(r->ctx, VAB_E_NOMEM, "out of memory");
    size_t used = 0;
    enum libdeflate_result res = libdeflate_deflate_decompress_ex(
        q->inflater, q->cbuf, (size_t)len, q->dbuf, q->cluster_size, &used,
        &produced);
    if (res != LIBDEFLATE_SUCCESS)
      produced = 0;
  } else {
    if (q->zstd == NULL && (q->zstd = ZSTD_createDCtx()) == NULL)
      return vab_error(r->ctx, VAB_E_NOMEM, "out of memory");
    ZSTD_DCtx_reset(q->zstd, ZSTD_reset_session_only);
    ZSTD_inBuffer in = {q->cbuf, (size_t)len, 0};
    ZSTD_outBuffer out = {q->dbuf, q->cluster_size, 0};
    while (out.pos < out.size) {
      size_t in_before = in.pos, out_before = out.pos;
      size_t ret = ZSTD_decompressStream(q->zstd, &out, &in);
      /* An error, the end of the frame, or no progress (truncated). */
      if (ZSTD_isError(ret) || ret == 0 ||
          (in.pos == in_before && out.pos == out_before))
        break;
    }
    produced = out.pos;
  }
  if (produced != q->cluster_size)
    return qcow2_corrupt(r, host,
                         "compressed cluster does not decompress to a "
                   "full cluster");
  q->dbuf_entry = entry;
  q->dbuf_zero = vab_buffer_is_zero(q->dbuf, q->cluster_size);
  return 0;
}

int qcow2_pread(struct vab_reader *r, void *buf, size_t len, uint64_t offset) {
  struct qcow2_reader *q = r->priv;
  uint8_t *out = buf;
  while (len > 0) {
    uint64_t cluster = offset >> q->cluster_bits;
    uint64_t in_cluster = offset & (q->cluster_size - 1);
    size_t n = q->cluster_size - in_cluster < len
                   ? (size_t)(q->cluster_size - in_cluster)
                   : len;
    uint64_t entry, host;
    enum qcow2_cluster_kind kind;
    if (qcow2_l2_entry(r, cluster, &entry) < 0 ||
        qcow2_classify(r, cluster, entry, &kind, &host) < 0)
      return -1;
    switch (kind) {
    case QCOW2_KIND_ZERO:
      memset(out, 0, n);
      break;
    case QCOW2_KIND_UNALLOCATED:
      if (vab_image_read_backing(r, out, n, offset) < 0)
        return -1;
      break;
    case QCOW2_KIND_COMPRESSED:
      if (decompress_cluster(r, entry & ~QCOW2_OFLAG_COPIED) < 0)
        return -1;
      if (q->dbuf_zero) {
        uint64_t chost, clen;
        qcow2_compressed_range(entry, q->cluster_bits, &chost, &clen);
        if (spend_zero_budget(r, chost, n) < 0)
          return -1;
      }
      memcpy(out, q->dbuf + in_cluster, n);
      break;
    case QCOW2_KIND_NORMAL: {
      uint64_t pos = host + in_cluster;
      size_t avail = pos < r->file_size
                         ? (r->file_size - pos < n ? (size_t)(r->file_size - pos)
                                                   : n)
                         : 0;
      if (avail > 0 && qcow2_read_exact(r, out, avail, pos,
                                        "data cluster") < 0)
        return -1;
      if (vab_buffer_is_zero(out, avail) &&
          spend_zero_budget(r, host, avail) < 0)
        return -1;
      memset(out + avail, 0, n - avail);
      break;
    }
    }
    out += n;
    len -= n;
    offset += n;
  }
  return 0;
}

int qcow2_block_status(struct vab_reader *r, uint64_t offset, uint64_t len,
                       uint64_t *run, bool *is_zero) {
  struct qcow2_reader *q = r->priv;
  uint64_t pos = offset;
  uint64_t end = offset + len;
  bool first = true, state = false;
  uint64_t coverage = q->cluster_size * q->l2_entries;
  /* Bounded work per call: at most one L2 table's range. */
  uint64_t limit = (offset / coverage + 1) * coverage;
  if (limit < end)
    end = limit;
  while (pos < end) {
    uint64_t cluster = pos >> q->cluster_bits;
    uint64_t next = (cluster + 1) << q->cluster_bits;
    uint64_t l1_index = cluster / q->l2_entries;
    bool zero;
    if (l1_index < q->l1_size &&
        (q->l1[l1_index] & QCOW2_L1E_OFFSET_MASK) == 0 &&
        !(q->l1[l1_index] & QCOW2_L1E_RESERVED_MASK)) {
      /* A whole L2 range unallocated. */
      next = (l1_index + 1) * coverage;
      zero = r->backing == NULL || pos >= r->backing->info.virtual_size;
    } else {
      uint64_t entry, host;
      enum qcow2_cluster_kind kind;
      if (qcow2_l2_entry(r, cluster, &entry) < 0 ||
          qcow2_classify(r, cluster, entry, &kind, &host) < 0)
        return -1;
      zero = kind == QCOW2_KIND_ZERO ||
             (kind == QCOW2_KIND_UNALLOCATED &&
              (r->backing == NULL || pos >= r->backing->info.virtual_size));
    }
    if (first) {
      state = zero;
      first = false;
    } else if (zero != state) {
      break;
    }
    pos = next;
  }
  if (pos > end)
    pos = end;
  *run = pos - offset;
  *is_zero = state;
  return 0;
}

void qcow2_reader_close(struct vab_reader *r) {
  struct qcow2_reader *q = r->priv;
  if (q == NULL)
    return;
  for (unsigned i = 0; i < QCOW2_L2_CACHE_MAX; i++)
    free(q->cache[i].table);
  free(q->l1);
  free(q->zero_seen.slots);
  free(q->cbuf);
  free(q->dbuf);
  libdeflate_free_decompressor(q->inflater);
  ZSTD_freeDCtx(q->zstd);
  free(q);
  r->priv = NULL;
}
