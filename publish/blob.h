/* Blobs: what a layer's bytes come from, and moving them to and from a
 * registry (HEAD check, monolithic or chunked upload with resume,
 * download with Range resume).  Every digest is checked. */
#ifndef VAB_PUBLISH_BLOB_H
#define VAB_PUBLISH_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "vab/error.h"

struct registry;

/* A blob is head + the first file_len bytes of fd + tail; any part may be
 * empty.  A small JSON blob is all head; an artifact is all file; a
 * containerDisk layer is tar headers + the qcow2 + padding and trailer,
 * so it is streamed from the qcow2 without a temporary copy. */
struct blob_source {
  const uint8_t *head;
  size_t head_len;
  int fd;               /* -1: none */
  uint64_t file_len;
  const uint8_t *tail;
  size_t tail_len;
  uint64_t size;        /* head_len + file_len + tail_len */
  char digest[72];      /* "sha256:<hex>" */
  const char *name;     /* for progress and messages */
  bool digest_checked;  /* digest computed from these bytes in this run;
                         * otherwise blob_push checks before uploading */
};

/* Read up to len bytes at offset; returns the count (0 at the end) or -1
 * with errno set. */
ssize_t blob_source_read(const struct blob_source *s, uint64_t offset,
                         void *buf, size_t len);
/* Fill in size and digest by reading the whole source once. */
int blob_source_digest(struct vab_ctx *ctx, struct blob_source *s);

struct blob_push_stats {
  size_t uploaded;
  size_t skipped;
};

/* Make sure the registry holds the blob: HEAD first, upload when missing
 * (in chunks of chunk_size when larger than that), resume or restart
 * after failures.  The registry's Docker-Content-Digest must match. */
int blob_push(struct registry *reg, const struct blob_source *s,
              uint64_t chunk_size, struct blob_push_stats *stats);

/* Download a blob into path, resuming from what path already holds, and
 * check its size and digest.  On a digest mismatch path is removed. */
int blob_pull_to_file(struct registry *reg, const char *digest,
                      uint64_t size, const char *path, const char *name);
/* Download a small blob into memory (at most max bytes), checked. */
int blob_pull_to_memory(struct registry *reg, const char *digest,
                        uint64_t size, size_t max, uint8_t **data);

#endif
