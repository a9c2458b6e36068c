/* vab: disk image formats.
 *
 * Each format is one const struct vab_format in formats/<name>/<name>.c,
 * listed in the registry in formats/registry.c.  The core (formats/convert.c)
 * is the only caller of the vtable, and it owns the threads:
 *
 *   writer:  set_option()* -> open() -> { encode() on worker threads,
 *            put() on the calling thread in ascending offset order }* ->
 *            close() -> free()          (free() is always called)
 *
 *   reader:  probe() -> open() -> block_status()/pread()* -> check()? ->
 *            close()
 *
 * encode() must be a pure function of the block and the writer's fixed
 * options (no shared mutable state), so that the bytes written do not depend
 * on the thread count: put() sees blocks in order whatever the workers do.
 *
 * A format's -o options are a table of typed specs (vab/option.h) that
 * the template schema reads too (through builder/vocab.c), so nothing
 * else keeps a copy of them.
 *
 * How to add a format: write formats/<name>/<name>.c with a const vtable
 * and its options table, add it to formats/registry.c and
 * formats/meson.build, document its options in docs/formats.md and add
 * tests in tests/formats/.
 */
#ifndef VAB_FORMAT_H
#define VAB_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vab/error.h"
#include "vab/option.h"

/* Capability bits (struct vab_format.caps). */
enum {
  VAB_FMT_READ = 1u << 0,      /* has a reader */
  VAB_FMT_WRITE = 1u << 1,     /* has a writer */
  VAB_FMT_SPARSE = 1u << 2,    /* zero ranges cost no space */
  VAB_FMT_COMPRESS = 1u << 3,  /* can compress its data */
  VAB_FMT_STREAM = 1u << 4,    /* writer only appends: fits a pipe or tar */
  VAB_FMT_DEDUP = 1u << 5,     /* can store identical blocks once */
  VAB_FMT_BACKING = 1u << 6,   /* can have a backing file */
  VAB_FMT_EXTERNAL = 1u << 7,  /* written by a subprocess (qemu-img) */
};

/* Where a writer's bytes go.  A file sink supports all three calls; a
 * stream sink (a tar member, a pipe) has pwrite == NULL and skip == NULL,
 * and only formats with VAB_FMT_STREAM may be given one. */
struct vab_sink {
  int (*write)(struct vab_sink *s, const void *buf, size_t len);
  int (*pwrite)(struct vab_sink *s, const void *buf, size_t len,
                uint64_t offset);
  int (*skip)(struct vab_sink *s, uint64_t len);  /* append a hole */
  uint64_t offset;   /* bytes appended so far (the current end) */
  uint64_t writeback_from;  /* file sinks: appends not yet sent to disk */
  struct vab_ctx *ctx;
  void *opaque;
  int fd;            /* file sinks: the descriptor, else -1 */
  const char *name;  /* file sinks: the output as errors name it, or NULL */
};

/* A sink on an open file descriptor, appending from offset 0. */
void vab_sink_init_fd(struct vab_sink *s, struct vab_ctx *ctx, int fd);
int vab_sink_write(struct vab_sink *s, const void *buf, size_t len);
int vab_sink_pwrite(struct vab_sink *s, const void *buf, size_t len,
                    uint64_t offset);
/* Append len zero bytes, as a hole where the sink allows it. */
int vab_sink_skip(struct vab_sink *s, uint64_t len);

/* One unit of work between the core and a writer. */
struct vab_block {
  uint64_t offset;       /* guest offset, a multiple of the block size */
  uint32_t len;          /* bytes of guest data (the last block may be short) */
  bool is_zero;          /* all zero: data is NULL, encode() is not called */
  const uint8_t *data;   /* len bytes of guest data */
  uint8_t *out;          /* encode() output buffer, out_capacity bytes */
  size_t out_capacity;   /* >= 2 * block size + 4096 */
  size_t out_len;        /* bytes encode() produced; 0 = store data as is */
  uint8_t digest[32];    /* filled by encode() for dedup, if it wants */
};

struct vab_writer {
  const struct vab_format *format;
  struct vab_ctx *ctx;
  struct vab_sink *sink;
  const char *path;       /* final path: descriptors may name their file */
  uint64_t virtual_size;  /* set before open() */
  uint32_t block_size;    /* set by open(): the unit encode()/put() get */
  unsigned threads;       /* worker threads, >= 1 */
  unsigned open_flags;    /* VAB_OPEN_* for images the writer reads */
  uint64_t stored_bytes;  /* set by the writer: data bytes it stored */
  uint64_t dedup_bytes;   /* set by the writer: guest bytes dedup saved */
  void *priv;             /* the writer's own state */
};

/* What a reader knows of an image (vab inspect). */
struct vab_image_info {
  char format[16];
  char subformat[32];       /* "streamOptimized", "v3", "fixed"... */
  uint64_t virtual_size;
  uint64_t file_size;
  uint64_t allocated_bytes; /* guest bytes backed by data in this file */
  uint32_t cluster_size;    /* cluster or grain size, 0 if none */
  char compression[16];     /* "none", "zlib", "zstd", "deflate" */
  uint64_t shared_clusters; /* clusters referenced more than once (dedup) */
  uint64_t dedup_saved_bytes;
  uint32_t snapshots;       /* internal snapshots (qcow2) */
  char backing_file[1024];  /* as written in the image, "" if none */
  char backing_format[16];
};

struct vab_check_result {
  uint64_t errors;      /* metadata that is wrong */
  uint64_t leaks;       /* space allocated but unused */
  uint64_t checked;     /* entries (clusters, grains) examined */
};

struct vab_reader {
  const struct vab_format *format;
  struct vab_ctx *ctx;
  int fd;
  const char *path;
  uint64_t file_size;
  struct vab_image_info info;   /* filled by open() */
  struct vab_reader *backing;   /* opened by the reader, or NULL */
  unsigned depth;               /* backing chain depth, for loop limits */
  unsigned open_flags;          /* VAB_OPEN_*, passed down the chain */
  void *priv;
};

struct vab_format {
  const char *name;          /* CLI and template spelling: "qcow2" */
  const char *extension;     /* "qcow2" (no dot) */
  const char *description;
  unsigned caps;
  /* The writer's -o options (key NULL ends it; NULL: none).  The core
   * checks every option against it, then check_options(), before any
   * set_option(); `vab validate` runs the same checks. */
  const struct vab_option_spec *options;
  /* Optional: what the table cannot say (combinations, value shapes).
   * Pure: sees options that already passed the table. */
  int (*check_options)(const struct vab_option *options, size_t n,
                       struct vab_option_problem *problem);

  /* Writer.  set_option() gets each -o KEY=VALUE the core does not own
   * (threads) only after the checks above passed for the whole set, as a
   * typed value of one of its own specs: it stores it, checking nothing
   * again, so that `vab validate` and the writer cannot disagree. */
  int (*set_option)(struct vab_writer *w,
                    const struct vab_option_value *value);
  int (*open)(struct vab_writer *w);
  int (*encode)(struct vab_writer *w, struct vab_block *b);  /* optional */
  int (*put)(struct vab_writer *w, const struct vab_block *b);
  int (*close)(struct vab_writer *w);
  void (*free)(struct vab_writer *w);
  /* External writers (VAB_FMT_EXTERNAL) convert a whole file instead. */
  int (*convert_file)(struct vab_writer *w, const char *src_path,
                      const char *src_format, const char *dst_path);

  /* Reader. probe() returns true if the first bytes look like this format. */
  bool (*probe)(const uint8_t *head, size_t len, uint64_t file_size);
  /* Asked only when no probe() matched: true if the file's last 512 bytes
   * (tail) are this format's trailer (a fixed VHD's footer). */
  bool (*probe_tail)(const uint8_t *tail, size_t len, uint64_t file_size);
  int (*reader_open)(struct vab_reader *r);
  /* From offset, how many bytes (<= len) share one state: data or zero. */
  int (*block_status)(struct vab_reader *r, uint64_t offset, uint64_t len,
                      uint64_t *run, bool *is_zero);
  int (*pread)(struct vab_reader *r, void *buf, size_t len, uint64_t offset);
  int (*check)(struct vab_reader *r, struct vab_check_result *result);
  void (*reader_close)(struct vab_reader *r);
};

/* Registry. */
const struct vab_format *vab_format_by_name(const char *name);
size_t vab_format_count(void);
const struct vab_format *vab_format_at(size_t i);

/* vab_image_open() flags.  By default a backing file, parent or extent
 * that an image names must be a regular file that resolves (after
 * symlinks) inside the folder of the image naming it: an image from
 * elsewhere must not make vab read /etc/shadow (docs/formats.md,
 * Confinement). */
enum {
  /* The user trusts the chain: backing files may be in any folder (they
   * must still be regular files). */
  VAB_OPEN_TRUST_BACKING = 1u << 0,
  /* The image itself must be a regular file too: no block device.  For
   * paths that did not come from the command line (a template's
   * source.image). */
  VAB_OPEN_REGULAR_ONLY = 1u << 1,
};

/* Open an image, guessing its format when format_name is NULL.  path is
 * one the user named: it may be a regular file or, unless flags has
 * VAB_OPEN_REGULAR_ONLY, a block device; anything else (a FIFO, a socket)
 * is refused without blocking.  The chain it names is opened by the
 * confinement rules above. */
int vab_image_open(struct vab_ctx *ctx, const char *path,
                   const char *format_name, unsigned flags,
                   struct vab_reader **out);
void vab_image_close(struct vab_reader *r);
/* Read guest bytes, following the backing chain. */
int vab_image_pread(struct vab_reader *r, void *buf, size_t len,
                    uint64_t offset);

struct vab_convert_opts {
  const char *src_format;        /* NULL: probe */
  const char *dst_format;
  const struct vab_option *options;
  size_t n_options;
  unsigned threads;              /* 0: online cores */
  unsigned open_flags;           /* VAB_OPEN_* for the source */
};

struct vab_convert_result {
  uint64_t virtual_size;
  uint64_t data_bytes;           /* guest bytes that were not zero */
  uint64_t zero_bytes;
  uint64_t stored_bytes;
  uint64_t dedup_bytes;
  uint64_t file_size;            /* of the output */
  double seconds;
};

/* Convert src to dst.  dst is written under a temporary name in its folder
 * and renamed only when complete; on any error or cancel nothing is left. */
int vab_convert(struct vab_ctx *ctx, const char *src_path,
                const char *dst_path, const struct vab_convert_opts *opts,
                struct vab_convert_result *result);

/* Convert src into a stream sink that the caller owns (an OVA member):
 * only VAB_FMT_STREAM formats; dst_name is what descriptors may name.  On
 * failure the sink may hold part of an image: the caller discards it. */
int vab_convert_to_sink(struct vab_ctx *ctx, const char *src_path,
                        const char *dst_name, struct vab_sink *sink,
                        const struct vab_convert_opts *opts,
                        struct vab_convert_result *result);

/* Check a writer's options as vab_convert() will, without side effects:
 * every key in f->options, every value of its kind and range, then
 * f->check_options().  Returns 0, or -1 with *problem filled. */
int vab_format_check_options(const struct vab_format *f,
                             const struct vab_option *options, size_t n,
                             struct vab_option_problem *problem);
/* One value against one spec; owner is the format name for the message. */
int vab_option_check_value(const char *owner,
                           const struct vab_option_spec *spec,
                           const char *value,
                           struct vab_option_problem *problem);
/* The same check, also giving the typed value. */
int vab_option_parse_value(const char *owner,
                           const struct vab_option_spec *spec,
                           const char *text, struct vab_option_value *out,
                           struct vab_option_problem *problem);
/* Check options as vab_format_check_options() does, recording the problem
 * on w->ctx, then hand each to w->format->set_option() as a typed value.
 * (`threads` is the core's: vab_convert() takes it out first.) */
int vab_writer_set_options(struct vab_writer *w,
                           const struct vab_option *options, size_t n);
/* The spec of key in table, or NULL. */
const struct vab_option_spec *vab_option_spec_find(
    const struct vab_option_spec *table, const char *key);

/* Parse "k=v,k=v" into options (strings point into a copy owned by *buf). */
int vab_options_parse(struct vab_ctx *ctx, const char *text,
                      struct vab_option **options, size_t *n, char **buf);

#endif
