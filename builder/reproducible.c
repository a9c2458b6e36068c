/* Reproducible builds (see reproducible.h).
 *
 * The ext4 root is made anew on the host, after the builder VM is gone,
 * from a tar of its files (numeric owners, xattrs, ACLs, hard links) that
 * the sysprep session wrote: mke2fs -d, with the old file system's
 * parameters and E2FSPROGS_FAKE_TIME / E2FSCK_TIME at the epoch, against
 * "disk.raw?offset=N" (the unix I/O manager's offset option):
 *   1. dumpe2fs -h gives the parameters (sizes, features, UUID, hash seed,
 *      label, journal size, reserved blocks), debugfs the root's owner;
 *   2. the tar is unpacked into a tree beside the disk (under fakeroot
 *      when not root), the partition punched to holes, mke2fs -d writes
 *      the new file system from the tree, which is then removed;
 *      e2fsck -fyD indexes the directories;
 *   3. debugfs stats every used inode (its mtime, to clamp it);
 *   4. debugfs sets each one's atime, ctime and crtime to the epoch, its
 *      mtime to the epoch when it is later, the root folder's mode and
 *      owner, and the superblock's times, mount count, reserved blocks;
 *   5. e2fsck -fn checks the result; the write counter is reset.
 * libext2fs places the files in the order of their sorted names, with
 * generation 0, so nothing of the kernel's allocation history (freed
 * inodes, directory blocks reused after a journal commit) is left.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vab/progress.h"
#include "common/blake2b.h"
#include "common/buf.h"
#include "common/cleanup.h"
#include "common/crc32c.h"
#include "common/endian.h"
#include "common/fsutil.h"
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

/* The file system's parameters, from "dumpe2fs -h" lines. */
void vab_repro_ext4_param_line(struct vab_ext4_params *p, const char *line) {
  unsigned long long v;
  char text[sizeof p->features];
  if (sscanf(line, "Block count: %llu", &v) == 1)
    p->block_count = v;
  else if (sscanf(line, "Inode count: %llu", &v) == 1)
    p->inode_count = v;
  else if (sscanf(line, "Reserved block count: %llu", &v) == 1)
    p->reserved_blocks = v;
  else if (sscanf(line, "Block size: %llu", &v) == 1 && v <= 65536)
    p->block_size = (unsigned)v;
  else if (sscanf(line, "Inode size: %llu", &v) == 1 && v <= 65536)
    p->inode_size = (unsigned)v;
  else if (sscanf(line, "Flex block group size: %llu", &v) == 1 && v <= 65536)
    p->flex_bg = (unsigned)v;
  else if (sscanf(line, "Total journal blocks: %llu", &v) == 1)
    p->journal_blocks = v;
  else if (sscanf(line, "Filesystem UUID: %36s", text) == 1)
    snprintf(p->uuid, sizeof p->uuid, "%.36s", text);
  else if (sscanf(line, "Directory Hash Seed: %36s", text) == 1)
    snprintf(p->hash_seed, sizeof p->hash_seed, "%.36s", text);
  else if (sscanf(line, "Filesystem volume name: %16[^\n]", text) == 1)
    snprintf(p->label, sizeof p->label, "%.16s",
             strcmp(text, "<none>") == 0 ? "" : text);
  else if (strncmp(line, "Filesystem features:", 20) == 0) {
    /* "none," first: mke2fs.conf's ext4 defaults are not added to them. */
    size_t n = (size_t)snprintf(p->features, sizeof p->features, "none");
    char copy[sizeof p->features];
    snprintf(copy, sizeof copy, "%s", line + 20);
    char *save = NULL;
    for (char *f = strtok_r(copy, " \t", &save); f != NULL;
         f = strtok_r(NULL, " \t", &save)) {
      /* Not features: the state of a file system in use. */
      if (strcmp(f, "needs_recovery") == 0 || strcmp(f, "orphan_present") == 0)
        continue;
      if (n < sizeof p->features)
        n += (size_t)snprintf(p->features + n, sizeof p->features - n, ",%s",
                              f);
    }
    p->features_truncated = n >= sizeof p->features;
  }
}

static bool is_uuid(const char *text) {
  uint8_t b[16];
  return parse_uuid(text, b) == 0;
}

int vab_repro_ext4_params_check(const struct vab_ext4_params *p) {
  if (p->block_count == 0 || p->inode_count == 0 || p->block_size < 1024 ||
      (p->block_size & (p->block_size - 1)) != 0 || p->inode_size < 128 ||
      p->features[0] == '\0' || p->features_truncated || !is_uuid(p->uuid) ||
      !is_uuid(p->hash_seed) || p->reserved_blocks > p->block_count)
    return -1;
  return 0;
}

/* Used inodes: from dumpe2fs's "Free inodes: 12-1920, 1930" lines. */
struct inode_map {
  uint64_t count;
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
      memset(m->used, 1, v + 1);
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
      m->used[i] = 0;
    while (*p == ',' || *p == ' ')
      p++;
  }
}

/* debugfs stat: "Inode: 12   Type: ..." then " mtime: 0x6553f100:00000000";
 * and of the root directory, its mode and owner. */
struct mtimes {
  uint64_t current;
  int64_t epoch;
  struct buf *later;    /* "12\n": inodes whose mtime is after the epoch */
  unsigned mode, uid, gid;
  bool directory;
  bool failed;
};

static void on_stat_line(void *opaque, const char *line) {
  struct mtimes *m = opaque;
  unsigned long long ino;
  unsigned int lo, extra;
  if (sscanf(line, "Inode: %llu ", &ino) == 1) {
    m->current = ino;
    /* "Mode:" is the permission bits only. */
    const char *mode = strstr(line, "Mode:");
    if (mode != NULL && sscanf(mode, "Mode: %o", &m->mode) == 1)
      m->mode &= 07777;
    m->directory = strstr(line, "Type: directory") != NULL;
    return;
  }
  if (sscanf(line, "User: %u Group: %u", &m->uid, &m->gid) == 2)
    return;
  int got = sscanf(line, " mtime: 0x%x:%x", &lo, &extra);
  if (got == 1)
    extra = 0;  /* a small inode: no extra field */
  if (got >= 1 && m->later != NULL) {
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

/* Run a tool that must see the tree's owners: as root itself, else under
 * fakeroot, which keeps them in state (saved by the first run, loaded by
 * the next). */
static int run_as_root(struct tool_run *t, const char *state, bool save,
                       const char *const *argv, int ok_max) {
  if (geteuid() == 0)
    return run_tool(t, argv, ok_max, NULL);
  const char *wrapped[48];
  size_t n = 0;
  wrapped[n++] = "fakeroot";
  wrapped[n++] = save ? "-s" : "-i";
  wrapped[n++] = state;
  wrapped[n++] = "--";
  for (size_t i = 0; argv[i] != NULL && n + 1 < sizeof wrapped / sizeof *wrapped;
       i++)
    wrapped[n++] = argv[i];
  wrapped[n] = NULL;
  return run_tool(t, wrapped, ok_max, NULL);
}

/* Zero the partition (holes): nothing of the builder VM's file system
 * survives in the blocks the new one leaves free. */
static int punch_partition(struct vab_ctx *ctx, const char *disk_path,
                           uint64_t offset, uint64_t len) {
  int fd = open(disk_path, O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot open '%s'",
                           disk_path);
  int r = 0;
  if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
                (off_t)len) < 0) {
    /* A file system without holes: zeros, a MiB at a time. */
    static const uint8_t zeros[1 << 20];
    int e = errno;
    for (uint64_t done = 0; e == EOPNOTSUPP && done < len;) {
      size_t n = len - done < sizeof zeros ? (size_t)(len - done) : sizeof zeros;
      ssize_t put = pwrite(fd, zeros, n, (off_t)(offset + done));
      if (put <= 0) {
        e = put < 0 ? errno : ENOSPC;
        break;
      }
      done += (uint64_t)put;
      if (done == len)
        e = 0;
    }
    if (e != 0)
      r = vab_error_errno(ctx, VAB_E_IO, e,
                          "cannot zero the partition at offset %" PRIu64
                          " of '%s' (%" PRIu64 " bytes)", offset, disk_path,
                          len);
  }
  if (close(fd) < 0 && r == 0)
    r = vab_error_errno(ctx, VAB_E_IO, errno, "cannot close '%s'", disk_path);
  return r;
}

static void on_param_line(void *opaque, const char *line) {
  vab_repro_ext4_param_line(opaque, line);
}

/* Unpack root_tar into a fresh tree beside the disk, make the new file
 * system from it over the old one's blocks, remove the tree. */
static int make_from_tree(struct vab_ctx *ctx, struct tool_run *t,
                          const char *disk_path, uint64_t offset,
                          const struct vab_ext4_params *p,
                          const char *root_tar) {
  CLEANUP_FREE char *tree = NULL;
  CLEANUP_FREE char *state = NULL;
  if (asprintf(&tree, "%s.tree-XXXXXX", disk_path) < 0) {
    tree = NULL;
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  if (mkdtemp(tree) == NULL)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot create '%s'", tree);
  char blocks[32], inodes[32], block_size[16], inode_size[16], flex[16];
  char journal[48], extended[160];
  snprintf(blocks, sizeof blocks, "%" PRIu64, p->block_count);
  snprintf(inodes, sizeof inodes, "%" PRIu64, p->inode_count);
  snprintf(block_size, sizeof block_size, "%u", p->block_size);
  snprintf(inode_size, sizeof inode_size, "%u", p->inode_size);
  snprintf(flex, sizeof flex, "%u", p->flex_bg);
  uint64_t journal_bytes = p->journal_blocks * p->block_size;
  snprintf(journal, sizeof journal, "size=%" PRIu64, journal_bytes >> 20);
  /* nodiscard: the partition is already holes; lazy_*_init=0: mke2fs
   * writes (zeros) every inode table and the journal, not the kernel
   * later at first mount. */
  snprintf(extended, sizeof extended,
           "offset=%" PRIu64 ",hash_seed=%s,nodiscard,lazy_itable_init=0,"
           "lazy_journal_init=0", offset, p->hash_seed);
  const char *untar[] = {"tar", "-x", "-f", root_tar, "-C", tree,
                         "--numeric-owner", "--same-owner",
                         "--same-permissions", "--xattrs",
                         "--xattrs-include=*", "--acls", NULL};
  const char *argv[40];
  size_t n = 0;
  argv[n++] = "mke2fs";
  argv[n++] = "-F";
  argv[n++] = "-q";
  argv[n++] = "-t";
  argv[n++] = "ext4";
  argv[n++] = "-b";
  argv[n++] = block_size;
  argv[n++] = "-I";
  argv[n++] = inode_size;
  argv[n++] = "-N";
  argv[n++] = inodes;
  argv[n++] = "-O";
  argv[n++] = p->features;
  argv[n++] = "-U";
  argv[n++] = p->uuid;
  argv[n++] = "-E";
  argv[n++] = extended;
  argv[n++] = "-m";
  argv[n++] = "0";      /* the reserved count is set exactly, later */
  if (p->flex_bg > 0) {
    argv[n++] = "-G";
    argv[n++] = flex;
  }
  /* mke2fs takes the journal size in MiB. */
  if (p->journal_blocks > 0 && (journal_bytes & ((1u << 20) - 1)) == 0) {
    argv[n++] = "-J";
    argv[n++] = journal;
  }
  if (p->label[0] != '\0') {
    argv[n++] = "-L";
    argv[n++] = p->label;
  }
  argv[n++] = "-d";
  argv[n++] = tree;
  argv[n++] = disk_path;
  argv[n++] = blocks;
  argv[n] = NULL;

  int r = 0;
  if (geteuid() != 0 && asprintf(&state, "%s.fakeroot", tree) < 0) {
    state = NULL;
    r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  vab_log(ctx, VAB_LOG_INFO, "reproducible: making the root file system "
          "anew from its files");
  if (r == 0)
    r = run_as_root(t, state, true, untar, 0);
  /* Not needed any more: the disk space goes back before mke2fs runs. */
  unlink(root_tar);
  if (r == 0)
    r = punch_partition(ctx, disk_path, offset,
                        p->block_count * p->block_size);
  if (r == 0)
    r = run_as_root(t, state, false, argv, 0);
  remove_tree(tree);
  if (state != NULL)
    unlink(state);
  return r;
}

/* The root file system is made anew from its files with mke2fs -d, with
 * the same parameters (UUID, hash seed, features, sizes): what the builder
 * VM's kernel allocated, freed and journalled, and when, is then gone, and
 * libext2fs places the files in a fixed order (names sorted).  Then the
 * times: atime, ctime and crtime at the epoch, mtime clamped to it. */
static int rebuild_ext4(struct vab_ctx *ctx, struct tool_run *t,
                        const char *disk_path, uint64_t offset,
                        const char *root_tar, int64_t epoch) {
  struct vab_ext4_params params;
  struct inode_map map = {0};
  struct buf script = BUF_INIT, later = BUF_INIT;
  char *dev = NULL, *stat_path = NULL, *set_path = NULL;
  int r = 0;
  memset(&params, 0, sizeof params);
  if (asprintf(&dev, "%s?offset=%" PRIu64, disk_path, offset) < 0 ||
      asprintf(&stat_path, "%s.repro-stat", disk_path) < 0 ||
      asprintf(&set_path, "%s.repro-set", disk_path) < 0) {
    free(dev);
    free(stat_path);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }

  /* 1. the old file system's parameters, and its root folder's owner */
  const char *header[] = {"dumpe2fs", "-h", dev, NULL};
  t->line = on_param_line;
  t->opaque = &params;
  r = run_tool(t, header, 0, NULL);
  t->line = NULL;
  if (r == 0 && vab_repro_ext4_params_check(&params) < 0)
    r = vab_error(ctx, VAB_E_SUBPROCESS, "%s: dumpe2fs -h did not give the "
                  "file system's sizes, features, UUID and hash seed", dev);
  struct mtimes root = {.epoch = epoch};
  const char *stat_root[] = {"debugfs", "-R", "stat <2>", dev, NULL};
  t->line = on_stat_line;
  t->opaque = &root;
  if (r == 0)
    r = run_tool(t, stat_root, 0, NULL);
  t->line = NULL;
  if (r == 0 && !root.directory)
    r = vab_error(ctx, VAB_E_SUBPROCESS, "%s: inode 2 is not a folder", dev);

  /* 2. the new file system; directories indexed (e2fsck -D) as the kernel
   * indexes them (mke2fs -d writes them linear); e2fsck exits 1 when it
   * rewrote some. */
  if (r == 0)
    r = make_from_tree(ctx, t, disk_path, offset, &params, root_tar);
  const char *index[] = {"e2fsck", "-f", "-y", "-D", dev, NULL};
  if (r == 0)
    r = run_tool(t, index, 1, NULL);

  /* 3. the used inodes and their mtimes */
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
  for (uint64_t i = 1; r == 0 && i <= map.count; i++)
    if (map.used[i] && buf_printf(&script, "stat <%" PRIu64 ">\n", i) < 0)
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

  /* 4. the times (the tree's ctimes are the host's clock), the root
   * folder as it was, and the superblock */
  buf_truncate(&script, 0);
  for (uint64_t i = 1; r == 0 && i <= map.count; i++)
    if (map.used[i] &&
        buf_printf(&script,
                   "sif <%" PRIu64 "> atime @%" PRId64 "\n"
                   "sif <%" PRIu64 "> atime_extra 0\n"
                   "sif <%" PRIu64 "> ctime @%" PRId64 "\n"
                   "sif <%" PRIu64 "> ctime_extra 0\n"
                   "sif <%" PRIu64 "> crtime @%" PRId64 "\n"
                   "sif <%" PRIu64 "> crtime_extra 0\n",
                   i, epoch, i, i, epoch, i, i, epoch, i) < 0)
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  for (const char *p = later.data; r == 0 && p != NULL && *p != '\0';) {
    const char *nl = strchr(p, '\n');
    int len = (int)(nl - p);
    if (buf_printf(&script, "sif <%.*s> mtime @%" PRId64 "\n"
                   "sif <%.*s> mtime_extra 0\n", len, p, epoch, len, p) < 0)
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
    p = nl + 1;
  }
  if (r == 0 && buf_printf(&script,
                           "sif <2> mode 0%o\n"
                           "sif <2> uid %u\n"
                           "sif <2> gid %u\n"
                           "ssv mtime @%" PRId64 "\n"
                           "ssv lastcheck @%" PRId64 "\n"
                           "ssv mkfs_time @%" PRId64 "\n"
                           "ssv mnt_count 0\n"
                           "ssv r_blocks_count %" PRIu64 "\n",
                           0040000u | root.mode, root.uid, root.gid, epoch,
                           epoch, epoch,
                           params.reserved_blocks) < 0)
    r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  if (r == 0)
    r = write_script(ctx, set_path, &script);
  const char *set_argv[] = {"debugfs", "-w", "-f", set_path, dev, NULL};
  if (r == 0)
    r = run_tool(t, set_argv, 0, NULL);

  /* 5. the result is clean; the tools' own writes are not counted */
  const char *check[] = {"e2fsck", "-f", "-n", dev, NULL};
  if (r == 0)
    r = run_tool(t, check, 0, NULL);
  const char *reset[] = {"debugfs", "-w", "-R", "ssv kbytes_written 0", dev,
                         NULL};
  if (r == 0)
    r = run_tool(t, reset, 0, NULL);

  unlink(stat_path);
  unlink(set_path);
  free(dev);
  free(stat_path);
  free(set_path);
  free(map.used);
  buf_release(&script);
  buf_release(&later);
  return r;
}

int vab_repro_normalise(struct vab_ctx *ctx, const char *disk_path,
                        const char *disk_format,
                        const struct vab_layout *layout, const char *root_tar,
                        int64_t epoch) {
  if (strcmp(disk_format, "raw") != 0 ||
      strcmp(layout->root_fstype, "ext4") != 0 || layout->root_offset == 0 ||
      root_tar == NULL) {
    vab_log(ctx, VAB_LOG_INFO, "reproducible: the %s root is left as the "
            "builder VM wrote it (only an ext4 root is made anew)",
            layout->root_fstype);
    return 0;
  }
  static const char *const tools[] = {"debugfs", "dumpe2fs", "mke2fs",
                                      "e2fsck", "tar", NULL};
  for (size_t i = 0; tools[i] != NULL; i++)
    if (!subprocess_have_program(tools[i]))
      return vab_error(ctx, VAB_E_SUBPROCESS,
                       "a reproducible build (SOURCE_DATE_EPOCH) needs %s "
                       "(Debian: %s)", tools[i],
                       strcmp(tools[i], "tar") == 0 ? "tar" : "e2fsprogs");
  if (geteuid() != 0 && !subprocess_have_program("fakeroot"))
    return vab_error(ctx, VAB_E_SUBPROCESS,
                     "a reproducible build (SOURCE_DATE_EPOCH) run by a user "
                     "other than root needs fakeroot, to keep the files' "
                     "owners (Debian: fakeroot)");
  if (access(root_tar, R_OK) < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot read the root's "
                           "files '%s' (a reproducible build makes the root "
                           "file system anew from them)", root_tar);
  char *fake = NULL, *fsck_time = NULL;
  if (asprintf(&fake, "E2FSPROGS_FAKE_TIME=%" PRId64, epoch) < 0 ||
      asprintf(&fsck_time, "E2FSCK_TIME=%" PRId64, epoch) < 0) {
    free(fake);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  /* No pager, no locale in the output parsed, and the tools' clock at
   * the epoch. */
  const char *extra[] = {fake, fsck_time, "DEBUGFS_PAGER=__none__",
                         "PAGER=__none__", "LC_ALL=C", NULL};
  struct tool_run t = {.ctx = ctx, .env = environment_with(extra)};
  int r = t.env == NULL ? vab_error(ctx, VAB_E_NOMEM, "out of memory")
                        : rebuild_ext4(ctx, &t, disk_path, layout->root_offset,
                                       root_tar, epoch);
  free(t.env);
  free(fake);
  free(fsck_time);
  return r;
}

/* The ESP's parameters, from "minfo" (mtools) lines. */
void vab_repro_vfat_param_line(struct vab_vfat_params *p, const char *line) {
  unsigned v;
  unsigned long long n;
  char text[16];
  if (sscanf(line, "sector size: %u bytes", &v) == 1)
    p->sector_size = v;
  else if (sscanf(line, "cluster size: %u sectors", &v) == 1)
    p->cluster_sectors = v;
  else if (sscanf(line, "reserved (boot) sectors: %u", &v) == 1)
    p->reserved = v;
  else if (sscanf(line, "fats: %u", &v) == 1)
    p->fats = v;
  else if (sscanf(line, "max available root directory slots: %u", &v) == 1)
    p->root_entries = v;
  else if (sscanf(line, "small size: %llu sectors", &n) == 1)
    p->small_size = n;
  else if (sscanf(line, "big size: %llu sectors", &n) == 1)
    p->big_size = n;
  else if (sscanf(line, "sectors per track: %u", &v) == 1)
    p->sectors_per_track = v;
  else if (sscanf(line, "heads: %u", &v) == 1)
    p->heads = v;
  else if (sscanf(line, "hidden sectors: %llu", &n) == 1)
    p->hidden = n;
  else if (sscanf(line, "physical drive id: 0x%x", &v) == 1)
    p->drive = v;
  else if (sscanf(line, "serial number: %x", &v) == 1) {
    p->serial = v;
    p->have_serial = true;
  } else if (sscanf(line, "disk type=\"FAT%u", &v) == 1)
    p->fat_bits = v;
  else if (sscanf(line, "disk label=\"%11[^\"]", text) == 1) {
    size_t len = strlen(text);
    while (len > 0 && text[len - 1] == ' ')
      text[--len] = '\0';
    snprintf(p->label, sizeof p->label, "%.11s",
             strcmp(text, "NO NAME") == 0 ? "" : text);
  }
}

int vab_repro_vfat_params_check(const struct vab_vfat_params *p) {
  uint64_t sectors = p->small_size != 0 ? p->small_size : p->big_size;
  if (p->sector_size < 512 || p->sector_size > 4096 ||
      (p->sector_size & (p->sector_size - 1)) != 0 ||
      p->cluster_sectors == 0 || p->cluster_sectors > 128 ||
      (p->cluster_sectors & (p->cluster_sectors - 1)) != 0 ||
      p->reserved == 0 || p->fats == 0 || p->fats > 2 || sectors == 0 ||
      p->drive > 0xff || !p->have_serial ||
      (p->fat_bits != 12 && p->fat_bits != 16 && p->fat_bits != 32) ||
      p->heads == 0 || p->heads > 255 || p->sectors_per_track == 0 ||
      p->sectors_per_track > 63)
    return -1;
  return 0;
}

static void on_vfat_param_line(void *opaque, const char *line) {
  vab_repro_vfat_param_line(opaque, line);
}

/* mtimes later than the epoch become the epoch (mcopy -m keeps them). */
static int clamp_mtime(struct vab_ctx *ctx, int dir_fd, const char *name,
                       const struct stat *st, int64_t epoch) {
  if ((int64_t)st->st_mtime <= epoch)
    return 0;
  struct timespec times[2] = {{.tv_sec = (time_t)epoch},
                              {.tv_sec = (time_t)epoch}};
  if (utimensat(dir_fd, name, times, AT_SYMLINK_NOFOLLOW) < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot set the time of "
                           "'%s'", name);
  return 0;
}

/* Copy the tree's folder rel ("" or "/EFI/debian") into the FAT file
 * system at image ("disk.raw@@OFFSET"): its folders (mmd) and files (one
 * mcopy), in sorted order, then each folder's own contents. */
static int copy_fat_folder(struct vab_ctx *ctx, struct tool_run *t,
                           const char *image, const char *tree,
                           const char *rel, int64_t epoch, int depth) {
  if (depth > 32)
    return vab_error(ctx, VAB_E_GUEST, "the ESP's folders nest too deep");
  CLEANUP_FREE char *path = NULL;
  if (asprintf(&path, "%s%s", tree, rel) < 0) {
    path = NULL;
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  struct dirent **names = NULL;
  int count = scandir(path, &names, NULL, alphasort);
  if (count < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot read '%s'", path);
  int dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  /* argv: tool, -i, image, [-m], then paths, then the target */
  size_t max = (size_t)count + 6;
  const char **dirs = calloc(max, sizeof *dirs);
  const char **files = calloc(max, sizeof *files);
  char **owned = calloc((size_t)count * 2 + 1, sizeof *owned);
  size_t n_dirs = 0, n_files = 0, n_owned = 0;
  int r = dir_fd < 0 ? vab_error_errno(ctx, VAB_E_IO, errno,
                                       "cannot open '%s'", path)
          : dirs == NULL || files == NULL || owned == NULL
              ? vab_error(ctx, VAB_E_NOMEM, "out of memory")
              : 0;
  if (r == 0) {
    dirs[n_dirs++] = "mmd";
    dirs[n_dirs++] = "-i";
    dirs[n_dirs++] = image;
    files[n_files++] = "mcopy";
    files[n_files++] = "-m";
    files[n_files++] = "-i";
    files[n_files++] = image;
  }
  size_t first_dir = n_dirs, first_file = n_files;
  for (int i = 0; r == 0 && i < count; i++) {
    const char *name = names[i]->d_name;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
      continue;
    struct stat st;
    if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
      r = vab_error_errno(ctx, VAB_E_IO, errno, "cannot stat '%s/%s'", path,
                          name);
      break;
    }
    char *item = NULL;
    if (S_ISDIR(st.st_mode)) {
      if (asprintf(&item, "::%s/%s", rel, name) < 0)
        item = NULL;
      else
        dirs[n_dirs++] = item;
    } else if (S_ISREG(st.st_mode)) {
      r = clamp_mtime(ctx, dir_fd, name, &st, epoch);
      if (asprintf(&item, "%s/%s", path, name) < 0)
        item = NULL;
      else
        files[n_files++] = item;
    } else {
      continue;  /* FAT holds only files and folders */
    }
    if (item == NULL)
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
    else
      owned[n_owned++] = item;
  }
  CLEANUP_FREE char *target = NULL;
  if (r == 0 && asprintf(&target, "::%s/", rel) < 0) {
    target = NULL;
    r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  if (r == 0 && n_dirs > first_dir)
    r = run_tool(t, dirs, 0, NULL);
  if (r == 0 && n_files > first_file) {
    files[n_files++] = target;
    files[n_files] = NULL;
    r = run_tool(t, files, 0, NULL);
  }
  for (size_t i = first_dir; r == 0 && i < n_dirs; i++)
    r = copy_fat_folder(ctx, t, image, tree, dirs[i] + 2, epoch, depth + 1);
  for (size_t i = 0; i < n_owned; i++)
    free(owned[i]);
  free(owned);
  free(dirs);
  free(files);
  for (int i = 0; i < count; i++)
    free(names[i]);
  free(names);
  if (dir_fd >= 0)
    close(dir_fd);
  return r;
}

/* The ESP made anew, as the root is: mkfs.vfat --invariant with the old
 * one's parameters (minfo), then its files copied in sorted order by
 * mtools, which stamps what it creates with SOURCE_DATE_EPOCH. */
static int rebuild_vfat(struct vab_ctx *ctx, struct tool_run *t,
                        const char *disk_path, uint64_t offset,
                        const char *esp_tar, int64_t epoch) {
  struct vab_vfat_params p;
  memset(&p, 0, sizeof p);
  CLEANUP_FREE char *image = NULL;
  CLEANUP_FREE char *tree = NULL;
  if (asprintf(&image, "%s@@%" PRIu64, disk_path, offset) < 0 ||
      asprintf(&tree, "%s.esp-XXXXXX", disk_path) < 0)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  const char *minfo[] = {"minfo", "-i", image, "::", NULL};
  t->line = on_vfat_param_line;
  t->opaque = &p;
  int r = run_tool(t, minfo, 0, NULL);
  t->line = NULL;
  if (r == 0 && (vab_repro_vfat_params_check(&p) < 0 ||
                 offset % p.sector_size != 0))
    r = vab_error(ctx, VAB_E_SUBPROCESS, "%s: minfo did not give the ESP's "
                  "sizes, FAT type and serial number", image);
  if (r != 0)
    return r;
  if (mkdtemp(tree) == NULL)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot create '%s'", tree);
  vab_log(ctx, VAB_LOG_INFO, "reproducible: making the ESP anew from its "
          "files");
  uint64_t sectors = p.small_size != 0 ? p.small_size : p.big_size;
  char bits[8], ss[16], spc[16], res[16], fats[8], root[16], hidden[32];
  char geometry[32], drive[8], serial[16], start[32], kib[32];
  snprintf(bits, sizeof bits, "%d", p.fat_bits);
  snprintf(ss, sizeof ss, "%u", p.sector_size);
  snprintf(spc, sizeof spc, "%u", p.cluster_sectors);
  snprintf(res, sizeof res, "%u", p.reserved);
  snprintf(fats, sizeof fats, "%u", p.fats);
  snprintf(root, sizeof root, "%u", p.root_entries);
  snprintf(hidden, sizeof hidden, "%" PRIu64, p.hidden);
  snprintf(geometry, sizeof geometry, "%u/%u", p.heads, p.sectors_per_track);
  snprintf(drive, sizeof drive, "0x%02x", p.drive);
  snprintf(serial, sizeof serial, "%08" PRIx32, p.serial);
  snprintf(start, sizeof start, "--offset=%" PRIu64, offset / p.sector_size);
  snprintf(kib, sizeof kib, "%" PRIu64, sectors * p.sector_size / 1024);
  const char *mkfs[32];
  size_t n = 0;
  mkfs[n++] = "mkfs.vfat";
  mkfs[n++] = "--invariant";
  mkfs[n++] = "-F";
  mkfs[n++] = bits;
  mkfs[n++] = "-S";
  mkfs[n++] = ss;
  mkfs[n++] = "-s";
  mkfs[n++] = spc;
  mkfs[n++] = "-R";
  mkfs[n++] = res;
  mkfs[n++] = "-f";
  mkfs[n++] = fats;
  if (p.fat_bits != 32) {
    mkfs[n++] = "-r";
    mkfs[n++] = root;
  }
  mkfs[n++] = "-h";
  mkfs[n++] = hidden;
  mkfs[n++] = "-g";
  mkfs[n++] = geometry;
  mkfs[n++] = "-D";
  mkfs[n++] = drive;
  mkfs[n++] = "-i";
  mkfs[n++] = serial;
  if (p.label[0] != '\0') {
    mkfs[n++] = "-n";
    mkfs[n++] = p.label;
  }
  mkfs[n++] = start;
  mkfs[n++] = disk_path;
  mkfs[n++] = kib;
  mkfs[n] = NULL;
  /* FAT keeps no owners: the files are unpacked as the user's own. */
  const char *untar[] = {"tar", "-x", "-f", esp_tar, "-C", tree,
                         "--no-same-owner", "--no-same-permissions", NULL};
  r = run_tool(t, untar, 0, NULL);
  unlink(esp_tar);
  if (r == 0)
    r = punch_partition(ctx, disk_path, offset, sectors * p.sector_size);
  if (r == 0)
    r = run_tool(t, mkfs, 0, NULL);
  if (r == 0)
    r = copy_fat_folder(ctx, t, image, tree, "", epoch, 0);
  remove_tree(tree);
  return r;
}

int vab_repro_normalise_esp(struct vab_ctx *ctx, const char *disk_path,
                            uint64_t offset, const char *esp_tar,
                            int64_t epoch) {
  static const char *const tools[] = {"minfo", "mmd", "mcopy", "mkfs.vfat",
                                      "tar", NULL};
  for (size_t i = 0; tools[i] != NULL; i++)
    if (!subprocess_have_program(tools[i]))
      return vab_error(ctx, VAB_E_SUBPROCESS,
                       "a reproducible build (SOURCE_DATE_EPOCH) of a disk "
                       "with an ESP needs %s (Debian: %s)", tools[i],
                       strcmp(tools[i], "tar") == 0         ? "tar"
                       : strcmp(tools[i], "mkfs.vfat") == 0 ? "dosfstools"
                                                            : "mtools");
  if (access(esp_tar, R_OK) < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot read the ESP's "
                           "files '%s' (a reproducible build makes the ESP "
                           "anew from them)", esp_tar);
  char *sde = NULL;
  if (asprintf(&sde, "SOURCE_DATE_EPOCH=%" PRId64, epoch) < 0)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  /* mtools: no geometry check of a disk image, no prompt; its times come
   * from SOURCE_DATE_EPOCH. */
  const char *extra[] = {sde, "MTOOLS_SKIP_CHECK=1", "LC_ALL=C", NULL};
  struct tool_run t = {.ctx = ctx, .env = environment_with(extra)};
  int r = t.env == NULL ? vab_error(ctx, VAB_E_NOMEM, "out of memory")
                        : rebuild_vfat(ctx, &t, disk_path, offset, esp_tar,
                                       epoch);
  free(t.env);
  free(sde);
  return r;
}

int vab_repro_finish(struct vab_ctx *ctx, const char *disk_path,
                     const char *disk_format, const struct vab_layout *layout,
                     const char *root_tar, uint64_t esp_offset,
                     const char *esp_tar) {
  bool set = false;
  int64_t epoch = 0;
  if (vab_repro_epoch(ctx, &set, &epoch) < 0)
    return -1;
  if (!set)
    return 0;
  if (vab_repro_normalise(ctx, disk_path, disk_format, layout, root_tar,
                          epoch) < 0)
    return -1;
  if (esp_tar != NULL && strcmp(disk_format, "raw") == 0 && esp_offset != 0)
    return vab_repro_normalise_esp(ctx, disk_path, esp_offset, esp_tar, epoch);
  return 0;
}
