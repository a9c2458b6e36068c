/* qcow2 v3 writer.
 *
 * Layout, all appended in one pass in guest order:
 *
 *   cluster 0        header, extensions, backing file name (written last)
 *   data             plain clusters (cluster aligned) and compressed
 *                    clusters packed back to back; each L2 table follows
 *                    the data it maps, as soon as its range is complete
 *   L1 table, refcount table, refcount blocks   (at close)
 *
 * Only one L2 table is in memory, and the refcounts are 16 bits per host
 * cluster, so memory stays small for any virtual size.  encode() (worker
 * threads) compresses and hashes a cluster; put() (in guest order) decides
 * where it goes, so the bytes never depend on the thread count.
 *
 * Dedup: put() looks each data cluster's BLAKE2b digest up in a table of
 * clusters already stored and, on a hit, points the L2 entry at the stored
 * copy and adds a reference.  A shared cluster's L2 entries must not have
 * the COPIED flag, so close() rereads the L2 tables written and clears it
 * where a cluster ended up shared.
 */
#include <errno.h>
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "common/blake2b.h"
#include "vab/format.h"
#include "formats/compressors.h"
#include "formats/image.h"
#include "formats/qcow2/qcow2.h"
#include "formats/qcow2/qcow2-reader.h"
#include "formats/registry.h"

#define WRITE_BUFFER_SIZE (1u << 20)
/* Dedup table: at most this many slots (40 bytes each), 3/4 of them used;
 * past that, new clusters are stored without being remembered. */
#define DEDUP_MAX_SLOTS (1u << 19)

enum qcow2_compression { COMP_NONE, COMP_ZLIB, COMP_ZSTD };

struct dedup_slot {
  uint8_t digest[32];
  uint64_t entry;          /* L2 descriptor of the stored copy; 0 = empty */
};

struct qcow2_writer {
  /* qemu reads a qcow2 size down to whole sectors (raw ones up), so the
   * header gives it rounded up; the extra bytes read as zeros. */
  uint64_t header_size;
  /* Options, fixed once open() runs. */
  uint32_t cluster_size;
  unsigned cluster_bits;
  enum qcow2_compression compression;
  int level;
  bool level_set;
  bool dedup;
  char *backing_file;
  char *backing_format;

  uint64_t l2_entries;      /* entries per L2 table */
  uint64_t l1_size;
  uint64_t *l1;             /* host order; written at close */
  uint64_t *l2;             /* the table being filled */
  uint64_t l2_index;        /* its L1 index */
  bool l2_used;             /* has a non-zero entry */

  uint16_t *refcounts;      /* per host cluster */
  uint64_t refcount_alloc;

  uint64_t end;             /* bytes of the file so far (logical end) */
  uint8_t *pack;            /* the host cluster compressed data fills */
  uint64_t pack_host;       /* its offset, 0 = none open */
  size_t pack_len;          /* bytes used in it */
  uint8_t *wbuf;            /* pending appends, at end - wbuf_len */
  size_t wbuf_len;

  struct dedup_slot *dedup_table;
  uint64_t dedup_slots;     /* power of two, or 0 */
  uint64_t dedup_used;

  struct vab_reader *backing;
  uint8_t *backing_buf;     /* one cluster */
  uint8_t *pad_buf;         /* one cluster, for a short last block */
};

static const char *const qcow2_compressions[] = {"none", "zlib", "deflate",
                                                  "zstd", NULL};

/* docs/formats.md describes each; the order is the template's canonical
 * order (it feeds the template digest: keep it).  zlib's levels stop at 12 (libdeflate),
 * zstd's at 22 (ZSTD_maxCLevel), which check_options() tells apart. */
static const struct vab_option_spec qcow2_options[] = {
  {"compression", VAB_OPTION_ENUM, qcow2_compressions, 0, 0, "none", 0,
   "compressed clusters (deflate is zlib)"},
  {"level", VAB_OPTION_INT, NULL, 1, 22, NULL, 0,
   "compression level: zlib 1-12 (default 6), zstd 1-22 (default 3)"},
  {"dedup", VAB_OPTION_BOOL, NULL, 0, 0, "off", 0,
   "store identical clusters once"},
  {"cluster_size", VAB_OPTION_SIZE, NULL, 1u << QCOW2_MIN_CLUSTER_BITS,
   1u << QCOW2_MAX_CLUSTER_BITS, "65536", VAB_OPTION_POWER_OF_TWO,
   "cluster size, a power of two"},
  {"backing_file", VAB_OPTION_STRING, NULL, 0, 0, NULL,
   VAB_OPTION_NOT_IN_TEMPLATES, "an image the new one is an overlay of"},
  {"backing_fmt", VAB_OPTION_STRING, NULL, 0, 0, NULL,
   VAB_OPTION_NOT_IN_TEMPLATES, "the backing file's format"},
  {NULL, VAB_OPTION_STRING, NULL, 0, 0, NULL, 0, NULL},
};

static const char *option_value(const struct vab_option *options, size_t n,
                                const char *key, size_t *index) {
  const char *value = NULL;
  for (size_t i = 0; i < n; i++)
    if (strcmp(options[i].key, key) == 0) {
      value = options[i].value;  /* the last one wins, as in set_option */
      *index = i;
    }
  return value;
}

static int qcow2_check_options(const struct vab_option *options, size_t n,
                               struct vab_option_problem *p) {
  size_t at = 0, unused = 0;
  const char *comp = option_value(options, n, "compression", &unused);
  const char *level = option_value(options, n, "level", &at);
  if (level != NULL && comp != NULL &&
      (strcmp(comp, "zlib") == 0 || strcmp(comp, "deflate") == 0) &&
      atol(level) > 12) {
    p->index = at;
    p->code = VAB_E_USAGE;
    snprintf(p->message, sizeof p->message,
             "qcow2 level for zlib must be from 1 to 12, not %ld",
             atol(level));
    return -1;
  }
  if (option_value(options, n, "backing_fmt", &at) != NULL &&
      option_value(options, n, "backing_file", &unused) == NULL) {
    p->index = at;
    p->code = VAB_E_USAGE;
    snprintf(p->message, sizeof p->message,
             "qcow2 option backing_fmt needs backing_file");
    return -1;
  }
  return 0;
}

static struct qcow2_writer *qw_get(struct vab_writer *w) {
  if (w->priv == NULL) {
    struct qcow2_writer *q = calloc(1, sizeof *q);
    if (q == NULL)
      return NULL;
    q->cluster_size = 65536;
    q->cluster_bits = 16;
    w->priv = q;
  }
  return w->priv;
}

/* The values passed qcow2_options and qcow2_check_options(). */
static int qcow2_set_option(struct vab_writer *w,
                            const struct vab_option_value *v) {
  /* qcow2_compressions, in order. */
  static const enum qcow2_compression compressions[] = {
      COMP_NONE, COMP_ZLIB, COMP_ZLIB, COMP_ZSTD};
  struct qcow2_writer *q = qw_get(w);
  if (q == NULL)
    return vab_error(w->ctx, VAB_E_NOMEM, "out of memory");
  const char *key = v->spec->key;
  if (strcmp(key, "cluster_size") == 0) {
    unsigned bits = 0;
    while ((1ull << bits) < v->number)
      bits++;
    q->cluster_size = (uint32_t)v->number;
    q->cluster_bits = bits;
  } else if (strcmp(key, "compression") == 0) {
    q->compression = compressions[v->choice];
  } else if (strcmp(key, "level") == 0) {
    q->level = (int)v->number;
    q->level_set = true;
  } else if (strcmp(key, "dedup") == 0) {
    q->dedup = v->on;
  } else {
    /* backing_file, backing_fmt */
    bool is_file = strcmp(key, "backing_file") == 0;
    char **field = is_file ? &q->backing_file : &q->backing_format;
    free(*field);
    *field = strdup(v->text);
    if (*field == NULL)
      return vab_error(w->ctx, VAB_E_NOMEM, "out of memory");
  }
  return 0;
}

static int qcow2_open(struct vab_writer *w) {
  struct qcow2_writer *q = qw_get(w);
  if (q == NULL)
    return vab_error(w->ctx, VAB_E_NOMEM, "out of memory");
  if (w->sink->pwrite == NULL || w->sink->fd < 0)
    return vab_error(w->ctx, VAB_E_UNSUPPORTED,
                     "qcow2 needs a seekable output file");
  if (!q->level_set)
    q->level = q->compression == COMP_ZSTD ? 3 : 6;
  if (q->compression == COMP_ZLIB && q->level > 12)
    return vab_error(w->ctx, VAB_E_USAGE,
                     "qcow2 level for zlib must be from 1 to 12, not %d",
                     q->level);
  if (q->backing_format != NULL && q->backing_file == NULL)
    return vab_error(w->ctx, VAB_E_USAGE,
                     "qcow2 option backing_fmt needs backing_file");
  uint64_t cs = q->cluster_size;
  w->block_size = q->cluster_size;
  q->l2_entries = cs / 8;
  uint64_t coverage = cs * q->l2_entries;
  q->header_size = vab_writer_sector_size(w, "qcow2");
  q->l1_size = (q->header_size + coverage - 1) / coverage;
  if (q->l1_size * 8 > QCOW2_MAX_L1_BYTES)
    return vab_error(w->ctx, VAB_E_USAGE,
                     "a %llu-byte disk needs a larger qcow2 cluster_size "
                     "than %u",
                     (unsigned long long)w->virtual_size, q->cluster_size);
  if (q->backing_file != NULL) {
    size_t name_len = strlen(q->backing_file);
    size_t fmt_len = q->backing_format ? strlen(q->backing_format) : 0;
    size_t ext_len = fmt_len ? 8 + ((fmt_len + 7) & ~(size_t)7) : 0;
    if (name_len == 0 || name_len > QCOW2_MAX_BACKING_NAME ||
        QCOW2_HEADER_LENGTH + ext_len + 8 + name_len > cs)
      return vab_error(w->ctx, VAB_E_USAGE,
                       "qcow2 backing_file name '%s' is empty or too long "
                       "for cluster_size %u",
                       q->backing_file, q->cluster_size);
    /* Relative names are relative to the new image's folder, as qemu
     * reads them. */
    char *path = vab_image_relative_path(w->path, q->backing_file);
    if (path == NULL)
      return vab_error(w->ctx, VAB_E_NOMEM, "out of memory");
    int r = vab_image_open(w->ctx, path, q->backing_format, w->open_flags,
                           &q->backing);
    free(path);
    if (r < 0)
      return -1;
    if (q->backing_format == NULL) {
      q->backing_format = strdup(q->backing->format->name);
      if (q->backing_format == NULL)
        return vab_error(w->ctx, VAB_E_NOMEM, "out of memory");
    }
    q->backing_buf = malloc(cs);
    if (q->backing_buf == NULL)
      return vab_error(w->ctx, VAB_E_NOMEM, "out of memory");
  }
  q->l1 = calloc(q->l1_size ? q->l1_size : 1, sizeof *q->l1);
  q->l2 = calloc(q->l2_entries, sizeof *q->l2);
  q->wbuf = malloc(WRITE_BUFFER_SIZE);
  q->pad_buf = calloc(1, cs);
  q->pack = malloc(cs);
  q->refcount_alloc = 1024;
  q->refcounts = calloc(q->refcount_alloc, sizeof *q->refcounts);
  if (q->l1 == NULL || q->l2 == NULL || q->wbuf == NULL ||
      q->pad_buf == NULL || q->pack == NULL || q->refcounts == NULL)
    return vab_error(w->ctx, VAB_E_NOMEM, "out of memory");
  if (q->dedup) {
    q->dedup_slots = 4096;
    q->dedup_table = calloc(q->dedup_slots, sizeof *q->dedup_table);
    if (q->dedup_table == NULL)
      return vab_error(w->ctx, VAB_E_NOMEM, "out of memory");
  }
  /* Cluster 0 is the header, written at close. */
  q->refcounts[0] = 1;
  q->end = cs;
  return vab_sink_skip(w->sink, cs);
}

/* Worker threads: compress and hash one cluster. */
static int qcow2_encode(struct vab_writer *w, struct vab_block *b) {
  struct qcow2_writer *q = w->priv;
  const uint8_t *in = b->data;
  size_t cs = q->cluster_size;
  if (q->dedup) {
    struct blake2b_state h;
    uint8_t len_le[4];
    store_le32(len_le, (uint32_t)b->len);
    blake2b_init(&h, 32);
    blake2b_update(&h, in, b->len);
    blake2b_update(&h, len_le, sizeof len_le);
    blake2b_final(&h, b->digest);
  }
  b->out_len = 0;
  if (q->compression == COMP_NONE)
    return 0;
  if (b->len < cs) {
    /* The last cluster is compressed zero-padded, as it reads back. */
    in = vab_thread_zero_padded(in, b->len, cs);
    if (in == NULL)
      return vab_error(w->ctx, VAB_E_NOMEM, "out of memory");
  }
  size_t n = 0;
  if (q->compression == COMP_ZLIB) {
    struct libdeflate_compressor *deflate = vab_thread_deflate(q->level);
    if (deflate == NULL)
      return vab_error(w->ctx, VAB_E_NOMEM, "out of memory");
    /* Only a result smaller than a cluster is worth storing. */
    n = libdeflate_deflate_compress(deflate, in, cs, b->out, cs - 1);
  } else {
    ZSTD_CCtx *zstd = vab_thread_zstd();
    if (zstd == NULL)
      return vab_error(w->ctx, VAB_E_NOMEM, "out of memory");
    size_t r = ZSTD_compressCCtx(zstd, b->out, b->out_capacity, in, cs,
                                 q->level);
    if (ZSTD_isError(r))
      return vab_error(w->ctx, VAB_E_INTERNAL, "zstd compression failed: %s",
                       ZSTD_getErrorName(r));
    n = r < cs ? r : 0;
  }
  b->out_len = n;
  return 0;
}

/* Appending to the file. */

static int flush_wbuf(struct vab_writer *w) {
  struct qcow2_writer *q = w->priv;
  if (q->wbuf_len == 0)
    return 0;
  int r = vab_sink_write(w->sink, q->wbuf, q->wbuf_len);
  q->wbuf_len = 0;
  return r;
}

/* Append len bytes of data, or of zeros when data is NULL. */
static int append(struct vab_writer *w, const void *data, size_t len) {
  struct qcow2_writer *q = w->priv;
  if (data != NULL && len >= WRITE_BUFFER_SIZE) {
    if (flush_wbuf(w) < 0)
      return -1;
    q->end += len;
    return vab_sink_write(w->sink, data, len);
  }
  while (len > 0) {
    if (q->wbuf_len == WRITE_BUFFER_SIZE && flush_wbuf(w) < 0)
      return -1;
    size_t n = WRITE_BUFFER_SIZE - q->wbuf_len;
    if (n > len)
      n = len;
    if (data != NULL)
      memcpy(q->wbuf + q->wbuf_len, data, n);
    else
      memset(q->wbuf + q->wbuf_len, 0, n);
    q->wbuf_len += n;
    q->end += n;
    len -= n;
    if (data != NULL)
      data = (const uint8_t *)data + n;
  }
  return 0;
}

static int refcounts_reserve(struct vab_writer *w, uint64_t clusters) {
  struct qcow2_writer *q = w->priv;
  if (clusters <= q->refcount_alloc)
    return 0;
  uint64_t n = q->refcount_alloc;
  while (n < clusters)
    n *= 2;
  uint16_t *p = realloc(q->refcounts, n * sizeof *p);
  if (p == NULL)
    return vab_error(w->ctx, VAB_E_NOMEM, "out of memory");
  memset(p + q->refcount_alloc, 0, (n - q->refcount_alloc) * sizeof *p);
  q->refcounts = p;
  q->refcount_alloc = n;
  return 0;
}

/* Add one reference to each host cluster in [host, host + len). */
static int add_refs(struct vab_writer *w, uint64_t host, uint64_t len) {
  struct qcow2_writer *q = w->priv;
  uint64_t first = host >> q->cluster_bits;
  uint64_t last = (host + len - 1) >> q->cluster_bits;
  if (refcounts_reserve(w, last + 1) < 0)
    return -1;
  for (uint64_t c = first; c <= last; c++) {
    if (q->refcounts[c] == QCOW2_REFCOUNT_MAX)
      return vab_error(w->ctx, VAB_E_INTERNAL, "qcow2 refcount overflow");
    q->refcounts[c]++;
  }
  return 0;
}

static bool refs_below_max(struct qcow2_writer *q, uint64_t host,
                           uint64_t len) {
  uint64_t first = host >> q->cluster_bits;
  uint64_t last = (host + len - 1) >> q->cluster_bits;
  for (uint64_t c = first; c <= last; c++)
    if (c < q->refcount_alloc && q->refcounts[c] >= QCOW2_REFCOUNT_MAX)
      return false;
  return true;
}

/* Pad to the next cluster boundary, so a plain cluster can start there. */
static int align_end(struct vab_writer *w) {
  struct qcow2_writer *q = w->priv;
  uint64_t rem = q->end & (q->cluster_size - 1);
  return rem ? append(w, NULL, q->cluster_size - rem) : 0;
}

/* Append one cluster-aligned cluster (data may be short: zero-padded). */
static int store_plain(struct vab_writer *w, const void *data, size_t len,
                       uint64_t *entry) {
  struct qcow2_writer *q = w->priv;
  if (align_end(w) < 0)
    return -1;
  uint64_t host = q->end;
  if (append(w, data, len) < 0 ||
      (len < q->cluster_size && append(w, NULL, q->cluster_size - len) < 0) ||
      add_refs(w, host, q->cluster_size) < 0)
    return -1;
  *entry = host;
  return 0;
}

/* Reserve the next cluster of the file for compressed data, as a hole
 * for now: it is written when full (or at close). */
static int reserve_pack_cluster(struct vab_writer *w) {
  struct qcow2_writer *q = w->priv;
  if (align_end(w) < 0 || flush_wbuf(w) < 0 ||
      vab_sink_skip(w->sink, q->cluster_size) < 0)
    return -1;
  q->pack_host = q->end;
  q->pack_len = 0;
  q->end += q->cluster_size;
  return 0;
}

static int flush_pack(struct vab_writer *w) {
  struct qcow2_writer *q = w->priv;
  if (q->pack_host == 0)
    return 0;
  uint64_t host = q->pack_host;
  q->pack_host = 0;
  if (q->pack_len == 0)
    return 0;
  return vab_sink_pwrite(w->sink, q->pack, q->pack_len, host);
}

/* Pack compressed bytes after the previous ones, in the host cluster kept
 * open for them, as qemu does: plain clusters and L2 tables written in
 * between go after it, and a later payload that still fits fills it up.
 * A payload may continue into the next host cluster only if that cluster
 * is the next one in the file.  *entry is 0 if the payload cannot be
 * described (then the caller stores the cluster plain). */
static int store_compressed(struct vab_writer *w, const void *data,
                            size_t len, uint64_t *entry) {
  struct qcow2_writer *q = w->priv;
  uint64_t cs = q->cluster_size;
  *entry = 0;
  /* A host cluster at the refcount limit takes no more pieces. */
  if (q->pack_host != 0 && !refs_below_max(q, q->pack_host, 1) &&
      flush_pack(w) < 0)
    return -1;
  if (q->pack_host != 0 && q->pack_len + len > cs &&
      q->pack_host + cs != q->end && flush_pack(w) < 0)
    return -1;
  if (q->pack_host == 0 && reserve_pack_cluster(w) < 0)
    return -1;
  uint64_t host = q->pack_host + q->pack_len;
  if (!qcow2_compressed_entry(host, len, q->cluster_bits, entry)) {
    *entry = 0;
    return 0;
  }
  if (add_refs(w, host, len) < 0)
    return -1;
  const uint8_t *p = data;
  size_t first = cs - q->pack_len < len ? (size_t)(cs - q->pack_len) : len;
  memcpy(q->pack + q->pack_len, p, first);
  q->pack_len += first;
  if (q->pack_len == cs) {
    if (flush_pack(w) < 0)
      return -1;
    if (first < len) {
      /* The spill: the cluster right after, which is the file's end. */
      if (reserve_pack_cluster(w) < 0)
        return -1;
      memcpy(q->pack, p + first, len - first);
      q->pack_len = len - first;
    }
  }
  return 0;
}

/* Host clusters an L2 descriptor references, as [host, host + len). */
static void entry_range(struct qcow2_writer *q, uint64_t entry,
                        uint64_t *host, uint64_t *len) {
  if (entry & QCOW2_OFLAG_COMPRESSED) {
    qcow2_compressed_range(entry, q->cluster_bits, host, len);
  } else {
    *host = entry & QCOW2_L2E_OFFSET_MASK;
    *len = q->cluster_size;
  }
}

static struct dedup_slot *dedup_find(struct qcow2_writer *q,
                                     const uint8_t *digest) {
  uint64_t mask = q->dedup_slots - 1;
  uint64_t i;
  memcpy(&i, digest, sizeof i);
  for (i &= mask;; i = (i + 1) & mask) {
    struct dedup_slot *s = &q->dedup_table[i];
    if (s->entry == 0 || memcmp(s->digest, digest, 32) == 0)
      return s;
  }
}

static int dedup_grow(struct vab_writer *w) {
  struct qcow2_writer *q = w->priv;
  uint64_t old_slots = q->dedup_slots;
  struct dedup_slot *old = q->dedup_table;
  struct dedup_slot *table = calloc(old_slots * 2, sizeof *table);
  if (table == NULL)
    return vab_error(w->ctx, VAB_E_NOMEM, "out of memory");
  q->dedup_table = table;
  q->dedup_slots = old_slots * 2;
  for (uint64_t i = 0; i < old_slots; i++)
    if (old[i].entry != 0)
      *dedup_find(q, old[i].digest) = old[i];
  free(old);
  return 0;
}

static int dedup_remember(struct vab_writer *w, const uint8_t *digest,
                          uint64_t entry) {
  struct qcow2_writer *q = w->priv;
  struct dedup_slot *s = dedup_find(q, digest);
  if (s->entry == 0) {
    if ((q->dedup_used + 1) * 4 > q->dedup_slots * 3) {
      if (q->dedup_slots >= DEDUP_MAX_SLOTS)
        return 0;  /* full: this cluster is just not shared later */
      if (dedup_grow(w) < 0)
        return -1;
      s = dedup_find(q, digest);
    }
    q->dedup_used++;
    memcpy(s->digest, digest, 32);
  }
  s->entry = entry;
  return 0;
}

static int flush_l2(struct vab_writer *w) {
  struct qcow2_writer *q = w->priv;
  if (!q->l2_used)
    return 0;
  size_t n = (size_t)q->l2_entries;
  uint8_t *table = (uint8_t *)q->l2;
  /* In place to big-endian; COPIED for plain clusters referenced once. */
  for (size_t i = 0; i < n; i++) {
    uint64_t e = q->l2[i];
    if (e != 0 && !(e & QCOW2_OFLAG_COMPRESSED) &&
        (e & QCOW2_L2E_OFFSET_MASK) != 0 &&
        q->refcounts[(e & QCOW2_L2E_OFFSET_MASK) >> q->cluster_bits] == 1)
      e |= QCOW2_OFLAG_COPIED;
    store_be64(table + 8 * i, e);
  }
  if (align_end(w) < 0)
    return -1;
  uint64_t host = q->end;
  if (append(w, table, q->cluster_size) < 0 ||
      add_refs(w, host, q->cluster_size) < 0)
    return -1;
  q->l1[q->l2_index] = host | QCOW2_OFLAG_COPIED;
  memset(q->l2, 0, q->cluster_size);
  q->l2_used = false;
  return 0;
}

/* With a backing file, is this block what the backing file already
 * reads?  Then the cluster stays unallocated. */
static int same_as_backing(struct vab_writer *w, const struct vab_block *b,
                           bool *same) {
  struct qcow2_writer *q = w->priv;
  uint64_t bsize = q->backing->info.virtual_size;
  *same = false;
  if (b->offset >= bsize) {
    *same = b->is_zero;
    return 0;
  }
  size_t n = bsize - b->offset < b->len ? (size_t)(bsize - b->offset) : b->len;
  if (vab_image_pread(q->backing, q->backing_buf, n, b->offset) < 0)
    return -1;
  if (n < b->len)
    memset(q->backing_buf + n, 0, b->len - n);
  if (b->is_zero)
    *same = vab_buffer_is_zero(q->backing_buf, b->len);
  else
    *same = memcmp(q->backing_buf, b->data, b->len) == 0;
  return 0;
}

static int qcow2_put(struct vab_writer *w, const struct vab_block *b) {
  struct qcow2_writer *q = w->priv;
  uint64_t cluster = b->offset >> q->cluster_bits;
  uint64_t l1_index = cluster / q->l2_entries;
  size_t l2_slot = (size_t)(cluster % q->l2_entries);
  if (l1_index != q->l2_index) {
    if (flush_l2(w) < 0)
      return -1;
    q->l2_index = l1_index;
  }
  if (q->backing != NULL) {
    bool same;
    if (same_as_backing(w, b, &same) < 0)
      return -1;
    if (same)
      return 0;
    if (b->is_zero) {
      q->l2[l2_slot] = QCOW2_OFLAG_ZERO;
      q->l2_used = true;
      return 0;
    }
  } else if (b->is_zero) {
    return 0;
  }

  if (q->dedup) {
    const struct dedup_slot *known = dedup_find(q, b->digest);
    if (known->entry != 0) {
      uint64_t host, len;
      entry_range(q, known->entry, &host, &len);
      if (refs_below_max(q, host, len)) {
        if (add_refs(w, host, len) < 0)
          return -1;
        q->l2[l2_slot] = known->entry;
        q->l2_used = true;
        w->dedup_bytes += b->len;
        return 0;
      }
    }
  }
  uint64_t entry = 0;
  if (b->out_len > 0) {
    if (store_compressed(w, b->out, b->out_len, &entry) < 0)
      return -1;
    if (entry != 0)
      w->stored_bytes += b->out_len;
  }
  if (entry == 0) {
    if (store_plain(w, b->data, b->len, &entry) < 0)
      return -1;
    w->stored_bytes += q->cluster_size;
  }
  q->l2[l2_slot] = entry;
  q->l2_used = true;
  if (q->dedup && dedup_remember(w, b->digest, entry) < 0)
    return -1;
  return 0;
}

/* Dedup may have shared a cluster after its L2 table was written with
 * COPIED set: clear COPIED wherever the final refcount is not 1. */
static int fix_copied_flags(struct vab_writer *w) {
  struct qcow2_writer *q = w->priv;
  uint8_t *table = (uint8_t *)q->l2;
  for (uint64_t i = 0; i < q->l1_size; i++) {
    uint64_t l2_host = q->l1[i] & QCOW2_L1E_OFFSET_MASK;
    if (l2_host == 0)
      continue;
    ssize_t n = pread(w->sink->fd, table, q->cluster_size, (off_t)l2_host);
    if (n != (ssize_t)q->cluster_size)
      return vab_error_errno(w->ctx, VAB_E_IO, n < 0 ? errno : EIO,
                             "cannot reread the L2 table at %llu",
                             (unsigned long long)l2_host);
    bool changed = false;
    for (uint64_t k = 0; k < q->l2_entries; k++) {
      uint64_t e = load_be64(table + 8 * k);
      if (!(e & QCOW2_OFLAG_COPIED))
        continue;
      uint64_t host = e & QCOW2_L2E_OFFSET_MASK;
      if (q->refcounts[host >> q->cluster_bits] != 1) {
        store_be64(table + 8 * k, e & ~QCOW2_OFLAG_COPIED);
        changed = true;
      }
    }
    if (changed &&
        vab_sink_pwrite(w->sink, table, q->cluster_size, l2_host) < 0)
      return -1;
  }
  return 0;
}

static int write_header(struct vab_writer *w, uint64_t l1_offset,
                        uint64_t reftable_offset, uint64_t reftable_clusters) {
  struct qcow2_writer *q = w->priv;
  uint8_t *h = calloc(1, q->cluster_size);
  if (h == NULL)
    return vab_error(w->ctx, VAB_E_NOMEM, "out of memory");
  store_be32(h + 0, QCOW2_MAGIC);
  store_be32(h + 4, 3);
  store_be32(h + 20, q->cluster_bits);
  store_be64(h + 24, q->header_size);
  store_be32(h + 36, (uint32_t)q->l1_size);
  store_be64(h + 40, l1_offset);
  store_be64(h + 48, reftable_offset);
  store_be32(h + 56, (uint32_t)reftable_clusters);
  uint64_t incompatible = 0;
  if (q->compression == COMP_ZSTD) {
    incompatible |= QCOW2_INCOMPAT_COMPRESSION;
    h[104] = QCOW2_COMPRESSION_ZSTD;
  }
  store_be64(h + 72, incompatible);
  store_be32(h + 96, QCOW2_REFCOUNT_ORDER);
  store_be32(h + 100, QCOW2_HEADER_LENGTH);
  size_t pos = QCOW2_HEADER_LENGTH;
  if (q->backing_format != NULL) {
    size_t len = strlen(q->backing_format);
    store_be32(h + pos, QCOW2_EXT_BACKING_FORMAT);
    store_be32(h + pos + 4, (uint32_t)len);
    memcpy(h + pos + 8, q->backing_format, len);
    pos += 8 + ((len + 7) & ~(size_t)7);
  }
  pos += 8;  /* end of extensions: type 0, length 0 */
  if (q->backing_file != NULL) {
    size_t len = strlen(q->backing_file);
    store_be64(h + 8, pos);
    store_be32(h + 16, (uint32_t)len);
    memcpy(h + pos, q->backing_file, len);
  }
  int r = vab_sink_pwrite(w->sink, h, q->cluster_size, 0);
  free(h);
  return r;
}

static int qcow2_close(struct vab_writer *w) {
  struct qcow2_writer *q = w->priv;
  uint64_t cs = q->cluster_size;
  if (flush_l2(w) < 0 || flush_pack(w) < 0 || align_end(w) < 0)
    return -1;

  /* L1 table. */
  uint64_t l1_offset = q->end;
  uint64_t l1_bytes = q->l1_size * 8;
  uint64_t l1_clusters = (l1_bytes + cs - 1) / cs;
  if (l1_clusters == 0)
    l1_clusters = 1;
  uint8_t be[8];
  for (uint64_t i = 0; i < q->l1_size; i++) {
    store_be64(be, q->l1[i]);
    if (append(w, be, 8) < 0)
      return -1;
  }
  if (align_end(w) < 0 || (l1_bytes == 0 && append(w, NULL, cs) < 0) ||
      add_refs(w, l1_offset, l1_clusters * cs) < 0)
    return -1;

  /* Refcount table and blocks, which must count themselves too. */
  uint64_t used = q->end / cs;
  uint64_t per_block = cs / 2;
  uint64_t total = used, blocks, table_clusters;
  for (;;) {
    blocks = (total + per_block - 1) / per_block;
    table_clusters = (blocks * 8 + cs - 1) / cs;
    uint64_t next = used + table_clusters + blocks;
    if (next <= total)
      break;
    total = next;
  }
  uint64_t reftable_offset = q->end;
  uint64_t blocks_offset = reftable_offset + table_clusters * cs;
  if (add_refs(w, reftable_offset, (table_clusters + blocks) * cs) < 0)
    return -1;
  for (uint64_t i = 0; i < blocks; i++) {
    store_be64(be, blocks_offset + i * cs);
    if (append(w, be, 8) < 0)
      return -1;
  }
  if (align_end(w) < 0)
    return -1;
  uint8_t *block = malloc(cs);
  if (block == NULL)
    return vab_error(w->ctx, VAB_E_NOMEM, "out of memory");
  uint64_t clusters = q->end / cs + blocks;
  for (uint64_t i = 0; i < blocks; i++) {
    memset(block, 0, cs);
    for (uint64_t k = 0; k < per_block; k++) {
      uint64_t c = i * per_block + k;
      if (c < clusters && c < q->refcount_alloc)
        store_be16(block + 2 * k, q->refcounts[c]);
    }
    if (append(w, block, cs) < 0) {
      free(block);
      return -1;
    }
  }
  free(block);
  if (flush_wbuf(w) < 0)
    return -1;
  if (q->dedup && fix_copied_flags(w) < 0)
    return -1;
  return write_header(w, l1_offset, reftable_offset, table_clusters);
}

static void qcow2_free(struct vab_writer *w) {
  struct qcow2_writer *q = w->priv;
  if (q == NULL)
    return;
  vab_image_close(q->backing);
  free(q->backing_file);
  free(q->backing_format);
  free(q->backing_buf);
  free(q->l1);
  free(q->l2);
  free(q->refcounts);
  free(q->wbuf);
  free(q->pad_buf);
  free(q->pack);
  free(q->dedup_table);
  free(q);
  w->priv = NULL;
}

/* The reader half is qcow2-read.c, its check qcow2-check.c. */
const struct vab_format vab_format_qcow2 = {
  .name = "qcow2",
  .extension = "qcow2",
  .description = "QEMU copy-on-write v3: compression, dedup, backing files",
  .caps = VAB_FMT_READ | VAB_FMT_WRITE | VAB_FMT_SPARSE | VAB_FMT_COMPRESS |
          VAB_FMT_DEDUP | VAB_FMT_BACKING,
  .options = qcow2_options,
  .check_options = qcow2_check_options,
  .set_option = qcow2_set_option,
  .open = qcow2_open,
  .encode = qcow2_encode,
  .put = qcow2_put,
  .close = qcow2_close,
  .free = qcow2_free,
  .probe = qcow2_probe,
  .reader_open = qcow2_reader_open,
  .block_status = qcow2_block_status,
  .pread = qcow2_pread,
  .check = qcow2_check,
  .reader_close = qcow2_reader_close,
};
