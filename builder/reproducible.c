/* Reproducible builds (see reproducible.h).
 *
 * The normalisation runs e2fsprogs on the host against the root partition
 * of the raw work disk ("disk.raw?offset=N", the unix I/O manager's offset
 * option), with E2FSPROGS_FAKE_TIME and E2FSCK_TIME at the epoch so that
 * the tools' own writes (last write, last check) are stamped with it:
 *   1. dumpe2fs lists the free inodes of each group: the others are used;
 *   2. debugfs stats every used inode (its mtime, to clamp it);
 *   3. debugfs sets each one's atime, ctime and crtime to the epoch, its
 *      mtime to the epoch when it is later, and its generation (drawn at
 *      random by the kernel) from the seed;
 *   4. tune2fs removes the journal (its blocks held the builder VM's
 *      transactions) and adds an empty one;
 *   5. debugfs resets the superblock's mount count, times, write counter
 *      and last mount point;
 *   6. e2fsck -fy rewrites the directory and extent block checksums, which
 *      the generations seed;
 *   7. debugfs clears the free inodes that held files (old times and
 *      generations), found by a second dumpe2fs; a second e2fsck
 *      (-E discard) then finds the
 *      file system clean and punches out every free block, so that stale
 *      data of deleted files is zeros (holes) in both builds.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vab/progress.h"
#include "common/blake2b.h"
#include "common/buf.h"
#include "common/crc32c.h"
#include "common/endian.h"
#include "common/subprocess.h"
#include "builder/reproducible.h"

#define EXT4_SB_OFFSET 1024
#define EXT4_SB_SIZE 1024
#define EXT4_SB_MAGIC 0x38
#define EXT4_SB_RO_COMPAT 0x64
#define EXT4_SB_HASH_SEED 0xec
#define EXT4_SB_CHECKSUM 0x3fc
#define EXT4_MAGIC 0xef53
#define EXT4_RO_COMPAT_METADATA_CSUM 0x400

static void derive(const char *seed, const char *what, uint8_t *out,
                   size_t len) {
  struct blake2b_state h;
  blake2b_init(&h, len);
  blake2b_update(&h, "vab reproducible\0", 17);
  blake2b_update(&h, seed, strlen(seed) + 1);
  blake2b_update(&h, what, strlen(what) + 1);
  blake2b_final(&h, out);
}

void vab_repro_uuid(const char *seed, const char *what, char out[37]) {
  uint8_t b[16];
  derive(seed, what, b, sizeof b);
  b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);  /* version 4: looks random */
  b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);  /* RFC 4122 variant */
  snprintf(out, 37,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
           "%02x%02x%02x%02x%02x%02x",
           b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
           b[11], b[12], b[13], b[14], b[15]);
}

uint32_t vab_repro_u32(const char *seed, const char *what) {
  uint8_t b[4];
  derive(seed, what, b, sizeof b);
  return load_le32(b);
}

static int parse_uuid(const char *text, uint8_t out[16]) {
  size_t n = 0;
  for (const char *p = text; *p != '\0'; p++) {
    if (*p == '-')
      continue;
    unsigned v;
    if (n == 16 || sscanf(p, "%2x", &v) != 1 || p[1] == '\0')
      return -1;
    out[n++] = (uint8_t)v;
    p++;
  }
  return n == 16 ? 0 : -1;
}

int vab_repro_ext4_sb_hash_seed(uint8_t *sb, const char *uuid) {
  uint8_t seed[16];
  if (parse_uuid(uuid, seed) < 0 || load_le16(sb + EXT4_SB_MAGIC) != EXT4_MAGIC)
    return -1;
  memcpy(sb + EXT4_SB_HASH_SEED, seed, sizeof seed);
  /* ext4 stores the running CRC-32C of the bytes before the field. */
  if (load_le32(sb + EXT4_SB_RO_COMPAT) & EXT4_RO_COMPAT_METADATA_CSUM)
    store_le32(sb + EXT4_SB_CHECKSUM,
               crc32c_update(0xffffffffu, sb, EXT4_SB_CHECKSUM));
  return 0;
}

int vab_repro_ext4_hash_seed(struct vab_ctx *ctx, struct vab_guest *g,
                             const char *device, const char *uuid) {
  uint8_t sb[EXT4_SB_SIZE];
  if (vab_guest_pread_device(g, device, sb, sizeof sb, EXT4_SB_OFFSET) < 0)
    return -1;
  if (vab_repro_ext4_sb_hash_seed(sb, uuid) < 0)
    return vab_error(ctx, VAB_E_GUEST, "%s: no ext4 superblock at offset %d "
                     "(or '%s' is not a UUID)", device, EXT4_SB_OFFSET, uuid);
  return vab_guest_pwrite_device(g, device, sb, sizeof sb, EXT4_SB_OFFSET);
}

int vab_repro_vfat_volume_id(struct vab_ctx *ctx, struct vab_guest *g,
                             const char *device, uint32_t id) {
  uint8_t bs[512];
  if (vab_guest_pread_device(g, device, bs, sizeof bs, 0) < 0)
    return -1;
  if (bs[510] != 0x55 || bs[511] != 0xaa)
    return vab_error(ctx, VAB_E_GUEST, "%s: no FAT boot sector", device);
  /* FAT32 (BPB_FATSz16 = 0) keeps BS_VolID at 67 and a backup boot
   * sector (BPB_BkBootSec); FAT12/16 at 39. */
  bool fat32 = load_le16(bs + 22) == 0;
  uint8_t le[4];
  store_le32(le, id);
  if (vab_guest_pwrite_device(g, device, le, 4, fat32 ? 67 : 39) < 0)
    return -1;
  uint16_t backup = fat32 ? load_le16(bs + 50) : 0;
  if (backup != 0 && backup != 0xffff &&
      vab_guest_pwrite_device(g, device, le, 4, (int64_t)backup * 512 + 67) <
          0)
    return -1;
  return 0;
}

int vab_repro_epoch(struct vab_ctx *ctx, bool *set, int64_t *epoch) {
  const char *text = getenv("SOURCE_DATE_EPOCH");
  *set = false;
  *epoch = 0;
  if (text == NULL || *text == '\0')
    return 0;
  char *end = NULL;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (errno != 0 || *end != '\0' || v < 0)
    return vab_error(ctx, VAB_E_USAGE,
                     "SOURCE_DATE_EPOCH='%s' is not a whole number of seconds",
                     text);
  *set = true;
  *epoch = v;
  return 0;
}

/* One e2fsprogs run. */
struct tool_run {
  struct vab_ctx *ctx;
  char **env;
  void (*line)(void *opaque, const char *line);
  void *opaque;
  char tail[1024];     /* the last lines, for an error */
};

static void keep_tail(struct tool_run *t, const char *line) {
  text_keep_tail(t->tail, sizeof t->tail, line);
}

static void on_tool_line(void *opaque, const char *line) {
  struct tool_run *t = opaque;
  if (t->line != NULL)
    t->line(t->opaque, line);
  else
    keep_tail(t, line);
}

static int tool_cancel(void *opaque) {
  struct tool_run *t = opaque;
  return vab_cancelled(t->ctx);
}

/* Run argv; *exit_status gets its exit status (a signal is an error).
 * ok_max: the highest exit status that is not an error. */
static int run_tool(struct tool_run *t, const char *const *argv, int ok_max,
                    int *exit_status) {
  struct subprocess proc;
  struct subprocess_opts opts = SUBPROCESS_OPTS_INIT;
  opts.envp = t->env;
  t->tail[0] = '\0';
  vab_log(t->ctx, VAB_LOG_DEBUG, "reproducible: %s %s", argv[0], argv[1]);
  if (subprocess_start(&proc, (char *const *)argv, &opts) < 0)
    return vab_error_errno(t->ctx, VAB_E_SUBPROCESS, errno,
                           "cannot start %s", argv[0]);
  int status = 0;
  if (subprocess_wait(&proc, on_tool_line, t, tool_cancel, t, 0, &status) <
      0) {
    if (errno == ECANCELED)
      return vab_error(t->ctx, VAB_E_CANCELLED, "interrupted during %s",
                       argv[0]);
    return vab_error_errno(t->ctx, VAB_E_SUBPROCESS, errno,
                           "waiting for %s failed", argv[0]);
  }
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (exit_status != NULL)
    *exit_status = code;
  if (code < 0 || code > ok_max) {
    char how[128];
    subprocess_describe_status(status, how, sizeof how);
    return vab_error(t->ctx, VAB_E_SUBPROCESS,
                     "normalising the root file system for a reproducible "
                     "build: %s failed (%s)%s%s", argv[0], how,
                     t->tail[0] != '\0' ? ": " : "", t->tail);
  }
  return 0;
}

/* Used inodes: from dumpe2fs's "Free inodes: 12-1920, 1930" lines; and
 * the free ones the kernel may have left data in (deleted files: their old
 * times and generations stay in the inode table), below each group's
 * "N unused inodes" mark. */
enum { INODE_FREE = 0, INODE_USED = 1, INODE_STALE = 2 };
struct inode_map {
  uint64_t count;
  uint64_t per_group;
  uint64_t group;       /* the "Group N:" being read */
  uint8_t *used;        /* count + 1 flags, index = inode number */
  bool failed;
};

static void on_dumpe2fs_line(void *opaque, const char *line) {
  struct inode_map *m = opaque;
  unsigned long long v;
  if (sscanf(line, "Inode count: %llu", &v) == 1) {
    m->count = v;
    free(m->used);
    m->used = malloc(v + 1);
    if (m->used == NULL)
      m->failed = true;
    else
      memset(m->used, INODE_USED, v + 1);
    return;
  }
  if (sscanf(line, "Inodes per group: %llu", &v) == 1) {
    m->per_group = v;
    return;
  }
  if (sscanf(line, "Group %llu:", &v) == 1) {
    m->group = v;
    return;
  }
  const char *unused = strstr(line, " unused inodes");
  if (unused != NULL && line[0] == ' ') {
    const char *comma = unused;
    while (comma > line && comma[-1] != ' ')
      comma--;
    v = strtoull(comma, NULL, 10);
    /* Free inodes below the mark (the groups' inodes are listed as free
     * later, on the next line, which keeps these marks). */
    uint64_t first = m->group * m->per_group + 1;
    uint64_t end = first + (m->per_group > v ? m->per_group - v : 0);
    for (uint64_t i = first; m->used != NULL && i < end && i <= m->count; i++)
      m->used[i] |= INODE_STALE;
    return;
  }
  const char *p = strstr(line, "Free inodes: ");
  if (p == NULL || line[0] != ' ' || m->used == NULL)
    return;
  p += strlen("Free inodes: ");
  while (*p != '\0') {
    char *end = NULL;
    unsigned long long a = strtoull(p, &end, 10), b = a;
    if (end == p)
      break;
    p = end;
    if (*p == '-') {
      b = strtoull(p + 1, &end, 10);
      p = end;
    }
    for (unsigned long long i = a; i <= b && i <= m->count; i++)
      m->used[i] &= (uint8_t)~INODE_USED;
    while (*p == ',' || *p == ' ')
      p++;
  }
}

/* debugfs stat: "Inode: 12   Type: ..." then " mtime: 0x6553f100:00000000". */
struct mtimes {
  uint64_t current;
  int64_t epoch;
  struct buf *later;    /* "12\n": inodes whose mtime is after the epoch */
  bool failed;
};

static void on_stat_line(void *opaque, const char *line) {
  struct mtimes *m = opaque;
  unsigned long long ino;
  unsigned int lo, extra;
  if (sscanf(line, "Inode: %llu ", &ino) == 1) {
    m->current = ino;
    return;
  }
  int got = sscanf(line, " mtime: 0x%x:%x", &lo, &extra);
  if (got == 1)
    extra = 0;  /* a small inode: no extra field */
  if (got >= 1) {
    /* The low 2 bits of the extra field extend the seconds past 2038. */
    int64_t seconds = (int64_t)(int32_t)lo + ((int64_t)(extra & 3u) << 32);
    if (seconds > m->epoch &&
        buf_printf(m->later, "%" PRIu64 "\n", m->current) < 0)
      m->failed = true;
  }
}

static char **environment_with(const char *const *extra) {
  extern char **environ;
  size_t n = 0, k = 0, e = 0;
  while (environ[n] != NULL)
    n++;
  while (extra[e] != NULL)
    e++;
  char **env = calloc(n + e + 1, sizeof *env);
  if (env == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    bool replaced = false;
    for (size_t j = 0; j < e; j++) {
      size_t len = strcspn(extra[j], "=") + 1;
      replaced |= strncmp(environ[i], extra[j], len) == 0;
    }
    if (!replaced)
      env[k++] = environ[i];
  }
  for (size_t j = 0; j < e; j++)
    env[k++] = (char *)extra[j];
  env[k] = NULL;
  return env;
}

static int write_script(struct vab_ctx *ctx, const char *path,
                        const struct buf *text) {
  FILE *f = fopen(path, "we");
  if (f == NULL)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot create '%s'", path);
  size_t n = text->len;
  bool ok = n == 0 || fwrite(text->data, 1, n, f) == n;
  if (fclose(f) != 0)
    ok = false;
  if (!ok)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot write '%s'", path);
  return 0;
}

static int normalise_ext4(struct vab_ctx *ctx, struct tool_run *t,
                          const char *dev, const char *work,
                          const char *seed, int64_t epoch) {
  struct inode_map map = {0};
  struct buf script = BUF_INIT, later = BUF_INIT;
  char *stat_path = NULL, *set_path = NULL;
  int r = 0;
  if (asprintf(&stat_path, "%s.repro-stat", work) < 0 ||
      asprintf(&set_path, "%s.repro-set", work) < 0) {
    stat_path = set_path = NULL;
    r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }

  /* 1. the used inodes */
  const char *dumpe2fs[] = {"dumpe2fs", dev, NULL};
  t->line = on_dumpe2fs_line;
  t->opaque = &map;
  if (r == 0)
    r = run_tool(t, dumpe2fs, 0, NULL);
  t->line = NULL;
  if (r == 0 && (map.failed || map.used == NULL))
    r = vab_error(ctx, map.failed ? VAB_E_NOMEM : VAB_E_SUBPROCESS,
                  map.failed ? "out of memory"
                             : "dumpe2fs of %s gave no inode count", dev);

  /* 2. their mtimes */
  for (uint64_t i = 1; r == 0 && i <= map.count; i++)
    if ((map.used[i] & INODE_USED) &&
        buf_printf(&script, "stat <%" PRIu64 ">\n", i) < 0)
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  if (r == 0)
    r = write_script(ctx, stat_path, &script);
  struct mtimes mt = {.epoch = epoch, .later = &later};
  const char *stat_argv[] = {"debugfs", "-f", stat_path, dev, NULL};
  t->line = on_stat_line;
  t->opaque = &mt;
  if (r == 0)
    r = run_tool(t, stat_argv, 0, NULL);
  t->line = NULL;
  if (r == 0 && mt.failed)
    r = vab_error(ctx, VAB_E_NOMEM, "out of memory");

  /* 3. inode times and generations */
  buf_truncate(&script, 0);
  for (uint64_t i = 1; r == 0 && i <= map.count; i++) {
    if (!(map.used[i] & INODE_USED))
      continue;
    char what[32];
    snprintf(what, sizeof what, "generation %" PRIu64, i);
    if (buf_printf(&script,
                   "sif <%" PRIu64 "> atime @%" PRId64 "\n"
                   "sif <%" PRIu64 "> atime_extra 0\n"
                   "sif <%" PRIu64 "> ctime @%" PRId64 "\n"
                   "sif <%" PRIu64 "> ctime_extra 0\n"
                   "sif <%" PRIu64 "> crtime @%" PRId64 "\n"
                   "sif <%" PRIu64 "> crtime_extra 0\n"
                   "sif <%" PRIu64 "> generation %" PRIu32 "\n",
                   i, epoch, i, i, epoch, i, i, epoch, i, i,
                   i >= 11 ? vab_repro_u32(seed, what) : 0u) < 0)
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  for (const char *p = later.data; r == 0 && p != NULL && *p != '\0';) {
    const char *nl = strchr(p, '\n');
    int len = (int)(nl - p);
    if (buf_printf(&script, "sif <%.*s> mtime @%" PRId64 "\n"
                   "sif <%.*s> mtime_extra 0\n", len, p, epoch, len, p) < 0)
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
    p = nl + 1;
  }
  /* 5. the superblock (after the journal, below, in the same script:
   * cheaper as one run, and tune2fs leaves these alone). */
  if (r == 0 && buf_printf(&script,
                           "ssv mtime @%" PRId64 "\n"
                           "ssv lastcheck @%" PRId64 "\n"
                           "ssv mkfs_time @%" PRId64 "\n"
                           "ssv mnt_count 0\n"
                           "ssv kbytes_written 0\n",
                           epoch, epoch, epoch) < 0)
    r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  if (r == 0)
    r = write_script(ctx, set_path, &script);
  const char *set_argv[] = {"debugfs", "-w", "-f", set_path, dev, NULL};
  if (r == 0)
    r = run_tool(t, set_argv, 0, NULL);

  /* 4. an empty journal */
  const char *no_journal[] = {"tune2fs", "-O", "^has_journal", dev, NULL};
  const char *journal[] = {"tune2fs", "-O", "has_journal", dev, NULL};
  if (r == 0)
    r = run_tool(t, no_journal, 0, NULL);
  if (r == 0)
    r = run_tool(t, journal, 0, NULL);

  /* 6. checksums, then free blocks: e2fsck exits 1 when it fixed them. */
  const char *fix[] = {"e2fsck", "-f", "-y", dev, NULL};
  const char *discard[] = {"e2fsck", "-f", "-p", "-E", "discard", dev, NULL};
  if (r == 0)
    r = run_tool(t, fix, 1, NULL);

  /* 7. free inodes that held a file (deleted in the builder VM, or an
   * orphan e2fsck just released) keep its times and generation: clri
   * zeroes the first 128 bytes, sif the fields after them. */
  struct inode_map after = {0};
  t->line = on_dumpe2fs_line;
  t->opaque = &after;
  if (r == 0)
    r = run_tool(t, dumpe2fs, 0, NULL);
  t->line = NULL;
  if (r == 0 && (after.failed || after.used == NULL || after.count != map.count))
    r = vab_error(ctx, after.failed ? VAB_E_NOMEM : VAB_E_SUBPROCESS,
                  after.failed ? "out of memory"
                               : "dumpe2fs of %s: the inode count changed", dev);
  buf_truncate(&script, 0);
  for (uint64_t i = 1; r == 0 && i <= map.count; i++)
    if (map.used[i] != INODE_FREE && !(after.used[i] & INODE_USED) &&
        buf_printf(&script,
                   "clri <%" PRIu64 ">\n"
                   "sif <%" PRIu64 "> ctime_extra 0\n"
                   "sif <%" PRIu64 "> mtime_extra 0\n"
                   "sif <%" PRIu64 "> atime_extra 0\n"
                   "sif <%" PRIu64 "> crtime @0\n"
                   "sif <%" PRIu64 "> crtime_extra 0\n"
                   "sif <%" PRIu64 "> version_hi 0\n",
                   i, i, i, i, i, i, i) < 0)
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  free(after.used);
  const char *clear_argv[] = {"debugfs", "-w", "-f", set_path, dev, NULL};
  if (r == 0 && script.len > 0)
    r = write_script(ctx, set_path, &script);
  if (r == 0 && script.len > 0)
    r = run_tool(t, clear_argv, 0, NULL);
  if (r == 0)
    r = run_tool(t, discard, 0, NULL);
  /* e2fsck counted its own writes. */
  const char *reset[] = {"debugfs", "-w", "-R", "ssv kbytes_written 0", dev,
                         NULL};
  if (r == 0)
    r = run_tool(t, reset, 0, NULL);

  if (stat_path != NULL)
    unlink(stat_path);
  if (set_path != NULL)
    unlink(set_path);
  free(stat_path);
  free(set_path);
  free(map.used);
  buf_release(&script);
  buf_release(&later);
  return r;
}

int vab_repro_normalise(struct vab_ctx *ctx, const char *disk_path,
                        const char *disk_format,
                        const struct vab_layout *layout, const char *seed,
                        int64_t epoch) {
  if (strcmp(disk_format, "raw") != 0 ||
      strcmp(layout->root_fstype, "ext4") != 0 || layout->root_offset == 0) {
    vab_log(ctx, VAB_LOG_INFO, "reproducible: the %s root is left as the "
            "builder VM wrote it (only an ext4 root is normalised)",
            layout->root_fstype);
    return 0;
  }
  static const char *const tools[] = {"debugfs", "dumpe2fs", "tune2fs",
                                      "e2fsck", NULL};
  for (size_t i = 0; tools[i] != NULL; i++)
    if (!subprocess_have_program(tools[i]))
      return vab_error(ctx, VAB_E_SUBPROCESS,
                       "a reproducible build (SOURCE_DATE_EPOCH) needs %s "
                       "(Debian: e2fsprogs)", tools[i]);
  vab_log(ctx, VAB_LOG_INFO, "reproducible: normalising the root file "
          "system (times at %" PRId64 ")", epoch);
  char *dev = NULL, *fake = NULL, *fsck_time = NULL;
  if (asprintf(&dev, "%s?offset=%" PRIu64, disk_path, layout->root_offset) <
          0 ||
      asprintf(&fake, "E2FSPROGS_FAKE_TIME=%" PRId64, epoch) < 0 ||
      asprintf(&fsck_time, "E2FSCK_TIME=%" PRId64, epoch) < 0) {
    free(dev);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  /* No pager, no locale in the output parsed, and the tools' clock at
   * the epoch. */
  const char *extra[] = {fake, fsck_time, "DEBUGFS_PAGER=__none__",
                         "PAGER=__none__", "LC_ALL=C", NULL};
  struct tool_run t = {.ctx = ctx, .env = environment_with(extra)};
  int r = t.env == NULL ? vab_error(ctx, VAB_E_NOMEM, "out of memory")
                        : normalise_ext4(ctx, &t, dev, disk_path, seed, epoch);
  free(t.env);
  free(dev);
  free(fake);
  free(fsck_time);
  return r;
}

int vab_repro_finish(struct vab_ctx *ctx, const char *disk_path,
                     const char *disk_format, const struct vab_layout *layout,
                     const char *seed) {
  bool set = false;
  int64_t epoch = 0;
  if (vab_repro_epoch(ctx, &set, &epoch) < 0)
    return -1;
  if (!set)
    return 0;
  return vab_repro_normalise(ctx, disk_path, disk_format, layout, seed, epoch);
}
