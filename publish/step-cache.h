/* The registry half of the step cache shared through an OCI registry
 * (vab build --cache-from / --cache-to; docs/build.md, "A registry
 * cache").  publish/ knows nothing of the store's meta record: an entry
 * here is a key, an opaque record (the config blob) and named files (one
 * layer each).  builder/cache.c decides what the record means and whether
 * what came back may be used.
 *
 * One entry is one OCI image manifest in REPO under the tag step-KEY
 * (KEY: 64 lowercase hex digits, so the tag fits the 128-character rule):
 *
 *   artifactType  VAB_STEP_CACHE_ARTIFACT_TYPE
 *   config        VAB_STEP_CACHE_RECORD_TYPE: the record
 *   layers        VAB_STEP_CACHE_FILE_TYPE, one per file, each named by
 *                 its org.opencontainers.image.title annotation
 *
 * The session is opened on first use with the same auth, TLS, time-limit
 * and retry rules as vab publish and vab pull.  A failure is never the
 * caller's error: each call returns -1 with the reason in
 * vab_remote_cache_error(), so that a build can warn and go on.  After a
 * registry that cannot be reached or logged in to, the remote is dead
 * and every later call fails at once with the same reason. */
#ifndef VAB_PUBLISH_STEP_CACHE_H
#define VAB_PUBLISH_STEP_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "publish/publish.h"
#include "vab/error.h"

#define VAB_STEP_CACHE_ARTIFACT_TYPE "application/vnd.vab.cache.step.v1"
#define VAB_STEP_CACHE_RECORD_TYPE "application/vnd.vab.cache.step.meta.v1"
#define VAB_STEP_CACHE_FILE_TYPE "application/vnd.vab.cache.step.file.v1"
/* Bounds on what a registry may hand back. */
#define VAB_STEP_CACHE_RECORD_MAX (64u * 1024)
#define VAB_STEP_CACHE_FILES_MAX 64

struct vab_remote_cache;

/* A remote over the repository ref ("host[:port]/repo", no tag or
 * digest: the tags are the keys').  Only ref is checked here (a bad one
 * is a VAB_E_USAGE error on ctx); nothing is sent until the first call.
 * opts and its strings must outlive the remote.  push: ask for push
 * access too. */
int vab_remote_cache_new(struct vab_ctx *ctx, const char *ref,
                         const struct vab_registry_opts *opts, bool push,
                         struct vab_remote_cache **out);
void vab_remote_cache_free(struct vab_remote_cache *rc);
/* The reference as given, for messages. */
const char *vab_remote_cache_ref(const struct vab_remote_cache *rc);
/* Why the last call failed (credentials masked). */
const char *vab_remote_cache_error(const struct vab_remote_cache *rc);
/* False once the registry could not be reached or logged in to. */
bool vab_remote_cache_alive(const struct vab_remote_cache *rc);

/* ---- pushing ---- */

struct vab_remote_cache_file {
  const char *name;        /* the layer title */
  int fd;                  /* open on the file (read with pread) */
  uint64_t size;
  const char *sha256;      /* 64 hex digits: what the caller recorded */
};

struct vab_remote_cache_stats {
  size_t entries_pushed;   /* manifests stored */
  size_t entries_present;  /* the registry had the same entry already */
  size_t blobs_uploaded;
  size_t blobs_skipped;    /* HEAD said the registry has it */
  uint64_t bytes_uploaded;
};

/* Push the entry key: every file as a blob (HEAD first; a file whose bytes
 * are not its sha256 any more is refused, not uploaded), then the record,
 * then the manifest under step-KEY, unless the registry's manifest there
 * lists the same files already.  Counts are added to stats. */
int vab_remote_cache_push(struct vab_remote_cache *rc, const char *key,
                          const char *record, size_t record_len,
                          const struct vab_remote_cache_file *files,
                          size_t n_files, struct vab_remote_cache_stats *stats);

/* ---- fetching ---- */

struct vab_remote_cache_layer {
  char *name;              /* its title: a plain file name */
  uint64_t size;
  char digest[72];         /* "sha256:<hex>" */
};

struct vab_remote_cache_entry {
  char manifest_digest[72];
  char *record;            /* NUL-terminated; record_len bytes before it */
  size_t record_len;
  struct vab_remote_cache_layer *layers;
  size_t n_layers;
};

/* The manifest under step-KEY and its record (digest checked): 1 found,
 * 0 no such tag, -1 failed or not an entry of this kind (bad types, a
 * layer with no title or a title that is not a plain file name, two
 * layers of one title, too many layers, a record too large). */
int vab_remote_cache_lookup(struct vab_remote_cache *rc, const char *key,
                            struct vab_remote_cache_entry *entry);
void vab_remote_cache_entry_release(struct vab_remote_cache_entry *entry);
/* The checks of vab_remote_cache_lookup on a manifest's text, with no
 * registry (for the fuzz target): the layers into entry (record left
 * NULL), the record's digest and size. */
int vab_remote_cache_entry_parse(struct vab_ctx *ctx, const char *tag,
                                 const char *text, size_t len,
                                 struct vab_remote_cache_entry *entry,
                                 char record_digest[72],
                                 uint64_t *record_size);
/* Download one layer into path (created; streamed, bounded memory), its
 * size and digest checked; on a mismatch path is removed. */
int vab_remote_cache_download(struct vab_remote_cache *rc,
                              const struct vab_remote_cache_layer *layer,
                              const char *path);

#endif
