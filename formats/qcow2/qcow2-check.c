/* qcow2 metadata check: recount every reference the image holds (header,
 * tables, data and compressed clusters, internal snapshots) and compare
 * with the stored refcounts, as qemu-img check does.  It walks the image
 * with the reader's calls (qcow2-reader.h) in quiet mode, so that what it
 * finds is counted and logged, and the caller's diagnostics stay as they
 * were. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vab/format.h"
#include "vab/progress.h"
#include "formats/qcow2/qcow2.h"
#include "formats/qcow2/qcow2-reader.h"

/* check() keeps a 16-bit count per host cluster of the file. */
#define CHECK_MAX_CLUSTERS (1ull << 26)

struct check_state {
  struct vab_reader *r;
  struct vab_check_result *res;
  uint16_t *counts;        /* references per host cluster, saturating */
  uint64_t n_clusters;     /* of the file */
  struct qcow2_key_set seen;  /* compressed descriptors met */
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
  return qcow2_key_set_add(&cs->seen, entry) == QCOW2_KEY_SEEN;
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
                  : qcow2_read_exact(r, block, q->cluster_size, off,
                                     "refcount block");
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
    enum qcow2_cluster_kind kind;
    if (qcow2_l2_entry(r, cluster, &entry) < 0)
      return -1;
    if (entry == 0)
      continue;
    cs->res->checked++;
    q->quiet = true;
    int ret = qcow2_classify(r, cluster, entry, &kind, &host);
    q->quiet = false;
    if (ret < 0) {
      report(cs, "%s", q->quiet_msg);
      cs->res->errors++;
      continue;
    }
    if (kind == QCOW2_KIND_COMPRESSED) {
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
      if (kind == QCOW2_KIND_NORMAL) {
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
      int ret = qcow2_l2_entry(r, i * q->l2_entries + k, &entry);
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
                   r->path, QCOW2_WORK_BUDGET_FACTOR);
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
  int rc = qcow2_read_exact(r, l1, l1_size * 8, l1_offset,
                            "snapshot L1 table");
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
    rc = qcow2_read_exact(r, table, q->cluster_size, l2_offset,
                          "snapshot L2 table");
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
    return qcow2_corrupt(r, 60, "snapshot table count or offset is invalid");
  uint8_t *table = malloc(q->cluster_size);
  if (table == NULL)
    return vab_error(r->ctx, VAB_E_NOMEM, "out of memory");
  cs->snapshot_budget = qcow2_work_budget(r);
  uint64_t at = q->snapshots_offset;
  int rc = 0;
  for (unsigned i = 0; rc == 0 && i < q->nb_snapshots; i++) {
    uint8_t fixed[40];
    if ((rc = qcow2_read_exact(r, fixed, sizeof fixed, at,
                               "snapshot table")) < 0)
      break;
    uint64_t l1_offset = load_be64(fixed);
    uint32_t l1_size = load_be32(fixed + 8);
    uint32_t id_len = load_be16(fixed + 12);
    uint32_t name_len = load_be16(fixed + 14);
    uint32_t extra_len = load_be32(fixed + 36);
    if (extra_len > SNAPSHOT_MAX_EXTRA) {
      rc = qcow2_corrupt(r, at + 36,
                         "snapshot extra data is larger than 1 KiB");
      break;
    }
    /* The last entry's padding need not be in the file. */
    uint64_t end = at + sizeof fixed + extra_len + id_len + name_len;
    if (end - q->snapshots_offset > SNAPSHOT_TABLE_MAX || end > r->file_size) {
      rc = qcow2_corrupt(r, at,
                         "snapshot table runs past the end of the file");
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
  qcow2_key_set_init(&cs->seen, r->file_size);
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
  if (qcow2_read_exact(r, reftable, reftable_bytes, q->reftable_offset,
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
  free(cs->seen.slots);
  free(cs->one);
  free(reftable);
  free(block);
  return rc;
}

