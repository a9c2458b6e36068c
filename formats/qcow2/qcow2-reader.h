/* Private to formats/qcow2: the reader's state and the few reader calls
 * that the metadata check (qcow2-check.c) walks the image with.  The
 * format's callbacks at the end are what qcow2-write.c registers. */
#ifndef VAB_FORMATS_QCOW2_READER_H
#define VAB_FORMATS_QCOW2_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libdeflate.h>
#include <zstd.h>

#include "vab/format.h"

/* L2 tables kept in memory: enough for sequential reads and a little
 * jumping around, bounded in bytes for 2 MiB clusters. */
#define QCOW2_L2_CACHE_BYTES (4u << 20)
#define QCOW2_L2_CACHE_MAX 16
/* Work a hostile image can make the reader or the check do beyond what
 * its own size explains (tables or clusters shared many times over): at
 * most this many times the file's size, and at least WORK_BUDGET_MIN. */
#define QCOW2_WORK_BUDGET_FACTOR 64u
#define QCOW2_WORK_BUDGET_MIN (1ull << 30)

struct qcow2_l2_cache_entry {
  uint64_t offset;   /* host offset of the table, 0 = empty */
  uint64_t *table;   /* host-order entries */
};

/* A set of non-zero 64-bit keys with open addressing, sized once from
 * the file's size and never grown: past 3/4 full it refuses new keys. */
struct qcow2_key_set {
  uint64_t *slots;
  uint64_t n_slots, used;
};

enum qcow2_key_set_added { QCOW2_KEY_NEW, QCOW2_KEY_SEEN, QCOW2_KEY_FULL };

/* Allocate the slots for a file of file_size bytes; on failure slots
 * stay NULL and every add answers QCOW2_KEY_FULL. */
void qcow2_key_set_init(struct qcow2_key_set *set, uint64_t file_size);
enum qcow2_key_set_added qcow2_key_set_add(struct qcow2_key_set *set,
                                           uint64_t key);

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

  struct qcow2_l2_cache_entry cache[QCOW2_L2_CACHE_MAX];
  unsigned cache_size;
  unsigned cache_next;

  uint8_t *cbuf;            /* compressed bytes, 2 clusters */
  uint8_t *dbuf;            /* one decompressed cluster */
  uint64_t dbuf_entry;      /* entry dbuf holds, 0 = none */
  bool dbuf_zero;           /* dbuf is all zero */
  uint64_t zero_budget;     /* bytes of zeros left to reread from clusters */
  struct qcow2_key_set zero_seen;  /* host offsets + 1 of all-zero clusters */
  struct libdeflate_decompressor *inflater;
  ZSTD_DCtx *zstd;
  bool quiet;               /* check(): keep errors in quiet_msg */
  char quiet_msg[512];
};

enum qcow2_cluster_kind {
  QCOW2_KIND_UNALLOCATED,
  QCOW2_KIND_ZERO,
  QCOW2_KIND_NORMAL,
  QCOW2_KIND_COMPRESSED,
};

/* The reader's bound on extra work for this file (see above). */
uint64_t qcow2_work_budget(const struct vab_reader *r);

/* A VAB_E_FORMAT error naming the file, what is wrong and the offset
 * (kept in quiet_msg instead while q->quiet is set). */
int qcow2_corrupt(struct vab_reader *r, uint64_t offset, const char *what);

/* Read exactly len bytes at offset, which must lie inside the file. */
int qcow2_read_exact(struct vab_reader *r, void *buf, size_t len,
                     uint64_t offset, const char *what);

/* The L2 entry of a guest cluster (0 if unallocated). */
int qcow2_l2_entry(struct vab_reader *r, uint64_t cluster, uint64_t *entry);

/* What a non-zero L2 entry maps, and (but for compressed ones) where. */
int qcow2_classify(struct vab_reader *r, uint64_t cluster, uint64_t entry,
                   enum qcow2_cluster_kind *kind, uint64_t *host);

/* The reader callbacks (qcow2-read.c) and the check (qcow2-check.c). */
bool qcow2_probe(const uint8_t *head, size_t len, uint64_t file_size);
int qcow2_reader_open(struct vab_reader *r);
int qcow2_block_status(struct vab_reader *r, uint64_t offset, uint64_t len,
                       uint64_t *run, bool *is_zero);
int qcow2_pread(struct vab_reader *r, void *buf, size_t len, uint64_t offset);
int qcow2_check(struct vab_reader *r, struct vab_check_result *result);
void qcow2_reader_close(struct vab_reader *r);

#endif
