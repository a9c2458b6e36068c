/* The step cache store (see cache.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vab/progress.h"
#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/vector.h"
#include "common/io.h"
#include "common/size.h"
#include "signing/digest.h"
#include "publish/step-cache.h"
#include "builder/cache.h"

struct vab_cache {
  struct vab_ctx *ctx;
  char *dir;        /* CACHE */
  char *steps;      /* CACHE/steps */
  bool exists;      /* steps/ is there (open without create) */
  struct vab_remote_cache *remote;  /* tried on a local miss, or NULL */
  uint64_t bytes_hashed;  /* read to record or verify entries' files */
};

struct vab_cache_writer {
  struct vab_cache *cache;
  struct vab_cache_meta meta;
  char *tmp;        /* steps/.tmp-KEY-XXXXXX */
};

static const char *const kinds[] = {
  "source", "layout", "provision", "sysprep", "test", "export", NULL,
};

bool vab_cache_key_valid(const char *key) {
  size_t n = 0;
  for (; key[n] != '\0'; n++)
    if (!((key[n] >= '0' && key[n] <= '9') || (key[n] >= 'a' && key[n] <= 'f')))
      return false;
  return n == 64;
}

static bool kind_valid(const char *kind) {
  for (size_t i = 0; kinds[i] != NULL; i++)
    if (strcmp(kind, kinds[i]) == 0)
      return true;
  return false;
}

static bool file_name_valid(const char *name) {
  size_t n = 0;
  for (; name[n] != '\0'; n++) {
    char c = name[n];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return false;
  }
  return n > 0 && n < 64 && name[0] != '.' && strcmp(name, "meta") != 0;
}

static bool label_valid(const char *label) {
  size_t n = 0;
  for (; label[n] != '\0'; n++)
    if ((unsigned char)label[n] < 0x20 || label[n] == 0x7f)
      return false;
  return n < 128;
}

/* ---- meta ---- */

/* Copy the next line (without '\n') into line; false at the end or when
 * the line is too long or has no '\n'. */
static bool next_line(const char **p, const char *end, char *line,
                      size_t cap, bool *bad) {
  *bad = false;
  if (*p >= end)
    return false;
  const char *nl = memchr(*p, '\n', (size_t)(end - *p));
  size_t len = nl != NULL ? (size_t)(nl - *p) : (size_t)(end - *p);
  if (nl == NULL || len >= cap || memchr(*p, '\0', len) != NULL) {
    *bad = true;
    return false;
  }
  memcpy(line, *p, len);
  line[len] = '\0';
  *p = nl + 1;
  return true;
}

static bool parse_u64(const char *s, uint64_t *out) {
  if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] != '\0'))
    return false;
  uint64_t v = 0;
  for (; *s != '\0'; s++) {
    if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
      return false;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  *out = v;
  return true;
}

/* "FIELD VALUE": the value after "FIELD ", or NULL. */
static const char *field(const char *line, const char *name) {
  size_t n = strlen(name);
  return strncmp(line, name, n) == 0 && line[n] == ' ' ? line + n + 1 : NULL;
}

int vab_cache_meta_parse(const char *text, size_t len,
                         struct vab_cache_meta *meta, char *err,
                         size_t err_len) {
  memset(meta, 0, sizeof *meta);
  const char *p = text, *end = text + len;
  char line[256];
  bool bad = false;
  unsigned n = 0;
#define FAIL(...)                                                              \
  do {                                                                         \
    snprintf(err, err_len, __VA_ARGS__);                                       \
    return -1;                                                                 \
  } while (0)
  if (len > VAB_CACHE_MAX_META)
    FAIL("larger than %d bytes", VAB_CACHE_MAX_META);
  static const char *const fields[] = {"key", "kind", "label", "created"};
  if (!next_line(&p, end, line, sizeof line, &bad) ||
      strcmp(line, "vab-cache 1") != 0)
    FAIL("line 1: not 'vab-cache 1'");
  n = 1;
  for (size_t f = 0; f < 4; f++) {
    n++;
    if (!next_line(&p, end, line, sizeof line, &bad))
      FAIL("line %u: %s", n, bad ? "too long or unterminated"
                                 : "missing the 'key' to 'created' fields");
    const char *v = field(line, fields[f]);
    if (v == NULL)
      FAIL("line %u: expected '%s'", n, fields[f]);
    switch (f) {
    case 0:
      if (!vab_cache_key_valid(v))
        FAIL("line %u: the key is not 64 lowercase hex digits", n);
      memcpy(meta->key, v, 65);
      break;
    case 1:
      if (!kind_valid(v))
        FAIL("line %u: unknown kind '%.20s'", n, v);
      snprintf(meta->kind, sizeof meta->kind, "%s", v);
      break;
    case 2:
      if (!label_valid(v))
        FAIL("line %u: the label is too long", n);
      snprintf(meta->label, sizeof meta->label, "%s", v);
      break;
    case 3: {
      uint64_t t;
      if (!parse_u64(v, &t) || t > INT64_MAX)
        FAIL("line %u: 'created' is not a time", n);
      meta->created = (int64_t)t;
      break;
    }
    }
  }
  while (next_line(&p, end, line, sizeof line, &bad)) {
    n++;
    const char *v = field(line, "file");
    if (v == NULL)
      FAIL("line %u: expected 'file'", n);
    if (meta->n_files == VAB_CACHE_MAX_FILES)
      FAIL("line %u: more than %d files", n, VAB_CACHE_MAX_FILES);
    struct vab_cache_file *f = &meta->files[meta->n_files];
    const char *sp1 = strchr(v, ' ');
    const char *sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
    if (sp2 == NULL || sp1 - v > 20 || sp2 - sp1 - 1 != 64)
      FAIL("line %u: expected 'file SIZE SHA256 NAME'", n);
    char size[21];
    memcpy(size, v, (size_t)(sp1 - v));
    size[sp1 - v] = '\0';
    memcpy(f->sha256, sp1 + 1, 64);
    f->sha256[64] = '\0';
    if (!parse_u64(size, &f->size) || !vab_cache_key_valid(f->sha256))
      FAIL("line %u: expected 'file SIZE SHA256 NAME'", n);
    if (!file_name_valid(sp2 + 1))
      FAIL("line %u: '%.64s' is not a file name the store uses", n, sp2 + 1);
    snprintf(f->name, sizeof f->name, "%s", sp2 + 1);
    for (size_t i = 0; i < meta->n_files; i++)
      if (strcmp(meta->files[i].name, f->name) == 0)
        FAIL("line %u: file '%s' twice", n, f->name);
    meta->n_files++;
  }
  if (bad)
    FAIL("line %u: too long or unterminated", n + 1);
  if (meta->n_files == 0)
    FAIL("no file");
#undef FAIL
  return 0;
}

int vab_cache_meta_format(const struct vab_cache_meta *meta, struct buf *out) {
  if (buf_printf(out, "vab-cache 1\nkey %s\nkind %s\nlabel %s\ncreated %" PRId64
                 "\n", meta->key, meta->kind, meta->label, meta->created) < 0)
    return -1;
  for (size_t i = 0; i < meta->n_files; i++)
    if (buf_printf(out, "file %" PRIu64 " %s %s\n", meta->files[i].size,
                   meta->files[i].sha256, meta->files[i].name) < 0)
      return -1;
  return 0;
}

/* ---- the store ---- */

int vab_cache_open(struct vab_ctx *ctx, const char *dir, bool create,
                   struct vab_cache **out) {
  *out = NULL;
  struct vab_cache *c = calloc(1, sizeof *c);
  if (c == NULL || (c->dir = strdup(dir)) == NULL ||
      asprintf(&c->steps, "%s/steps", dir) < 0) {
    if (c != NULL)
      free(c->dir);
    free(c);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  c->ctx = ctx;
  char failed[4096];
  struct stat st;
  if (create && mkdir_p(c->steps, 0755, failed, sizeof failed) < 0) {
    vab_error_errno(ctx, VAB_E_IO, errno, "cannot create the cache folder '%s'",
                    failed);
    vab_cache_close(c);
    return -1;
  }
  int bad = 0;
  if (stat(dir, &st) < 0)
    bad = errno == ENOENT ? 0 : errno;
  else if (!S_ISDIR(st.st_mode))
    bad = ENOTDIR;
  if (bad != 0) {
    vab_error_errno(ctx, VAB_E_IO, bad, "cannot use the cache folder '%s'",
                    dir);
    vab_cache_close(c);
    return -1;
  }
  if (stat(c->steps, &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      vab_error_errno(ctx, VAB_E_IO, ENOTDIR,
                      "cannot use the cache folder '%s'", c->steps);
      vab_cache_close(c);
      return -1;
    }
    c->exists = true;
  } else if (errno != ENOENT) {
    vab_error_errno(ctx, VAB_E_IO, errno, "cannot use the cache folder '%s'",
                    c->steps);
    vab_cache_close(c);
    return -1;
  }
  *out = c;
  return 0;
}

void vab_cache_close(struct vab_cache *cache) {
  if (cache == NULL)
    return;
  free(cache->dir);
  free(cache->steps);
  free(cache);
}

const char *vab_cache_dir(const struct vab_cache *cache) {
  return cache->dir;
}

static char *steps_path(struct vab_cache *c, const char *a, const char *b) {
  char *p = NULL;
  if (asprintf(&p, "%s/%s%s%s", c->steps, a, b != NULL ? "/" : "",
               b != NULL ? b : "") < 0)
    return NULL;
  return p;
}

/* flock(LOCK_EX) on KEY.lock, checking that the file locked is still the
 * one at the name (prune and clear unlink the lock of an entry they
 * removed).  wait false: 1 when another process holds it. */
static int take_lock(struct vab_cache *c, const char *key, bool wait,
                     const char *waiting_msg, int *fd_out) {
  CLEANUP_FREE char *path = NULL;
  if (asprintf(&path, "%s/%s.lock", c->steps, key) < 0)
    return vab_error(c->ctx, VAB_E_NOMEM, "out of memory");
  bool told = false;
  for (;;) {
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
      return vab_error_errno(c->ctx, VAB_E_IO, errno, "cannot open '%s'", path);
    while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
      int e = errno;
      if (e != EWOULDBLOCK && e != EINTR) {
        close(fd);
        return vab_error_errno(c->ctx, VAB_E_IO, e, "cannot lock '%s'", path);
      }
      if (!wait) {
        close(fd);
        return 1;
      }
      if (!told && waiting_msg != NULL) {
        vab_log(c->ctx, VAB_LOG_INFO, "%s", waiting_msg);
        told = true;
      }
      if (vab_check_cancel(c->ctx) < 0) {
        close(fd);
        return -1;
      }
      struct timespec ts = {0, 100 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
    struct stat held, named;
    if (fstat(fd, &held) == 0 && lstat(path, &named) == 0 &&
        held.st_dev == named.st_dev && held.st_ino == named.st_ino) {
      *fd_out = fd;
      return 0;
    }
    close(fd);   /* unlinked under us: lock the new one */
  }
}

/* Remove the .tmp-KEY-* folders: left by a killed writer, or a discarded
 * entry's remains (the caller holds KEY's lock). */
static void remove_temps(struct vab_cache *c, const char *key) {
  DIR *d = opendir(c->steps);
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, ".tmp-", 5) != 0 ||
        strncmp(e->d_name + 5, key, 64) != 0 || e->d_name[69] != '-')
      continue;
    CLEANUP_FREE char *path = steps_path(c, e->d_name, NULL);
    if (path != NULL) {
      vab_log(c->ctx, VAB_LOG_DEBUG, "cache: removing the leftover %s", path);
      remove_tree(path);
    }
  }
  closedir(d);
}

int vab_cache_lock(struct vab_cache *cache, const char *key,
                   const char *waiting_msg, struct vab_cache_lock *lock) {
  lock->fd = -1;
  if (!vab_cache_key_valid(key))
    return vab_error(cache->ctx, VAB_E_INTERNAL, "not a cache key: '%.80s'",
                     key);
  if (!cache->exists)
    return vab_error(cache->ctx, VAB_E_INTERNAL,
                     "the cache '%s' was not opened to write", cache->dir);
  if (take_lock(cache, key, true, waiting_msg, &lock->fd) < 0)
    return -1;
  memcpy(lock->key, key, 65);
  remove_temps(cache, key);
  return 0;
}

void vab_cache_unlock(struct vab_cache_lock *lock) {
  if (lock->fd >= 0)
    close(lock->fd);
  lock->fd = -1;
}

/* Move an entry out of the way (to a .tmp- name) and remove it. */
static int remove_entry(struct vab_cache *c, const char *key) {
  CLEANUP_FREE char *entry = steps_path(c, key, NULL);
  CLEANUP_FREE char *trash = NULL;
  if (entry == NULL || asprintf(&trash, "%s/.tmp-%s-XXXXXX", c->steps, key) < 0)
    return vab_error(c->ctx, VAB_E_NOMEM, "out of memory");
  if (mkdtemp(trash) == NULL)
    return vab_error_errno(c->ctx, VAB_E_IO, errno, "cannot create '%s'",
                           trash);
  /* rename(2) replaces an empty folder. */
  if (rename(entry, trash) < 0) {
    int e = errno;
    rmdir(trash);
    if (e == ENOENT)
      return 0;
    return vab_error_errno(c->ctx, VAB_E_IO, e, "cannot remove '%s'", entry);
  }
  remove_tree(trash);
  return 0;
}

/* Read meta (a regular file, never through a link, bounded). */
static int read_meta(struct vab_cache *c, const char *key, char *text,
                     size_t cap, size_t *len, struct stat *st, char *why,
                     size_t why_len) {
  CLEANUP_FREE char *path = steps_path(c, key, "meta");
  if (path == NULL)
    return vab_error(c->ctx, VAB_E_NOMEM, "out of memory");
  bool not_regular = false;
  int fd = open_regular_file_nofollow(path, st, &not_regular);
  if (fd < 0 && !not_regular && errno == ENOENT) {
    snprintf(why, why_len, "it has no meta");
    return 1;
  }
  if (fd < 0) {
    snprintf(why, why_len, "cannot read its meta: %s",
             not_regular ? "not a regular file" : strerror(errno));
    return 1;
  }
  if ((uint64_t)st->st_size >= cap) {
    close(fd);
    snprintf(why, why_len, "its meta is larger than %zu bytes", cap - 1);
    return 1;
  }
  ssize_t n = read_full(fd, text, cap - 1);
  int e = errno;
  close(fd);
  if (n < 0) {
    snprintf(why, why_len, "cannot read its meta: %s", strerror(e));
    return 1;
  }
  text[n] = '\0';
  *len = (size_t)n;
  return 0;
}

/* Load and parse KEY's meta.  0 ok, 1 corrupt (why says how), 2 absent. */
static int load_meta(struct vab_cache *c, const char *key,
                     struct vab_cache_meta *meta, struct stat *st, char *why,
                     size_t why_len) {
  CLEANUP_FREE char *entry = steps_path(c, key, NULL);
  struct stat est;
  if (entry == NULL)
    return vab_error(c->ctx, VAB_E_NOMEM, "out of memory");
  if (lstat(entry, &est) < 0 && errno == ENOENT)
    return 2;
  char text[VAB_CACHE_MAX_META + 1];
  size_t len = 0;
  int r = read_meta(c, key, text, sizeof text, &len, st, why, why_len);
  if (r != 0)
    return r;
  char err[128];
  if (vab_cache_meta_parse(text, len, meta, err, sizeof err) < 0) {
    snprintf(why, why_len, "its meta is corrupt (%s)", err);
    return 1;
  }
  if (strcmp(meta->key, key) != 0) {
    snprintf(why, why_len, "its meta names another key");
    return 1;
  }
  return 0;
}

/* Hash fd to the end, writing each block to out_fd when it is >= 0. */
/* Read fd to its end, copying to out_fd when it is not -1, and hashing
 * into hex unless hex is NULL (a copy of bytes verified already). */
static int hash_fd(struct vab_cache *c, int fd, int out_fd, uint64_t *size,
                   char hex[65], int *err) {
  struct vab_ctx *ctx = c->ctx;
  struct vab_sha256 *h = NULL;
  if (hex != NULL && (h = vab_sha256_new(ctx)) == NULL)
    return -1;
  size_t cap = 1 << 20;
  char *block = malloc(cap);
  if (block == NULL) {
    vab_sha256_free(h);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  *size = 0;
  *err = 0;
  for (;;) {
    ssize_t n = read_full(fd, block, cap);
    if (n < 0 || (out_fd >= 0 && n > 0 &&
                  write_full(out_fd, block, (size_t)n) < 0)) {
      *err = errno;
      break;
    }
    if (n == 0)
      break;
    *size += (uint64_t)n;
    if (h != NULL && vab_sha256_update(h, block, (size_t)n) < 0) {
      vab_sha256_free(h);
      free(block);
      return -1;
    }
    if (vab_cancelled(ctx))
      break;
  }
  free(block);
  if (h == NULL)
    return vab_check_cancel(ctx);
  c->bytes_hashed += *size;
  uint8_t digest[32];
  if (vab_sha256_final(h, digest) < 0)
    return -1;
  vab_hex(digest, sizeof digest, hex);
  return vab_check_cancel(ctx);
}

/* Put one recorded file at dst, verified unless verified is true (its
 * bytes were checked on the way into the store, under this lock).  0 ok,
 * 1 does not match (why). */
static int place_file(struct vab_cache *c, const char *src, const char *dst,
                      const struct vab_cache_file *f, bool verified,
                      char *why, size_t why_len) {
  bool linked = link(src, dst) == 0;
  if (!linked && errno != EXDEV && errno != EPERM && errno != EMLINK) {
    if (errno == ENOENT) {
      snprintf(why, why_len, "%s is missing", f->name);
      return 1;
    }
    return vab_error_errno(c->ctx, VAB_E_IO, errno, "cannot create '%s'", dst);
  }
  struct stat st;
  bool not_regular = false;
  int in = open_regular_file_nofollow(linked ? dst : src, &st, &not_regular);
  if (in < 0) {
    int e = errno;
    if (linked)
      unlink(dst);
    snprintf(why, why_len, "cannot read %s: %s", f->name,
             not_regular ? "not a regular file" : strerror(e));
    return 1;
  }
  if ((uint64_t)st.st_size != f->size) {
    close(in);
    if (linked)
      unlink(dst);
    snprintf(why, why_len, "%s has %llu bytes, %llu recorded", f->name,
             (unsigned long long)st.st_size, (unsigned long long)f->size);
    return 1;
  }
  if (linked && verified) {
    close(in);
    return 0;
  }
  int out = -1;
  if (!linked) {
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (out < 0) {
      int e = errno;
      close(in);
      return vab_error_errno(c->ctx, VAB_E_IO, e, "cannot create '%s'", dst);
    }
  }
  char hex[65];
  uint64_t size = 0;
  int e = 0;
  int r = hash_fd(c, in, out, &size, verified ? NULL : hex, &e);
  close(in);
  if (out >= 0 && close(out) < 0 && e == 0)
    e = errno;
  if (r == 0 && e != 0 && !linked)
    r = vab_error_errno(c->ctx, VAB_E_IO, e, "cannot copy '%s' to '%s'", src,
                        dst);
  if (r == 0 && e != 0) {
    snprintf(why, why_len, "cannot read %s: %s", f->name, strerror(e));
    r = 1;
  } else if (r == 0 && size != f->size) {
    snprintf(why, why_len, "%s has %llu bytes, %llu recorded", f->name,
             (unsigned long long)size, (unsigned long long)f->size);
    r = 1;
  } else if (r == 0 && !verified && strcmp(hex, f->sha256) != 0) {
    snprintf(why, why_len, "%s has sha256 %s, %s recorded", f->name, hex,
             f->sha256);
    r = 1;
  }
  if (r != 0)
    unlink(dst);
  return r;
}

/* verified: the entry was just stored from bytes checked on the way in
 * (fetch_remote, under this lock), so its files are not hashed again. */
static int get_local(struct vab_cache *cache, const struct vab_cache_lock *lock,
                     const char *dest_dir, bool verified,
                     struct vab_cache_meta *meta) {
  struct vab_ctx *ctx = cache->ctx;
  const char *key = lock->key;
  char why[256] = "";
  struct stat st;
  int r = load_meta(cache, key, meta, &st, why, sizeof why);
  if (r < 0)
    return -1;
  if (r == 2)
    return 0;
  size_t placed = 0;
  for (size_t i = 0; r == 0 && i < meta->n_files; i++) {
    const struct vab_cache_file *f = &meta->files[i];
    CLEANUP_FREE char *src = steps_path(cache, key, f->name);
    CLEANUP_FREE char *dst = NULL;
    if (src == NULL || asprintf(&dst, "%s/%s", dest_dir, f->name) < 0)
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
    else if ((r = place_file(cache, src, dst, f, verified, why,
                             sizeof why)) == 0)
      placed++;
  }
  if (r != 0) {
    for (size_t i = 0; i < placed; i++) {
      CLEANUP_FREE char *dst = NULL;
      if (asprintf(&dst, "%s/%s", dest_dir, meta->files[i].name) >= 0)
        unlink(dst);
    }
  }
  if (r < 0)
    return -1;
  if (r == 1) {
    vab_warn_at(ctx, NULL, "cache entry %s%s%s%s is unusable: %s; discarded",
                key, meta->label[0] != '\0' ? " (" : "", meta->label,
                meta->label[0] != '\0' ? ")" : "", why);
    memset(meta, 0, sizeof *meta);
    return remove_entry(cache, key) < 0 ? -1 : 0;
  }
  /* The entry's last use: meta's mtime. */
  CLEANUP_FREE char *meta_path = steps_path(cache, key, "meta");
  if (meta_path != NULL)
    utimensat(AT_FDCWD, meta_path, NULL, AT_SYMLINK_NOFOLLOW);
  vab_log(ctx, VAB_LOG_DEBUG, "cache: hit %s (%s)", key, meta->label);
  return 1;
}

static int fetch_remote(struct vab_cache *c, const struct vab_cache_lock *lock);

int vab_cache_get(struct vab_cache *cache, const struct vab_cache_lock *lock,
                  const char *dest_dir, struct vab_cache_meta *meta) {
  int r = get_local(cache, lock, dest_dir, false, meta);
  if (r != 0 || cache->remote == NULL)
    return r;
  r = fetch_remote(cache, lock);
  if (r <= 0)
    return r;
  /* The entry as stored: its files were verified on the way in (the
   * download against the layer's digest, which is meta's sha256). */
  return get_local(cache, lock, dest_dir, true, meta);
}

bool vab_cache_has(struct vab_cache *cache, const char *key) {
  if (!vab_cache_key_valid(key))
    return false;
  CLEANUP_FREE char *meta_path = steps_path(cache, key, "meta");
  struct stat st;
  return meta_path != NULL && lstat(meta_path, &st) == 0 &&
         S_ISREG(st.st_mode);
}

/* ---- writing ---- */

int vab_cache_begin(struct vab_cache *cache, const struct vab_cache_lock *lock,
                    const char *kind, const char *label,
                    struct vab_cache_writer **out) {
  struct vab_ctx *ctx = cache->ctx;
  *out = NULL;
  if (lock->fd < 0 || !kind_valid(kind))
    return vab_error(ctx, VAB_E_INTERNAL, "cache: a write without its lock "
                     "or of kind '%.20s'", kind);
  struct vab_cache_writer *w = calloc(1, sizeof *w);
  if (w == NULL ||
      asprintf(&w->tmp, "%s/.tmp-%s-XXXXXX", cache->steps, lock->key) < 0) {
    free(w);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  w->cache = cache;
  memcpy(w->meta.key, lock->key, 65);
  snprintf(w->meta.kind, sizeof w->meta.kind, "%s", kind);
  /* A label is printable text on one line. */
  size_t n = 0;
  for (; label[n] != '\0' && n + 1 < sizeof w->meta.label; n++)
    w->meta.label[n] = (unsigned char)label[n] < 0x20 || label[n] == 0x7f
                           ? '?' : label[n];
  w->meta.label[n] = '\0';
  if (mkdtemp(w->tmp) == NULL) {
    int e = errno;
    vab_error_errno(ctx, VAB_E_IO, e, "cannot create '%s'", w->tmp);
    free(w->tmp);
    free(w);
    return -1;
  }
  /* 0755: a root mmdebstrap writes here, and readers link from here. */
  chmod(w->tmp, 0755);
  *out = w;
  return 0;
}

int vab_cache_writer_path(struct vab_cache_writer *w, const char *name,
                          char **path) {
  *path = NULL;
  if (!file_name_valid(name))
    return vab_error(w->cache->ctx, VAB_E_INTERNAL,
                     "cache: '%.64s' is not an entry's file name", name);
  if (asprintf(path, "%s/%s", w->tmp, name) < 0) {
    *path = NULL;
    return vab_error(w->cache->ctx, VAB_E_NOMEM, "out of memory");
  }
  return 0;
}

/* Add name (written at its writer path) to the entry: hashed, unless
 * known gives its size and sha256, checked on the way in already. */
static int writer_add(struct vab_cache_writer *w, const char *name,
                      const struct vab_cache_file *known) {
  struct vab_ctx *ctx = w->cache->ctx;
  if (w->meta.n_files == VAB_CACHE_MAX_FILES)
    return vab_error(ctx, VAB_E_INTERNAL, "cache: more than %d files",
                     VAB_CACHE_MAX_FILES);
  for (size_t i = 0; i < w->meta.n_files; i++)
    if (strcmp(w->meta.files[i].name, name) == 0)
      return vab_error(ctx, VAB_E_INTERNAL, "cache: '%s' added twice", name);
  CLEANUP_FREE char *path = NULL;
  if (vab_cache_writer_path(w, name, &path) < 0)
    return -1;
  struct stat st;
  bool not_regular = false;
  int fd = open_regular_file_nofollow(path, &st, &not_regular);
  if (fd < 0)
    return vab_error_errno(ctx, VAB_E_IO, not_regular ? EINVAL : errno,
                           "cannot read '%s'", path);
  struct vab_cache_file *f = &w->meta.files[w->meta.n_files];
  int e = 0, r = 0;
  if (known == NULL) {
    r = hash_fd(w->cache, fd, -1, &f->size, f->sha256, &e);
  } else if ((uint64_t)st.st_size != known->size) {
    r = vab_error(ctx, VAB_E_INTERNAL, "cache: '%s' has %llu bytes, %llu "
                  "downloaded", path, (unsigned long long)st.st_size,
                  (unsigned long long)known->size);
  } else {
    f->size = known->size;
    memcpy(f->sha256, known->sha256, sizeof f->sha256);
  }
  if (r == 0 && e != 0)
    r = vab_error_errno(ctx, VAB_E_IO, e, "cannot read '%s'", path);
  if (r == 0 && fsync(fd) < 0)
    r = vab_error_errno(ctx, VAB_E_IO, errno, "cannot sync '%s'", path);
  close(fd);
  if (r < 0)
    return -1;
  snprintf(f->name, sizeof f->name, "%s", name);
  w->meta.n_files++;
  return 0;
}

int vab_cache_writer_add(struct vab_cache_writer *w, const char *name) {
  return writer_add(w, name, NULL);
}

static int writer_add_verified(struct vab_cache_writer *w,
                               const struct vab_cache_file *f) {
  return writer_add(w, f->name, f);
}

uint64_t vab_cache_bytes_hashed(const struct vab_cache *cache) {
  return cache->bytes_hashed;
}

static void writer_free(struct vab_cache_writer *w) {
  free(w->tmp);
  free(w);
}

void vab_cache_abort(struct vab_cache_writer *w) {
  if (w == NULL)
    return;
  remove_tree(w->tmp);
  writer_free(w);
}

int vab_cache_commit(struct vab_cache_writer *w) {
  struct vab_cache *c = w->cache;
  struct vab_ctx *ctx = c->ctx;
  w->meta.created = (int64_t)time(NULL);
  struct buf text = BUF_INIT;
  CLEANUP_FREE char *meta_path = NULL;
  CLEANUP_FREE char *entry = steps_path(c, w->meta.key, NULL);
  int r = 0;
  if (w->meta.n_files == 0)
    r = vab_error(ctx, VAB_E_INTERNAL, "cache: an entry with no file");
  else if (entry == NULL || asprintf(&meta_path, "%s/meta", w->tmp) < 0 ||
           vab_cache_meta_format(&w->meta, &text) < 0)
    r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  if (r == 0) {
    int fd = open(meta_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
                  O_CLOEXEC, 0644);
    if (fd < 0 || write_full(fd, text.data, text.len) < 0 || fsync(fd) < 0)
      r = vab_error_errno(ctx, VAB_E_IO, errno, "cannot write '%s'", meta_path);
    if (fd >= 0 && close(fd) < 0 && r == 0)
      r = vab_error_errno(ctx, VAB_E_IO, errno, "cannot write '%s'", meta_path);
  }
  buf_release(&text);
  /* Refreshing (--no-cache): the old entry goes first, under the lock. */
  if (r == 0)
    r = remove_entry(c, w->meta.key);
  if (r == 0 && rename(w->tmp, entry) < 0)
    r = vab_error_errno(ctx, VAB_E_IO, errno, "cannot rename '%s' to '%s'",
                        w->tmp, entry);
  if (r == 0 && sync_parent_folder(entry) < 0)
    r = vab_error_errno(ctx, VAB_E_IO, errno, "cannot sync '%s'", c->steps);
  if (r == 0)
    vab_log(ctx, VAB_LOG_DEBUG, "cache: stored %s (%s)", w->meta.key,
            w->meta.label);
  if (r < 0)
    remove_tree(w->tmp);
  writer_free(w);
  return r;
}

/* ---- listing and eviction ---- */

static uint64_t entry_size(struct vab_cache *c, const char *key,
                           const struct stat *meta_st) {
  uint64_t total = (uint64_t)meta_st->st_size;
  CLEANUP_FREE char *entry = steps_path(c, key, NULL);
  DIR *d = entry != NULL ? opendir(entry) : NULL;
  if (d == NULL)
    return total;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    struct stat st;
    if (strcmp(e->d_name, "meta") != 0 && e->d_name[0] != '.' &&
        fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(st.st_mode))
      total += (uint64_t)st.st_size;
  }
  closedir(d);
  return total;
}

static void info_of(struct vab_cache *c, const char *key,
                    struct vab_cache_info *info) {
  memset(info, 0, sizeof *info);
  struct stat st;
  memset(&st, 0, sizeof st);
  int r = load_meta(c, key, &info->meta, &st, info->problem,
                    sizeof info->problem);
  memcpy(info->meta.key, key, 65);
  info->last_used = st.st_mtime;
  info->size = entry_size(c, key, &st);
  if (r != 0)
    return;
  info->ok = true;
  for (size_t i = 0; i < info->meta.n_files && info->ok; i++) {
    const struct vab_cache_file *f = &info->meta.files[i];
    CLEANUP_FREE char *path = steps_path(c, key, f->name);
    struct stat fst;
    if (path == NULL || lstat(path, &fst) < 0 || !S_ISREG(fst.st_mode)) {
      snprintf(info->problem, sizeof info->problem, "%s is missing", f->name);
      info->ok = false;
    } else if ((uint64_t)fst.st_size != f->size) {
      snprintf(info->problem, sizeof info->problem,
               "%s has %llu bytes, %llu recorded", f->name,
               (unsigned long long)fst.st_size, (unsigned long long)f->size);
      info->ok = false;
    }
  }
}

static int by_last_use(const void *a, const void *b) {
  const struct vab_cache_info *x = a, *y = b;
  if (x->last_used != y->last_used)
    return x->last_used < y->last_used ? -1 : 1;
  return strcmp(x->meta.key, y->meta.key);
}

int vab_cache_list(struct vab_cache *cache, struct vab_cache_info **out,
                   size_t *n_out) {
  *out = NULL;
  *n_out = 0;
  if (!cache->exists)
    return 0;
  DIR *d = opendir(cache->steps);
  if (d == NULL)
    return vab_error_errno(cache->ctx, VAB_E_IO, errno, "cannot read '%s'",
                           cache->steps);
  struct vab_cache_info *list = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  int r = 0;
  while ((e = readdir(d)) != NULL) {
    struct stat st;
    if (!vab_cache_key_valid(e->d_name) ||
        fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
        !S_ISDIR(st.st_mode))
      continue;
    if (n == cap) {
      size_t ncap = cap ? 2 * cap : 16;
      struct vab_cache_info *nl = realloc(list, ncap * sizeof *nl);
      if (nl == NULL) {
        r = vab_error(cache->ctx, VAB_E_NOMEM, "out of memory");
        break;
      }
      list = nl;
      cap = ncap;
    }
    info_of(cache, e->d_name, &list[n++]);
  }
  closedir(d);
  if (r < 0) {
    free(list);
    return -1;
  }
  if (n > 0)
    qsort(list, n, sizeof *list, by_last_use);
  *out = list;
  *n_out = n;
  return 0;
}

/* The stale .tmp- folders of keys no process holds. */
struct key_name {
  char hex[65];
};
DEFINE_VECTOR_TYPE(key_name_vector, struct key_name);

static void remove_stale_temps(struct vab_cache *c) {
  DIR *d = opendir(c->steps);
  if (d == NULL)
    return;
  /* Collected first: the removals below must not race the readdir. */
  struct key_name_vector keys = VECTOR_INIT;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    struct key_name key;
    if (strncmp(e->d_name, ".tmp-", 5) != 0 || strlen(e->d_name) != 76 ||
        e->d_name[69] != '-')
      continue;
    memcpy(key.hex, e->d_name + 5, 64);
    key.hex[64] = '\0';
    /* Out of memory: the rest wait for the next prune. */
    if (vab_cache_key_valid(key.hex) && key_name_vector_append(&keys, key) < 0)
      break;
  }
  closedir(d);
  for (size_t i = 0; i < keys.len; i++) {
    int fd = -1;
    if (take_lock(c, keys.ptr[i].hex, false, NULL, &fd) == 0) {
      remove_temps(c, keys.ptr[i].hex);
      close(fd);
    }
  }
  key_name_vector_reset(&keys);
}

/* Remove one entry unless a build holds it: 1 removed, 0 kept, -1 error
 * (recorded). */
static int prune_entry(struct vab_cache *cache,
                       const struct vab_cache_info *info,
                       struct vab_cache_prune_result *res) {
  int fd = -1;
  int r = take_lock(cache, info->meta.key, false, NULL, &fd);
  if (r != 0) {
    /* Busy (a build holds it) or unlockable: it stays. */
    res->busy += r == 1;
    res->kept++;
    res->kept_size += info->size;
    return r < 0 ? -1 : 0;
  }
  r = remove_entry(cache, info->meta.key);
  if (r < 0) {
    res->kept++;
    res->kept_size += info->size;
  } else {
    vab_log(cache->ctx, VAB_LOG_DEBUG, "cache: removed %s (%s)",
            info->meta.key, info->ok ? info->meta.label : info->problem);
    res->removed++;
    res->freed += info->size;
    /* The lock goes too; a process waiting on it notices (take_lock). */
    CLEANUP_FREE char *lock_path = NULL;
    if (asprintf(&lock_path, "%s/%s.lock", cache->steps, info->meta.key) >= 0)
      unlink(lock_path);
    r = 1;
  }
  close(fd);
  return r;
}

int vab_cache_prune(struct vab_cache *cache,
                    const struct vab_cache_prune_opts *opts,
                    struct vab_cache_prune_result *res) {
  memset(res, 0, sizeof *res);
  struct vab_cache_info *list = NULL;
  size_t n = 0;
  if (vab_cache_list(cache, &list, &n) < 0)
    return -1;
  if (cache->exists)
    remove_stale_temps(cache);
  uint64_t total = 0;
  for (size_t i = 0; i < n; i++)
    total += list[i].size;
  time_t now = time(NULL);
  int status = 0;
  /* The unsound first, so that they never count against the size that
   * sound ones may keep; then the sound, least recently used first. */
  for (int sound = 0; sound < 2; sound++) {
    for (size_t i = 0; i < n; i++) {
      const struct vab_cache_info *info = &list[i];
      if (info->ok != (sound == 1))
        continue;
      bool go = opts->all || !info->ok ||
                (opts->older_than >= 0 &&
                 (int64_t)(now - info->last_used) > opts->older_than) ||
                total > opts->max_size;
      if (!go) {
        res->kept++;
        res->kept_size += info->size;
        continue;
      }
      int r = prune_entry(cache, info, res);
      if (r == 1)
        total -= info->size;
      else if (r < 0)
        status = -1;
    }
  }
  free(list);
  return status;
}

int vab_cache_default_max_size(struct vab_ctx *ctx, uint64_t *out) {
  const char *v = getenv("VAB_CACHE_MAX_SIZE");
  *out = VAB_CACHE_DEFAULT_MAX_SIZE;
  if (v == NULL || *v == '\0')
    return 0;
  if (vab_parse_size(v, out) < 0)
    return vab_error(ctx, VAB_E_USAGE,
                     "VAB_CACHE_MAX_SIZE='%.40s' is not a size such as 10G", v);
  return 0;
}

/* ---- the bootstrap cache of vab before the step cache ---- */

/* Scan CACHE/bootstrap/: files and bytes into out; *busy when a lock in
 * it is held by a live process (taken here with LOCK_NB, released at
 * once).  0, or -1 with errno set; ENOENT when there is no folder. */
static int scan_legacy_folder(const char *folder, struct vab_cache_legacy *out,
                       bool *busy) {
  memset(out, 0, sizeof *out);
  *busy = false;
  int dir_fd = open(folder, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir_fd < 0)
    return -1;
  DIR *dir = fdopendir(dir_fd);
  if (dir == NULL) {
    int e = errno;
    close(dir_fd);
    errno = e;
    return -1;
  }
  out->present = true;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    struct stat st;
    if (fstatat(dir_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
        !S_ISREG(st.st_mode))
      continue;
    out->files++;
    out->size += (uint64_t)st.st_size;
    size_t len = strlen(e->d_name);
    if (len > 5 && strcmp(e->d_name + len - 5, ".lock") == 0) {
      int fd = openat(dir_fd, e->d_name,
                      O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
      if (fd >= 0 && flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK)
        *busy = true;
      if (fd >= 0)
        close(fd);
    }
  }
  closedir(dir);
  return 0;
}

/* Scan cache's bootstrap/ (its path in *folder): 1 there, 0 not there,
 * -1 error on the context. */
static int legacy_scan(struct vab_cache *cache, char **folder,
                       struct vab_cache_legacy *out, bool *busy) {
  memset(out, 0, sizeof *out);
  *busy = false;
  if (asprintf(folder, "%s/bootstrap", cache->dir) < 0) {
    *folder = NULL;
    return vab_error(cache->ctx, VAB_E_NOMEM, "out of memory");
  }
  if (scan_legacy_folder(*folder, out, busy) == 0)
    return 1;
  if (errno == ENOENT || errno == ENOTDIR)
    return 0;
  return vab_error_errno(cache->ctx, VAB_E_IO, errno, "cannot read '%s'",
                         *folder);
}

int vab_cache_legacy_info(struct vab_cache *cache,
                          struct vab_cache_legacy *out) {
  CLEANUP_FREE char *folder = NULL;
  bool busy;
  return legacy_scan(cache, &folder, out, &busy) < 0 ? -1 : 0;
}

int vab_cache_legacy_remove(struct vab_cache *cache,
                            struct vab_cache_legacy *gone) {
  CLEANUP_FREE char *folder = NULL;
  bool busy;
  int r = legacy_scan(cache, &folder, gone, &busy);
  if (r <= 0)
    return r;
  if (busy)
    return 2;
  remove_tree(folder);
  struct stat st;
  if (lstat(folder, &st) == 0)
    return vab_error(cache->ctx, VAB_E_IO, "cannot remove '%s' whole",
                     folder);
  return 1;
}

/* ---- the registry cache behind the store ---- */

void vab_cache_set_remote(struct vab_cache *cache,
                          struct vab_remote_cache *remote) {
  cache->remote = remote;
}

/* The remote entry's layer holding file name, or NULL. */
static const struct vab_remote_cache_layer *
remote_layer(const struct vab_remote_cache_entry *e, const char *name) {
  for (size_t j = 0; j < e->n_layers; j++)
    if (strcmp(e->layers[j].name, name) == 0)
      return &e->layers[j];
  return NULL;
}

/* Does the remote entry e hold exactly the files meta lists?  "" when it
 * does, else why not in why. */
static void match_layers(const struct vab_cache_meta *meta,
                         const struct vab_remote_cache_entry *e, char *why,
                         size_t why_len) {
  why[0] = '\0';
  if (meta->n_files != e->n_layers) {
    snprintf(why, why_len, "its meta lists %zu files, its manifest %zu layers",
             meta->n_files, e->n_layers);
    return;
  }
  for (size_t i = 0; i < meta->n_files; i++) {
    const struct vab_cache_file *f = &meta->files[i];
    const struct vab_remote_cache_layer *l = remote_layer(e, f->name);
    if (l == NULL) {
      snprintf(why, why_len, "its manifest has no layer for the file %s",
               f->name);
      return;
    }
    if (l->size != f->size || strncmp(l->digest, "sha256:", 7) != 0 ||
        strcmp(l->digest + 7, f->sha256) != 0) {
      snprintf(why, why_len,
               "the layer %s is %.71s (%llu bytes), its meta says sha256:%s "
               "(%llu bytes)",
               f->name, l->digest, (unsigned long long)l->size, f->sha256,
               (unsigned long long)f->size);
      return;
    }
  }
}

int vab_cache_check_remote(const char *key,
                           const struct vab_remote_cache_entry *e,
                           struct vab_cache_meta *meta, char *why,
                           size_t why_len) {
  char err[128];
  if (e->record == NULL ||
      vab_cache_meta_parse(e->record, e->record_len, meta, err,
                           sizeof err) < 0) {
    snprintf(why, why_len, "its meta is corrupt (%s)",
             e->record == NULL ? "absent" : err);
    return -1;
  }
  if (strcmp(meta->key, key) != 0) {
    snprintf(why, why_len, "its meta names another key, %s", meta->key);
    return -1;
  }
  match_layers(meta, e, why, why_len);
  return why[0] == '\0' ? 0 : -1;
}

/* Download the remote entry e (checked against meta) into a writer and
 * commit it: 1 stored, 0 not usable (why says why), -1 a local error. */
static int store_remote(struct vab_cache *c, const struct vab_cache_lock *lock,
                        const struct vab_cache_meta *meta,
                        const struct vab_remote_cache_entry *e, char *why,
                        size_t why_len) {
  struct vab_cache_writer *w = NULL;
  if (vab_cache_begin(c, lock, meta->kind, meta->label, &w) < 0)
    return -1;
  for (size_t i = 0; i < meta->n_files; i++) {
    const struct vab_cache_file *f = &meta->files[i];
    const struct vab_remote_cache_layer *l = remote_layer(e, f->name);
    CLEANUP_FREE char *path = NULL;
    if (vab_cache_writer_path(w, f->name, &path) < 0) {
      vab_cache_abort(w);
      return -1;
    }
    if (vab_remote_cache_download(c->remote, l, path) < 0) {
      snprintf(why, why_len, "%s", vab_remote_cache_error(c->remote));
      vab_cache_abort(w);
      return 0;
    }
    /* The download hashed the bytes on their way in and checked them
     * against the layer's digest, which vab_cache_check_remote matched
     * with meta's: recorded as they are, not hashed again. */
    if (writer_add_verified(w, f) < 0) {
      vab_cache_abort(w);
      return -1;
    }
  }
  return vab_cache_commit(w) < 0 ? -1 : 1;
}

/* On a local miss: the key from the registry cache.  1 now in the store,
 * 0 a miss (a warning said why when the entry was there but not usable,
 * or the registry could not be used), -1 a local error. */
static int fetch_remote(struct vab_cache *c, const struct vab_cache_lock *lock) {
  struct vab_ctx *ctx = c->ctx;
  struct vab_remote_cache *rc = c->remote;
  const char *key = lock->key;
  if (!vab_remote_cache_alive(rc))
    return 0;  /* said once already */
  struct vab_remote_cache_entry e;
  int found = vab_remote_cache_lookup(rc, key, &e);
  if (found < 0) {
    if (!vab_remote_cache_alive(rc))
      vab_warn_at(ctx, NULL, "registry cache %s cannot be used: %s; going on "
                  "without it", vab_remote_cache_ref(rc),
                  vab_remote_cache_error(rc));
    else
      vab_warn_at(ctx, NULL, "registry cache %s: entry %s not used: %s",
                  vab_remote_cache_ref(rc), key, vab_remote_cache_error(rc));
    return 0;
  }
  if (found == 0) {
    vab_log(ctx, VAB_LOG_INFO, "registry cache %s has no entry %s",
            vab_remote_cache_ref(rc), key);
    return 0;
  }
  struct vab_cache_meta meta;
  char why[640] = "";
  int r = 0;
  if (vab_cache_check_remote(key, &e, &meta, why, sizeof why) == 0)
    r = store_remote(c, lock, &meta, &e, why, sizeof why);
  if (r == 0)
    vab_warn_at(ctx, NULL, "registry cache %s: entry %s (%s) not used: %s",
                vab_remote_cache_ref(rc), key, e.manifest_digest, why);
  else if (r == 1)
    vab_log(ctx, VAB_LOG_INFO, "registry cache %s: got entry %s (%s)",
            vab_remote_cache_ref(rc), key, meta.label);
  vab_remote_cache_entry_release(&e);
  return r;
}

int vab_cache_push(struct vab_cache *cache, const char *key,
                   struct vab_remote_cache *remote,
                   struct vab_remote_cache_stats *stats) {
  struct vab_ctx *ctx = cache->ctx;
  if (!cache->exists)
    return 0;
  struct vab_cache_lock lock;
  if (vab_cache_lock(cache, key, "waiting for a build using the cache entry "
                     "to push", &lock) < 0)
    return -1;
  char text[VAB_CACHE_MAX_META + 1], why[256], err[128];
  size_t len = 0;
  struct stat st;
  struct vab_cache_meta meta;
  CLEANUP_FREE char *entry = steps_path(cache, key, NULL);
  struct vab_remote_cache_file files[VAB_CACHE_MAX_FILES];
  size_t opened = 0;
  int r = 0;
  if (entry == NULL) {
    r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  } else if (lstat(entry, &st) < 0 ||
             (r = read_meta(cache, key, text, sizeof text, &len, &st, why,
                            sizeof why)) != 0 ||
             vab_cache_meta_parse(text, len, &meta, err, sizeof err) < 0 ||
             strcmp(meta.key, key) != 0) {
    r = r < 0 ? -1 : 0;   /* absent or not sound: nothing to push */
    vab_cache_unlock(&lock);
    return r;
  }
  for (size_t i = 0; r == 0 && i < meta.n_files; i++) {
    const struct vab_cache_file *f = &meta.files[i];
    CLEANUP_FREE char *path = steps_path(cache, key, f->name);
    bool not_regular = false;
    int fd = path != NULL ? open_regular_file_nofollow(path, &st, &not_regular)
                          : -1;
    if (fd < 0 || (uint64_t)st.st_size != f->size) {
      if (fd >= 0)
        close(fd);
      r = 1;  /* not sound */
      break;
    }
    files[opened++] = (struct vab_remote_cache_file){
        .name = f->name, .fd = fd, .size = f->size, .sha256 = f->sha256};
  }
  /* Open files stay readable whatever happens to the entry: others may
   * use the key while the upload runs. */
  vab_cache_unlock(&lock);
  if (r == 0 && vab_remote_cache_push(remote, key, text, len, files, opened,
                                      stats) < 0)
    r = vab_error(ctx, VAB_E_NETWORK, "registry cache %s: cannot push entry "
                  "%s (%s): %s", vab_remote_cache_ref(remote), key,
                  meta.label, vab_remote_cache_error(remote));
  for (size_t i = 0; i < opened; i++)
    close(files[i].fd);
  if (r < 0)
    return -1;
  return r == 0 ? 1 : 0;
}
