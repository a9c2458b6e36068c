/* qcow2 reader (versions 2 and 3) and metadata check.
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

/* L2 tables kept in memory: enough for sequential reads and a little
 * jumping around, bounded in bytes for 2 MiB clusters. */
#define L2_CACHE_BYTES (4u << 20)
#define L2_CACHE_MAX 16
/* Largest virtual size accepted: keeps every offset computation far from
 * 64-bit overflow. */
#define MAX_VIRTUAL_SIZE (1ull << 56)
/* check() keeps a 16-bit count per host cluster of the file. */
#define CHECK_MAX_CLUSTERS (1ull << 26)
/* Work a hostile image can make the reader or the check do beyond what
 * its own size explains (tables or clusters shared many times over): at
 * most this many times the file's size, and at least WORK_BUDGET_MIN. */
#define WORK_BUDGET_FACTOR 64u
#define WORK_BUDGET_MIN (1ull << 30)

struct l2_cache_entry {
  uint64_t offset;   /* host offset of the table, 0 = empty */
  uint64_t *table;   /* host-order entries */
};

struct qcow2_reader {
  unsigned version;
  unsigned cluster_bits;
  uint64_t cluster_size;
  uint64_t l2_entries;
  uint64_t l1_size;
  uint64_t l1_offset;
  uint64_t *l1;
  uint64_t reftable_offset;
  uint64_t reftable_clusters;
  unsigned refcount_order;
  unsigned compression_type;
  uint32_t nb_snapshots;
  uint64_t snapshots_offset;

  struct l2_cache_entry cache[L2_CACHE_MAX];
  unsigned cache_size;
  unsigned cache_next;

  uint8_t *cbuf;            /* compressed bytes, 2 clusters */
  uint8_t *dbuf;            /* one decompressed cluster */
  uint64_t dbuf_entry;      /* entry dbuf holds, 0 = none */
  bool dbuf_zero;           /* dbuf is all zero */
  uint64_t zero_budget;     /* bytes of zeros left to reread from clusters */
  uint64_t *zero_seen;      /* host offsets of all-zero clusters read */
  uint64_t zero_seen_slots, zero_seen_used;
  struct libdeflate_decompressor *inflater;
  ZSTD_DCtx *zstd;
  bool quiet;               /* check(): keep errors in quiet_msg */
  char quiet_msg[512];
};

bool qcow2_probe(const uint8_t *head, size_t len, uint64_t file_size);
int qcow2_reader_open(struct vab_reader *r);
int qcow2_block_status(struct vab_reader *r, uint64_t offset, uint64_t len,
                       uint64_t *run, bool *is_zero);
int qcow2_pread(struct vab_reader *r, void *buf, size_t len, uint64_t offset);
int qcow2_check(struct vab_reader *r, struct vab_check_result *result);
void qcow2_reader_close(struct vab_reader *r);

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

static int corrupt(struct vab_reader *r, uint64_t offset, const char *what) {
  return fail(r, VAB_E_FORMAT, 0, "'%s': %s (offset %llu)", r->path, what,
              (unsigned long long)offset);
}

/* Read exactly len bytes at offset, which must lie inside the file. */
static int read_exact(struct vab_reader *r, void *buf, size_t len,
                      uint64_t offset, const char *what) {
  if (offset > r->file_size || len > r->file_size - offset) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s is past the end of the file", what);
    return corrupt(r, offset, msg);
  }
  ssize_t n = pread_full(r->fd, buf, len, offset);
  if (n < 0)
    return fail(r, VAB_E_IO, errno, "cannot read '%s' at offset %llu",
                r->path, (unsigned long long)offset);
  if ((size_t)n != len)
    return corrupt(r, offset + (uint64_t)n, "the file ends early");
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
      return corrupt(r, pos, "header extension runs past the header cluster");
    const uint8_t *data = cluster0 + pos + 8;
    if (type == QCOW2_EXT_BACKING_FORMAT) {
      if (len == 0 || len >= sizeof r->info.backing_format ||
          memchr(data, '\0', len) != NULL)
        return corrupt(r, pos, "bad backing format header extension");
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
    return corrupt(r, 104,
                   "compression type and its incompatible feature bit "
                   "disagree");
  return 0;
}

static int open_backing(struct vab_reader *r, const uint8_t *cluster0,
                        uint64_t offset, uint32_t len) {
  if (len == 0 || len > QCOW2_MAX_BACKING_NAME)
    return corrupt(r, 16, "bad backing file name length");
  if (offset > r->file_size || len > r->file_size - offset)
    return corrupt(r, 8, "backing file name is past the end of the file");
  char name[QCOW2_MAX_BACKING_NAME + 1];
  if (offset + len <= 4096 && offset + len <= r->file_size) {
    memcpy(name, cluster0 + offset, len);
  } else if (read_exact(r, name, len, offset, "backing file name") < 0) {
    return -1;
  }
  name[len] = '\0';
  if (memchr(name, '\0', len) != NULL)
    return corrupt(r, offset, "backing file name contains a NUL byte");
  snprintf(r->info.backing_file, sizeof r->info.backing_file, "%s", name);
  const char *fmt = r->info.backing_format[0] ? r->info.backing_format : NULL;
  return vab_image_open_backing(r, name, fmt, "backing file", &r->backing);
}

static uint64_t work_budget(const struct vab_reader *r) {
  uint64_t budget = r->file_size * WORK_BUDGET_FACTOR;
  return budget > WORK_BUDGET_MIN ? budget : WORK_BUDGET_MIN;
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
  return corrupt(r, q->l1_offset, msg);
}

/* Has the all-zero cluster at this host offset been read before?  Distinct
 * ones are bounded by the file's size; past the set's cap, every one
 * counts as seen. */
static bool zero_seen_before(struct qcow2_reader *q, uint64_t file_size,
                             uint64_t host) {
  if (q->zero_seen == NULL) {
    q->zero_seen_slots = 1024;
    while (q->zero_seen_slots < (1u << 20) &&
           q->zero_seen_slots < 2 * (file_size / QCOW2_SECTOR))
      q->zero_seen_slots *= 2;
    q->zero_seen = calloc(q->zero_seen_slots, sizeof *q->zero_seen);
  }
  if (q->zero_seen == NULL ||
      (q->zero_seen_used + 1) * 4 > q->zero_seen_slots * 3)
    return true;
  uint64_t key = host + 1;  /* 0 marks an empty slot */
  uint64_t mask = q->zero_seen_slots - 1;
  uint64_t i = (key * 0x9e3779b97f4a7c15ull) >> 20;
  for (i &= mask;; i = (i + 1) & mask) {
    if (q->zero_seen[i] == key)
      return true;
    if (q->zero_seen[i] == 0) {
      q->zero_seen[i] = key;
      q->zero_seen_used++;
      return false;
    }
  }
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
                   r->path, (unsigned long long)work_budget(r),
                   (unsigned long long)r->file_size);
}

int qcow2_reader_open(struct vab_reader *r) {
  uint8_t h[4096];
  memset(h, 0, sizeof h);
  size_t head_len = r->file_size < sizeof h ? (size_t)r->file_size : sizeof h;
  if (head_len < QCOW2_V2_HEADER_LENGTH)
    return corrupt(r, 0, "file too small for a qcow2 header");
  if (read_exact(r, h, head_len, 0, "header") < 0)
    return -1;
  if (load_be32(h) != QCOW2_MAGIC)
    return corrupt(r, 0, "no qcow2 magic");
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
      return corrupt(r, 100, "bad header length");
    if (header_length > QCOW2_V3_MIN_HEADER_LENGTH)
      q->compression_type = h[104];
  }
  if (q->cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
      q->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
    return corrupt(r, 20, "cluster size out of range (512 B to 2 MiB)");
  q->cluster_size = 1ull << q->cluster_bits;
  q->l2_entries = q->cluster_size / 8;
  if (header_length > q->cluster_size)
    return corrupt(r, 100, "header is larger than a cluster");
  if (crypt != 0)
    return vab_error(r->ctx, VAB_E_UNSUPPORTED,
                     "'%s': encrypted qcow2 images are not supported",
                     r->path);
  if (check_features(r, incompatible, q->compression_type) < 0)
    return -1;
  if (q->refcount_order > 6)
    return corrupt(r, 96, "refcount order above 6");
  if (size > MAX_VIRTUAL_SIZE)
    return corrupt(r, 24, "absurd virtual size");
  uint64_t coverage = q->cluster_size * q->l2_entries;
  uint64_t l1_needed = (size + coverage - 1) / coverage;
  if (q->l1_size < l1_needed)
    return corrupt(r, 36, "L1 table is too small for the virtual size");
  if (q->l1_size > QCOW2_MAX_L1_BYTES / 8)
    return corrupt(r, 36, "L1 table is larger than 32 MiB");
  if (q->l1_offset & (q->cluster_size - 1))
    return corrupt(r, 40, "L1 table offset is not cluster aligned");
  if (q->reftable_offset & (q->cluster_size - 1))
    return corrupt(r, 48, "refcount table offset is not cluster aligned");
  if (q->reftable_clusters * q->cluster_size > QCOW2_MAX_REFTABLE_BYTES)
    return corrupt(r, 56, "refcount table is larger than 8 MiB");
  if (backing_offset != 0 && backing_offset >= q->cluster_size)
    return corrupt(r, 8, "backing file name is outside the header cluster");
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
    if (read_exact(r, q->l1, q->l1_size * 8, q->l1_offset, "L1 table") < 0)
      return -1;
    for (uint64_t i = 0; i < q->l1_size; i++)
      q->l1[i] = load_be64((const uint8_t *)&q->l1[i]);
  }
  if (check_l1_sharing(r, q) < 0)
    return -1;
  q->zero_budget = work_budget(r);
  q->cache_size = (unsigned)(L2_CACHE_BYTES / q->cluster_size);
  if (q->cache_size < 1)
    q->cache_size = 1;
  if (q->cache_size > L2_CACHE_MAX)
    q->cache_size = L2_CACHE_MAX;
  if (backing_offset != 0 && open_backing(r, h, backing_offset, backing_len) < 0)
    return -1;
  return 0;
}

/* The L2 entry of a guest cluster (0 if unallocated). */
static int l2_entry(struct vab_reader *r, uint64_t cluster, uint64_t *entry) {
  struct qcow2_reader *q = r->priv;
  uint64_t l1_index = cluster / q->l2_entries;
  *entry = 0;
  if (l1_index >= q->l1_size)
    return 0;
  uint64_t l1e = q->l1[l1_index];
  uint64_t l1_pos = q->l1_offset + 8 * l1_index;
  if (l1e & QCOW2_L1E_RESERVED_MASK)
    return corrupt(r, l1_pos, "L1 entry has reserved bits set");
  uint64_t l2_offset = l1e & QCOW2_L1E_OFFSET_MASK;
  if (l2_offset == 0)
    return 0;
  if (l2_offset & (q->cluster_size - 1))
    return corrupt(r, l1_pos, "L2 table offset is not cluster aligned");
  struct l2_cache_entry *c = NULL;
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
    if (read_exact(r, c->table, q->cluster_size, l2_offset, "L2 table") < 0)
      return -1;
    for (uint64_t i = 0; i < q->l2_entries; i++)
      c->table[i] = load_be64((const uint8_t *)&c->table[i]);
    c->offset = l2_offset;
  }
  *entry = c->table[cluster % q->l2_entries];
  return 0;
}

enum cluster_kind { KIND_UNALLOCATED, KIND_ZERO, KIND_NORMAL, KIND_COMPRESSED };

static int classify(struct vab_reader *r, uint64_t cluster, uint64_t entry,
                    enum cluster_kind *kind, uint64_t *host) {
  struct qcow2_reader *q = r->priv;
  *host = 0;
  if (entry & QCOW2_OFLAG_COMPRESSED) {
    *kind = KIND_COMPRESSED;
    return 0;
  }
  if (entry & QCOW2_L2E_STD_RESERVED_MASK) {
    char msg[96];
    snprintf(msg, sizeof msg, "L2 entry of guest cluster %llu has reserved "
             "bits set", (unsigned long long)cluster);
    return corrupt(r, entry & QCOW2_L2E_OFFSET_MASK, msg);
  }
  *host = entry & QCOW2_L2E_OFFSET_MASK;
  if ((entry & QCOW2_OFLAG_ZERO) && q->version >= 3) {
    *kind = KIND_ZERO;
    return 0;
  }
  if (*host == 0) {
    *kind = KIND_UNALLOCATED;
    return 0;
  }
  if (*host & (q->cluster_size - 1))
    return corrupt(r, *host, "data cluster offset is not cluster aligned");
  if (*host >= r->file_size)
    return corrupt(r, *host, "data cluster is past the end of the file");
  *kind = KIND_NORMAL;
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
    return corrupt(r, host, "compressed cluster is past the end of the file");
  /* The last sector may be cut short by the end of the file. */
  if (len > r->file_size - host)
    len = r->file_size - host;
  if (read_exact(r, q->cbuf, (size_t)len, host, "compressed cluster") < 0)
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
    return corrupt(r, host, "compressed cluster does not decompress to a "
                   "full cluster");
  q->dbuf_entry = entry;
  q->dbuf_zero = vab_buffer_is_zero(q->dbuf, q->cluster_size);
  return 0;
}

static int read_backing(struct vab_reader *r, uint8_t *buf, size_t len,
                        uint64_t offset) {
  if (r->backing == NULL) {
    memset(buf, 0, len);
    return 0;
  }
  uint64_t bsize = r->backing->info.virtual_size;
  size_t n = 0;
  if (offset < bsize)
    n = bsize - offset < len ? (size_t)(bsize - offset) : len;
  if (n > 0 && vab_image_pread(r->backing, buf, n, offset) < 0)
    return -1;
  memset(buf + n, 0, len - n);
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
    enum cluster_kind kind;
    if (l2_entry(r, cluster, &entry) < 0 ||
        classify(r, cluster, entry, &kind, &host) < 0)
      return -1;
    switch (kind) {
    case KIND_ZERO:
      memset(out, 0, n);
      break;
    case KIND_UNALLOCATED:
      if (read_backing(r, out, n, offset) < 0)
        return -1;
      break;
    case KIND_COMPRESSED:
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
    case KIND_NORMAL: {
      uint64_t pos = host + in_cluster;
      size_t avail = pos < r->file_size
                         ? (r->file_size - pos < n ? (size_t)(r->file_size - pos)
                                                   : n)
                         : 0;
      if (avail > 0 && read_exact(r, out, avail, pos, "data cluster") < 0)
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
      enum cluster_kind kind;
      if (l2_entry(r, cluster, &entry) < 0 ||
          classify(r, cluster, entry, &kind, &host) < 0)
        return -1;
      zero = kind == KIND_ZERO ||
             (kind == KIND_UNALLOCATED &&
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

/* The metadata check: recount every reference and compare. */

struct check_state {
  struct vab_reader *r;
  struct vab_check_result *res;
  uint16_t *counts;        /* references per host cluster, saturating */
  uint64_t n_clusters;     /* of the file */
  uint64_t *seen;          /* compressed descriptors met, open addressing */
  uint64_t seen_slots, seen_used;
  unsigned reports;
  uint64_t snapshot_budget;  /* bytes of snapshot L1, L2 tables left */
  uint8_t *one;            /* bit per host cluster: stored refcount is 1 */
};

/* Problems are logged (the first few) and counted. */
#define CHECK_MAX_REPORTS 20

static void report(struct check_state *cs, const char *fmt, ...)
    VAB_PRINTF(2, 3);

static void report(struct check_state *cs, const char *fmt, ...) {
  if (cs->reports++ >= CHECK_MAX_REPORTS)
    return;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  vab_log(cs->r->ctx, VAB_LOG_WARNING, "%s", line);
}

static void count_range(struct check_state *cs, uint64_t host, uint64_t len,
                        const char *what) {
  struct qcow2_reader *q = cs->r->priv;
  if (len == 0)
    return;
  uint64_t first = host >> q->cluster_bits;
  uint64_t last = (host + len - 1) >> q->cluster_bits;
  for (uint64_t c = first; c <= last; c++) {
    if (c >= cs->n_clusters) {
      cs->res->errors++;
      report(cs, "'%s': %s is past the end of the file (offset %llu)",
             cs->r->path, what, (unsigned long long)host);
      return;
    }
    if (cs->counts[c] < UINT16_MAX)
      cs->counts[c]++;
  }
}

/* Has this compressed descriptor been seen before?  (For dedup savings;
 * past the cap it just stops counting.) */
static bool seen_before(struct check_state *cs, uint64_t entry) {
  if (cs->seen == NULL)
    return false;
  if ((cs->seen_used + 1) * 4 > cs->seen_slots * 3)
    return false;
  uint64_t mask = cs->seen_slots - 1;
  uint64_t i = (entry * 0x9e3779b97f4a7c15ull) >> 20;
  for (i &= mask;; i = (i + 1) & mask) {
    if (cs->seen[i] == entry)
      return true;
    if (cs->seen[i] == 0) {
      cs->seen[i] = entry;
      cs->seen_used++;
      return false;
    }
  }
}

static uint64_t stored_refcount(struct vab_reader *r, const uint8_t *reftable,
                                uint8_t *block, uint64_t *block_offset,
                                uint64_t cluster, bool *bad) {
  struct qcow2_reader *q = r->priv;
  uint64_t per_block = (q->cluster_size * 8) >> q->refcount_order;
  uint64_t index = cluster / per_block;
  *bad = false;
  if (index >= q->reftable_clusters * q->cluster_size / 8)
    return 0;
  uint64_t off = load_be64(reftable + 8 * index) & QCOW2_REFT_OFFSET_MASK;
  if (off == 0)
    return 0;
  if (off != *block_offset) {
    *block_offset = 0;
    q->quiet = true;
    int ret = (off & (q->cluster_size - 1)) != 0
                  ? -1
                  : read_exact(r, block, q->cluster_size, off, "refcount block");
    q->quiet = false;
    if (ret < 0) {
      *bad = true;
      return 0;
    }
    *block_offset = off;
  }
  return qcow2_refcount_get(block, cluster % per_block, q->refcount_order);
}

static int check_l2_table(struct check_state *cs, uint64_t l1_index,
                          uint64_t *allocated, bool *compressed) {
  struct vab_reader *r = cs->r;
  struct qcow2_reader *q = r->priv;
  for (uint64_t i = 0; i < q->l2_entries; i++) {
    uint64_t cluster = l1_index * q->l2_entries + i;
    uint64_t entry, host;
    enum cluster_kind kind;
    if (l2_entry(r, cluster, &entry) < 0)
      return -1;
    if (entry == 0)
      continue;
    cs->res->checked++;
    q->quiet = true;
    int ret = classify(r, cluster, entry, &kind, &host);
    q->quiet = false;
    if (ret < 0) {
      report(cs, "%s", q->quiet_msg);
      cs->res->errors++;
      continue;
    }
    if (kind == KIND_COMPRESSED) {
      uint64_t chost, clen;
      qcow2_compressed_range(entry, q->cluster_bits, &chost, &clen);
      if (entry & QCOW2_OFLAG_COPIED) {
        cs->res->errors++;
        report(cs,
                "'%s': compressed cluster entry %llu has COPIED set",
                r->path, (unsigned long long)cluster);
      }
      count_range(cs, chost, clen, "compressed cluster");
      *allocated += q->cluster_size;
      *compressed = true;
      if (seen_before(cs, entry & ~QCOW2_OFLAG_COPIED)) {
        r->info.dedup_saved_bytes += q->cluster_size;
      }
    } else if (host != 0) {
      uint64_t c = host >> q->cluster_bits;
      if (kind == KIND_NORMAL) {
        *allocated += q->cluster_size;
        if (c < cs->n_clusters && cs->counts[c] == 1)
          r->info.shared_clusters++;
        if (c < cs->n_clusters && cs->counts[c] >= 1)
          r->info.dedup_saved_bytes += q->cluster_size;
      }
      if (host & (q->cluster_size - 1)) {
        cs->res->errors++;
        continue;
      }
      count_range(cs, host, q->cluster_size, "data cluster");
    }
  }
  return 0;
}

static bool refcount_is_one(const struct check_state *cs, uint64_t cluster) {
  return (cs->one[cluster / 8] >> (cluster % 8)) & 1;
}

/* The refcount for a report; the check itself uses cs->one, so that
 * entries hopping between refcount blocks do not reread a block each. */
static uint64_t refcount_for_report(struct check_state *cs,
                                    const uint8_t *reftable, uint8_t *block,
                                    uint64_t cluster) {
  uint64_t block_offset = 0;
  bool bad;
  if (cs->reports >= CHECK_MAX_REPORTS)
    return 0;
  return stored_refcount(cs->r, reftable, block, &block_offset, cluster, &bad);
}

static int check_copied(struct check_state *cs, const uint8_t *reftable,
                        uint8_t *block) {
  struct vab_reader *r = cs->r;
  struct qcow2_reader *q = r->priv;
  for (uint64_t i = 0; i < q->l1_size; i++) {
    uint64_t l1e = q->l1[i];
    uint64_t l2_offset = l1e & QCOW2_L1E_OFFSET_MASK;
    if (l2_offset == 0 || (l2_offset & (q->cluster_size - 1)) ||
        l2_offset >= r->file_size)
      continue;
    uint64_t c = l2_offset >> q->cluster_bits;
    if (((l1e & QCOW2_OFLAG_COPIED) != 0) != refcount_is_one(cs, c)) {
      cs->res->errors++;
      uint64_t rc = refcount_for_report(cs, reftable, block, c);
      report(cs,
              "'%s': L1 entry %llu: COPIED flag does not match refcount "
              "%llu",
              r->path, (unsigned long long)i, (unsigned long long)rc);
    }
    for (uint64_t k = 0; k < q->l2_entries; k++) {
      uint64_t entry;
      q->quiet = true;
      int ret = l2_entry(r, i * q->l2_entries + k, &entry);
      q->quiet = false;
      if (ret < 0)
        break;
      uint64_t host = entry & QCOW2_L2E_OFFSET_MASK;
      if ((entry & QCOW2_OFLAG_COMPRESSED) || host == 0 ||
          (host & (q->cluster_size - 1)) || host >= r->file_size)
        continue;
      c = host >> q->cluster_bits;
      if (((entry & QCOW2_OFLAG_COPIED) != 0) != refcount_is_one(cs, c)) {
        cs->res->errors++;
        uint64_t rc = refcount_for_report(cs, reftable, block, c);
        report(cs,
                "'%s': guest cluster %llu: COPIED flag does not match "
                "refcount %llu",
                r->path, (unsigned long long)(i * q->l2_entries + k),
                (unsigned long long)rc);
      }
    }
    if (vab_check_cancel(r->ctx) < 0)
      return -1;
  }
  return 0;
}

/* References held by one L2 table that an inactive (snapshot) L1 points
 * to.  As qemu-img check counts them: each L1 reference to an L2 table
 * counts the clusters in it once more. */
static void count_l2_table_refs(struct check_state *cs, const uint8_t *table) {
  struct qcow2_reader *q = cs->r->priv;
  for (uint64_t i = 0; i < q->l2_entries; i++) {
    uint64_t entry = load_be64(table + 8 * i);
    if (entry & QCOW2_OFLAG_COMPRESSED) {
      uint64_t chost, clen;
      qcow2_compressed_range(entry, q->cluster_bits, &chost, &clen);
      count_range(cs, chost, clen, "snapshot's compressed cluster");
      continue;
    }
    uint64_t host = entry & QCOW2_L2E_OFFSET_MASK;
    if (host == 0)
      continue;
    if (host & (q->cluster_size - 1)) {
      cs->res->errors++;
      report(cs, "'%s': snapshot's data cluster offset %llu is not "
             "cluster aligned", cs->r->path, (unsigned long long)host);
      continue;
    }
    count_range(cs, host, q->cluster_size, "snapshot's data cluster");
  }
}

static int snapshot_budget_exceeded(struct vab_reader *r) {
  return vab_error(r->ctx, VAB_E_UNSUPPORTED,
                   "'%s': snapshots point to more L1 and L2 tables than vab "
                   "checks (%u times the file's size, at least 1 GiB): check "
                   "stopped, work budget exceeded",
                   r->path, WORK_BUDGET_FACTOR);
}

/* The clusters that a snapshot's L1 table holds. */
static int count_snapshot_l1(struct check_state *cs, unsigned index,
                             uint64_t l1_offset, uint64_t l1_size,
                             uint8_t *table) {
  struct vab_reader *r = cs->r;
  struct qcow2_reader *q = r->priv;
  if ((l1_offset & (q->cluster_size - 1)) || l1_size > QCOW2_MAX_L1_BYTES / 8 ||
      l1_offset + l1_size * 8 > r->file_size) {
    cs->res->errors++;
    report(cs, "'%s': snapshot %u: L1 table at offset %llu (%llu entries) "
           "is misaligned, too large or past the end of the file",
           r->path, index, (unsigned long long)l1_offset,
           (unsigned long long)l1_size);
    return 0;
  }
  if (l1_size == 0)
    return 0;
  count_range(cs, l1_offset, l1_size * 8, "snapshot L1 table");
  /* Snapshots can share one L1 table too; qemu gives each its own copy. */
  if (cs->snapshot_budget < l1_size * 8)
    return snapshot_budget_exceeded(r);
  cs->snapshot_budget -= l1_size * 8;
  uint8_t *l1 = malloc(l1_size * 8);
  if (l1 == NULL)
    return vab_error(r->ctx, VAB_E_NOMEM, "out of memory");
  int rc = read_exact(r, l1, l1_size * 8, l1_offset, "snapshot L1 table");
  for (uint64_t i = 0; rc == 0 && i < l1_size; i++) {
    uint64_t l2_offset = load_be64(l1 + 8 * i) & QCOW2_L1E_OFFSET_MASK;
    if (l2_offset == 0)
      continue;
    if ((l2_offset & (q->cluster_size - 1)) ||
        l2_offset + q->cluster_size > r->file_size) {
      cs->res->errors++;
      report(cs, "'%s': snapshot %u: L2 table offset %llu is misaligned or "
             "past the end of the file", r->path, index,
             (unsigned long long)l2_offset);
      continue;
    }
    count_range(cs, l2_offset, q->cluster_size, "snapshot L2 table");
    /* Snapshots share L2 tables; a hostile image could make every one of
     * 65536 snapshots point to all of them. */
    if (cs->snapshot_budget < q->cluster_size) {
      rc = snapshot_budget_exceeded(r);
      break;
    }
    cs->snapshot_budget -= q->cluster_size;
    rc = read_exact(r, table, q->cluster_size, l2_offset, "snapshot L2 table");
    if (rc == 0)
      count_l2_table_refs(cs, table);
  }
  free(l1);
  return rc;
}

/* Internal snapshots (qemu-img snapshot -c): the snapshot table and, for
 * each snapshot, its L1 table, L2 tables and clusters all hold references.
 * Entries as the qcow2 spec lays them out: a 40-byte fixed part, extra
 * data, the id and the name, padded to 8 bytes. */
#define SNAPSHOT_MAX_COUNT 65536u
#define SNAPSHOT_MAX_EXTRA 1024u
#define SNAPSHOT_TABLE_MAX (64u << 20)
static int count_snapshots(struct check_state *cs) {
  struct vab_reader *r = cs->r;
  struct qcow2_reader *q = r->priv;
  if (q->nb_snapshots == 0)
    return 0;
  if (q->nb_snapshots > SNAPSHOT_MAX_COUNT ||
      (q->snapshots_offset & (q->cluster_size - 1)) ||
      q->snapshots_offset >= r->file_size)
    return corrupt(r, 60, "snapshot table count or offset is invalid");
  uint8_t *table = malloc(q->cluster_size);
  if (table == NULL)
    return vab_error(r->ctx, VAB_E_NOMEM, "out of memory");
  cs->snapshot_budget = work_budget(r);
  uint64_t at = q->snapshots_offset;
  int rc = 0;
  for (unsigned i = 0; rc == 0 && i < q->nb_snapshots; i++) {
    uint8_t fixed[40];
    if ((rc = read_exact(r, fixed, sizeof fixed, at, "snapshot table")) < 0)
      break;
    uint64_t l1_offset = load_be64(fixed);
    uint32_t l1_size = load_be32(fixed + 8);
    uint32_t id_len = load_be16(fixed + 12);
    uint32_t name_len = load_be16(fixed + 14);
    uint32_t extra_len = load_be32(fixed + 36);
    if (extra_len > SNAPSHOT_MAX_EXTRA) {
      rc = corrupt(r, at + 36, "snapshot extra data is larger than 1 KiB");
      break;
    }
    /* The last entry's padding need not be in the file. */
    uint64_t end = at + sizeof fixed + extra_len + id_len + name_len;
    if (end - q->snapshots_offset > SNAPSHOT_TABLE_MAX || end > r->file_size) {
      rc = corrupt(r, at, "snapshot table runs past the end of the file");
      break;
    }
    at = (end + 7) & ~7ull;
    rc = count_snapshot_l1(cs, i, l1_offset, l1_size, table);
    if (rc == 0)
      rc = vab_check_cancel(r->ctx);
  }
  if (rc == 0)
    count_range(cs, q->snapshots_offset, at - q->snapshots_offset,
                "snapshot table");
  free(table);
  return rc;
}

int qcow2_check(struct vab_reader *r, struct vab_check_result *res) {
  struct qcow2_reader *q = r->priv;
  memset(res, 0, sizeof *res);
  struct check_state state = {.r = r, .res = res};
  struct check_state *cs = &state;
  cs->n_clusters = (r->file_size + q->cluster_size - 1) >> q->cluster_bits;
  if (cs->n_clusters > CHECK_MAX_CLUSTERS)
    return vab_error(r->ctx, VAB_E_UNSUPPORTED,
                     "'%s': too many clusters to check (%llu)", r->path,
                     (unsigned long long)cs->n_clusters);
  cs->counts = calloc(cs->n_clusters ? cs->n_clusters : 1, sizeof *cs->counts);
  /* Distinct compressed clusters start at distinct bytes of the file, but
   * real ones are at least a sector apart: size the set by that. */
  cs->seen_slots = 1024;
  while (cs->seen_slots < (1u << 20) &&
         cs->seen_slots < 2 * (r->file_size / QCOW2_SECTOR))
    cs->seen_slots *= 2;
  cs->seen = calloc(cs->seen_slots, sizeof *cs->seen);
  cs->one = calloc(cs->n_clusters / 8 + 1, 1);
  uint64_t reftable_bytes = q->reftable_clusters * q->cluster_size;
  uint8_t *reftable = calloc(1, reftable_bytes ? reftable_bytes : 1);
  uint8_t *block = malloc(q->cluster_size);
  int rc = -1;
  if (cs->counts == NULL || cs->one == NULL || reftable == NULL ||
      block == NULL) {
    vab_error(r->ctx, VAB_E_NOMEM, "out of memory");
    goto out;
  }
  if (read_exact(r, reftable, reftable_bytes, q->reftable_offset,
                 "refcount table") < 0)
    goto out;
  r->info.shared_clusters = 0;
  r->info.dedup_saved_bytes = 0;

  count_range(cs, 0, q->cluster_size, "header");
  count_range(cs, q->l1_offset, q->l1_size * 8, "L1 table");
  count_range(cs, q->reftable_offset, reftable_bytes, "refcount table");
  for (uint64_t i = 0; i < reftable_bytes / 8; i++) {
    uint64_t off = load_be64(reftable + 8 * i) & QCOW2_REFT_OFFSET_MASK;
    if (off == 0)
      continue;
    if (off & (q->cluster_size - 1)) {
      res->errors++;
      continue;
    }
    count_range(cs, off, q->cluster_size, "refcount block");
  }
  uint64_t allocated = 0;
  bool compressed = false;
  for (uint64_t i = 0; i < q->l1_size; i++) {
    uint64_t l1e = q->l1[i];
    uint64_t l2_offset = l1e & QCOW2_L1E_OFFSET_MASK;
    if (l2_offset == 0)
      continue;
    const char *bad = NULL;
    if (l1e & QCOW2_L1E_RESERVED_MASK)
      bad = "L1 entry has reserved bits set";
    else if (l2_offset & (q->cluster_size - 1))
      bad = "L2 table offset is not cluster aligned";
    else if (l2_offset + q->cluster_size > r->file_size)
      bad = "L2 table is past the end of the file";
    if (bad != NULL) {
      res->errors++;
      report(cs, "'%s': %s (offset %llu)", r->path, bad,
             (unsigned long long)l2_offset);
      continue;
    }
    count_range(cs, l2_offset, q->cluster_size, "L2 table");
    if (check_l2_table(cs, i, &allocated, &compressed) < 0 ||
        vab_check_cancel(r->ctx) < 0)
      goto out;
  }
  if (count_snapshots(cs) < 0)
    goto out;
  r->info.allocated_bytes = allocated;
  if (compressed)
    snprintf(r->info.compression, sizeof r->info.compression, "%s",
             q->compression_type == QCOW2_COMPRESSION_ZSTD ? "zstd" : "zlib");

  /* Stored against recounted refcounts, as qemu-img check reports them. */
  uint64_t block_offset = 0;
  for (uint64_t c = 0; c < cs->n_clusters; c++) {
    bool bad;
    uint64_t stored =
        stored_refcount(r, reftable, block, &block_offset, c, &bad);
    if (bad) {
      res->errors++;
      continue;
    }
    if (stored == 1)
      cs->one[c / 8] |= (uint8_t)(1u << (c % 8));
    uint64_t counted = cs->counts[c];
    if (stored < counted) {
      res->errors++;
      report(cs,
              "'%s': cluster %llu has refcount %llu but %llu references",
              r->path, (unsigned long long)c, (unsigned long long)stored,
              (unsigned long long)counted);
    } else if (stored > counted) {
      res->leaks++;
    }
  }
  if (check_copied(cs, reftable, block) < 0)
    goto out;
  rc = 0;
out:
  free(cs->counts);
  free(cs->seen);
  free(cs->one);
  free(reftable);
  free(block);
  return rc;
}

void qcow2_reader_close(struct vab_reader *r) {
  struct qcow2_reader *q = r->priv;
  if (q == NULL)
    return;
  for (unsigned i = 0; i < L2_CACHE_MAX; i++)
    free(q->cache[i].table);
  free(q->l1);
  free(q->zero_seen);
  free(q->cbuf);
  free(q->dbuf);
  libdeflate_free_decompressor(q->inflater);
  ZSTD_freeDCtx(q->zstd);
  free(q);
  r->priv = NULL;
}
