/* The step cache: a content-addressed store of step results, in the manner
 * of git's object store and ccache.
 *
 *   CACHE/steps/KEY/           one entry: the step's files and "meta"
 *   CACHE/steps/KEY.lock       the key's flock (who builds, who waits)
 *   CACHE/steps/.tmp-KEY-XXXXXX  an entry being written, or a discarded
 *                                one being removed
 *
 * KEY is a step key (64 lowercase hex digits).  "meta" is a small text
 * record (below) naming the step (kind, label), when the entry was made,
 * and the size and sha256 of each file.  The mtime of meta is the entry's
 * last use: a hit sets it (one utimensat), so a hit never rewrites a file.
 *
 * Safety:
 *   - A writer holds the key's lock from vab_cache_begin() to the commit,
 *     writes into a private .tmp- folder, and renames it to KEY only when
 *     every file and meta are complete and synced.  A writer killed even
 *     with SIGKILL leaves only a .tmp- folder, which no reader looks at; the
 *     next holder of the key's lock (and prune and clear, which take it)
 *     removes it.
 *   - vab_cache_get() verifies every file's size and sha256 against meta
 *     before the caller sees it.  A corrupt, truncated or unreadable entry
 *     is a warning on the context, is removed, and is a miss.
 *   - Two processes that want the same key: the first gets the lock and
 *     builds; the second waits in vab_cache_lock() and then hits.
 *   - Eviction (vab_cache_prune) skips any entry whose lock is held.
 *
 * meta, line by line, each line ending in '\n':
 *
 *   vab-cache 1
 *   key KEY
 *   kind source|layout|provision|sysprep|test|export
 *   label TEXT                 (printable, at most 127 bytes)
 *   created UNIX-SECONDS
 *   file SIZE SHA256 NAME      (1 to 16 of them; NAME is [A-Za-z0-9._-],
 *                               at most 63 bytes, no leading '.')
 *
 * Every field once (file once per NAME), in that order, nothing else. */
#ifndef VAB_BUILDER_CACHE_H
#define VAB_BUILDER_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "vab/error.h"
#include "common/buf.h"

#define VAB_CACHE_MAX_FILES 16
#define VAB_CACHE_MAX_META 4096
/* Applied after each build unless VAB_CACHE_MAX_SIZE says otherwise. */
#define VAB_CACHE_DEFAULT_MAX_SIZE (10ull << 30)

struct vab_cache_file {
  char name[64];
  uint64_t size;
  char sha256[65];
};

struct vab_cache_meta {
  char key[65];
  char kind[16];
  char label[128];
  int64_t created;
  size_t n_files;
  struct vab_cache_file files[VAB_CACHE_MAX_FILES];
};

/* Parse a meta record.  0, or -1 with a message such as "line 3: unknown
 * kind 'x'" in err. */
int vab_cache_meta_parse(const char *text, size_t len,
                         struct vab_cache_meta *meta, char *err,
                         size_t err_len);
/* Append meta in the format above (the caller checked its fields). */
int vab_cache_meta_format(const struct vab_cache_meta *meta, struct buf *out);

/* True for 64 lowercase hex digits. */
bool vab_cache_key_valid(const char *key);

struct vab_cache;

/* The store under dir.  With create, dir and dir/steps are made when
 * missing; without, a missing dir is an empty store. */
int vab_cache_open(struct vab_ctx *ctx, const char *dir, bool create,
                   struct vab_cache **out);
void vab_cache_close(struct vab_cache *cache);
const char *vab_cache_dir(const struct vab_cache *cache);

/* A held key lock. */
struct vab_cache_lock {
  int fd;
  char key[65];
};

/* Wait for key's lock (polling, so that cancelling still works), logging
 * waiting_msg once when another process holds it. */
int vab_cache_lock(struct vab_cache *cache, const char *key,
                   const char *waiting_msg, struct vab_cache_lock *lock);
void vab_cache_unlock(struct vab_cache_lock *lock);

/* Under key's lock: verify the entry and put each of its files into
 * dest_dir under its name (a hard link when dest_dir is on the same file
 * system, else a copy), then mark the entry used.  1 hit (meta filled),
 * 0 miss (nothing left in dest_dir), -1 error. */
int vab_cache_get(struct vab_cache *cache, const struct vab_cache_lock *lock,
                  const char *dest_dir, struct vab_cache_meta *meta);

/* Bytes of entries' files the store has read to hash them (recording a
 * written file, verifying one on a hit) since it was opened.  A registry
 * entry is hashed once, by its download; the store adds nothing for it. */
uint64_t vab_cache_bytes_hashed(const struct vab_cache *cache);

/* A registry cache (publish/step-cache.h) behind the store, or NULL for
 * none; the caller keeps it alive while the store is open.  With one,
 * vab_cache_get() on a local miss looks the key up there: an entry found
 * is downloaded into a writer (so a killed download leaves only a .tmp-
 * folder), checked, committed, and then got as any local entry, but not
 * hashed again: the download hashed the bytes on the way in.  The
 * check: the record must parse as meta, name this key, and list exactly
 * the layers' files with their sizes and sha256, and every downloaded
 * file must be those bytes.  Anything else, and a registry that cannot be
 * reached, is a warning and a miss: never used, never a failed build. */
struct vab_remote_cache;
void vab_cache_set_remote(struct vab_cache *cache,
                          struct vab_remote_cache *remote);

/* Whether a registry cache entry (publish/step-cache.h: its record and
 * layers) may become key's entry: the record parses as meta, names key,
 * and lists exactly the entry's layers with their sizes and sha256.  0
 * (meta filled), or -1 with the reason in why.  Pure. */
struct vab_remote_cache_entry;
int vab_cache_check_remote(const char *key,
                           const struct vab_remote_cache_entry *entry,
                           struct vab_cache_meta *meta, char *why,
                           size_t why_len);

struct vab_remote_cache_stats;
/* Push the entry key to remote (holding its lock only while its files
 * are opened): 1 pushed or there already, 0 not in the store (or not
 * sound: that is vab_cache_get's to judge), -1 failed, recorded on the
 * store's context ("registry cache REF: cannot push ...").  A file whose
 * bytes are not its recorded sha256 is never uploaded. */
int vab_cache_push(struct vab_cache *cache, const char *key,
                   struct vab_remote_cache *remote,
                   struct vab_remote_cache_stats *stats);

/* Whether key has an entry (its meta exists); nothing is verified.  For
 * a build that holds the lock and must know whether another build made
 * the entry while it waited. */
bool vab_cache_has(struct vab_cache *cache, const char *key);

/* Writing an entry, under its key's lock:
 *
 *   vab_cache_begin(cache, &lock, "source", label, &w);
 *   vab_cache_writer_path(w, "rootfs.tar", &path);   ...write path...
 *   vab_cache_writer_add(w, "rootfs.tar");
 *   vab_cache_commit(w);      (or vab_cache_abort(w) on failure)
 *
 * Commit replaces an existing entry of the key (vab build --no-cache). */
struct vab_cache_writer;
int vab_cache_begin(struct vab_cache *cache, const struct vab_cache_lock *lock,
                    const char *kind, const char *label,
                    struct vab_cache_writer **out);
/* Where to write file name (malloc'd into *path). */
int vab_cache_writer_path(struct vab_cache_writer *w, const char *name,
                          char **path);
/* Record (size, sha256) and sync the file written at name's path. */
int vab_cache_writer_add(struct vab_cache_writer *w, const char *name);
/* Both free w. */
int vab_cache_commit(struct vab_cache_writer *w);
void vab_cache_abort(struct vab_cache_writer *w);

struct vab_cache_info {
  struct vab_cache_meta meta;   /* key always; the rest when ok */
  time_t last_used;
  uint64_t size;                /* bytes of its files and meta */
  bool ok;
  char problem[160];            /* why not ok */
};

/* Every entry, sorted by last use, oldest first (malloc'd array).  Files
 * are not hashed: that is vab_cache_get's job.  Names in steps/ that are
 * not the store's are left out and left alone. */
int vab_cache_list(struct vab_cache *cache, struct vab_cache_info **out,
                   size_t *n);

struct vab_cache_prune_opts {
  uint64_t max_size;            /* UINT64_MAX: no limit */
  int64_t older_than;           /* seconds since last use; -1: none */
  bool all;                     /* vab cache clear */
};

struct vab_cache_prune_result {
  size_t removed, kept, busy;   /* busy: locked by a build, kept */
  uint64_t freed, kept_size;
};

/* Remove the entries not ok, then, oldest use first, those older than
 * older_than and those over max_size in total; and stale .tmp- folders.
 * An entry that cannot be removed is an error on the context, and the
 * rest still go: -1 at the end. */
int vab_cache_prune(struct vab_cache *cache,
                    const struct vab_cache_prune_opts *opts,
                    struct vab_cache_prune_result *result);

/* CACHE/bootstrap/: the bootstrap cache of vab before the step cache
 * (KEY.tar rootfs tarballs beside KEY.lock files).  Nothing reads it any
 * more; `vab cache list` reports it and `vab cache prune` and `clear`
 * remove it.  A build never touches it. */
struct vab_cache_legacy {
  bool present;                 /* the folder is there */
  size_t files;                 /* regular files in it */
  uint64_t size;                /* their bytes */
};
/* What CACHE/bootstrap/ holds.  -1 only for an error other than its
 * absence. */
int vab_cache_legacy_info(struct vab_cache *cache,
                          struct vab_cache_legacy *out);
/* Remove CACHE/bootstrap/, unless a process still holds one of its locks
 * (an older vab bootstrapping into it): 1 removed (*gone says what it
 * held), 2 left because it is in use, 0 not there, -1 error. */
int vab_cache_legacy_remove(struct vab_cache *cache,
                            struct vab_cache_legacy *gone);

/* The size limit after a build: VAB_CACHE_MAX_SIZE (the size grammar of
 * common/size.h) or VAB_CACHE_DEFAULT_MAX_SIZE.  -1 when the variable is
 * not a size. */
int vab_cache_default_max_size(struct vab_ctx *ctx, uint64_t *out);

#endif
