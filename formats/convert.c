/* vab_convert: the pipeline from any reader to any writer.
 *
 * The calling thread reads the source block by block (asking the reader
 * which ranges are holes, so those are never read), hands data blocks to
 * worker threads that run the writer's encode(), and calls put() on each
 * block in ascending order.  Blocks live in a fixed ring of slots, so the
 * memory in flight is bounded whatever the image size:
 *
 *   read (this thread) -> slot -> encode() (workers) -> put() (this thread)
 *
 * The output goes to a temporary file next to DST that is synced and
 * renamed when complete, and unlinked on any error or cancel.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vab/format.h"
#include "common/clock.h"
#include "common/fsutil.h"
#include "core/files.h"
#include "vab/progress.h"
#include "formats/image.h"

/* Bytes of slot buffers the pipeline may hold, whatever the block size. */
#define PIPELINE_MEMORY (48u << 20)
#define MAX_THREADS 256
/* Report progress at most once per this many guest bytes. */
#define PROGRESS_STEP (8u << 20)

enum slot_state { SLOT_FREE, SLOT_READY, SLOT_ENCODING, SLOT_DONE };

struct slot {
  struct vab_block block;
  uint8_t *data;
  enum slot_state state;
  int failed;
};

struct pipeline {
  pthread_mutex_t lock;
  pthread_cond_t work;      /* a slot became READY, or stop */
  pthread_cond_t done;      /* a slot became DONE */
  struct slot *slots;
  size_t n_slots;
  uint64_t first;           /* sequence number of the oldest slot in use */
  uint64_t filled;          /* slots handed out so far (sequence numbers) */
  uint64_t next_encode;     /* lowest sequence number a worker may take */
  bool stop;
  struct vab_writer *writer;
  pthread_t *threads;
  unsigned n_threads;
  bool synced;              /* lock, work and done were initialised */
};

bool vab_buffer_is_zero(const void *buf, size_t len) {
  const uint8_t *p = buf;
  /* Word-at-a-time over the aligned middle; memcmp against itself
   * shifted by 16 bytes would read each byte twice. */
  while (len > 0 && ((uintptr_t)p & 7) != 0) {
    if (*p)
      return false;
    p++;
    len--;
  }
  const uint64_t *w = (const uint64_t *)(const void *)p;
  while (len >= 64) {
    if ((w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) != 0)
      return false;
    w += 8;
    len -= 64;
  }
  p = (const uint8_t *)w;
  while (len > 0) {
    if (*p)
      return false;
    p++;
    len--;
  }
  return true;
}

static struct slot *slot_of(struct pipeline *pl, uint64_t seq) {
  return &pl->slots[seq % pl->n_slots];
}

static void *worker_main(void *arg) {
  struct pipeline *pl = arg;
  struct vab_writer *w = pl->writer;
  pthread_mutex_lock(&pl->lock);
  for (;;) {
    if (pl->next_encode < pl->first)
      pl->next_encode = pl->first;
    while (pl->next_encode < pl->filled &&
           slot_of(pl, pl->next_encode)->state != SLOT_READY)
      pl->next_encode++;
    if (pl->stop)
      break;
    if (pl->next_encode == pl->filled) {
      pthread_cond_wait(&pl->work, &pl->lock);
      continue;
    }
    struct slot *s = slot_of(pl, pl->next_encode++);
    s->state = SLOT_ENCODING;
    pthread_mutex_unlock(&pl->lock);
    int r = w->format->encode(w, &s->block);
    pthread_mutex_lock(&pl->lock);
    s->failed = r < 0;
    s->state = SLOT_DONE;
    pthread_cond_broadcast(&pl->done);
  }
  pthread_mutex_unlock(&pl->lock);
  return NULL;
}

static void pipeline_stop(struct pipeline *pl) {
  pthread_mutex_lock(&pl->lock);
  pl->stop = true;
  pthread_cond_broadcast(&pl->work);
  pthread_mutex_unlock(&pl->lock);
  for (unsigned i = 0; i < pl->n_threads; i++)
    pthread_join(pl->threads[i], NULL);
  pl->n_threads = 0;
}

static void pipeline_free(struct pipeline *pl) {
  if (!pl->synced)  /* pipeline_init() failed before there was any more */
    return;
  pipeline_stop(pl);
  for (size_t i = 0; pl->slots != NULL && i < pl->n_slots; i++) {
    free(pl->slots[i].data);
    free(pl->slots[i].block.out);
  }
  free(pl->slots);
  free(pl->threads);
  pthread_mutex_destroy(&pl->lock);
  pthread_cond_destroy(&pl->work);
  pthread_cond_destroy(&pl->done);
}

static int pipeline_init(struct pipeline *pl, struct vab_writer *w) {
  struct vab_ctx *ctx = w->ctx;
  memset(pl, 0, sizeof *pl);
  int e = pthread_mutex_init(&pl->lock, NULL);
  if (e != 0)
    return vab_error_errno(ctx, VAB_E_NOMEM, e, "cannot create a lock");
  if ((e = pthread_cond_init(&pl->work, NULL)) != 0) {
    pthread_mutex_destroy(&pl->lock);
    return vab_error_errno(ctx, VAB_E_NOMEM, e, "cannot create a condition");
  }
  if ((e = pthread_cond_init(&pl->done, NULL)) != 0) {
    pthread_cond_destroy(&pl->work);
    pthread_mutex_destroy(&pl->lock);
    return vab_error_errno(ctx, VAB_E_NOMEM, e, "cannot create a condition");
  }
  pl->synced = true;
  pl->writer = w;
  bool encodes = w->format->encode != NULL;
  size_t out_capacity = encodes ? 2 * (size_t)w->block_size + 4096 : 0;
  size_t per_slot = w->block_size + out_capacity;
  size_t n = PIPELINE_MEMORY / per_slot;
  /* A deep queue keeps the workers busy while this thread waits for a
   * CPU on a loaded machine, and absorbs uneven compression times. */
  size_t want = encodes ? 32 * (size_t)w->threads + 8 : 4;
  if (n > want)
    n = want;
  if (n < 2)
    n = 2;
  pl->n_slots = n;
  pl->slots = calloc(n, sizeof *pl->slots);
  if (pl->slots == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    pl->slots[i].data = malloc(w->block_size);
    if (encodes)
      pl->slots[i].block.out = malloc(out_capacity);
    if (pl->slots[i].data == NULL ||
        (encodes && pl->slots[i].block.out == NULL))
      return vab_error(ctx, VAB_E_NOMEM, "out of memory");
    pl->slots[i].block.out_capacity = out_capacity;
  }
  if (!encodes)
    return 0;
  pl->threads = calloc(w->threads, sizeof *pl->threads);
  if (pl->threads == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  for (unsigned i = 0; i < w->threads; i++) {
    e = pthread_create(&pl->threads[i], NULL, worker_main, pl);
    if (e != 0)
      return vab_error_errno(ctx, VAB_E_IO, e, "cannot start a thread");
    pl->n_threads++;
  }
  return 0;
}

/* Wait for the oldest slot, put() it and free it. */
static int pipeline_put_oldest(struct pipeline *pl) {
  struct vab_writer *w = pl->writer;
  struct slot *s = slot_of(pl, pl->first);
  pthread_mutex_lock(&pl->lock);
  while (s->state != SLOT_DONE)
    pthread_cond_wait(&pl->done, &pl->lock);
  pthread_mutex_unlock(&pl->lock);
  if (s->failed)
    return -1;
  int r = w->format->put(w, &s->block);
  pthread_mutex_lock(&pl->lock);
  s->state = SLOT_FREE;
  pl->first++;
  pthread_mutex_unlock(&pl->lock);
  return r;
}

/* Which part of the source is known to be holes, so a block inside one is
 * zero without reading it. */
struct status_cache {
  uint64_t start, end;
  bool zero;
};

static int block_may_have_data(struct vab_reader *src,
                               struct status_cache *sc, uint64_t offset,
                               uint64_t len, bool *data) {
  uint64_t pos = offset, end = offset + len;
  *data = false;
  while (pos < end) {
    if (pos < sc->start || pos >= sc->end) {
      uint64_t run;
      bool zero;
      uint64_t left = src->info.virtual_size - pos;
      if (vab_image_block_status(src, pos, left, &run, &zero) < 0)
        return -1;
      sc->start = pos;
      sc->end = pos + run;
      sc->zero = zero;
    }
    if (!sc->zero) {
      *data = true;
      return 0;
    }
    pos = sc->end;
  }
  return 0;
}

static int report_progress(struct vab_ctx *ctx, const char *step,
                           uint64_t done, uint64_t total, uint64_t *last) {
  if (done != total && done - *last < PROGRESS_STEP)
    return vab_check_cancel(ctx);
  *last = done;
  return vab_progress(ctx, VAB_PHASE_CONVERT, step, done, total);
}

static int run_pipeline(struct vab_writer *w, struct vab_reader *src,
                        struct vab_convert_result *res) {
  struct vab_ctx *ctx = w->ctx;
  struct pipeline pl;
  int rc = pipeline_init(&pl, w);
  uint64_t size = w->virtual_size;
  struct status_cache sc = {0, 0, false};
  uint64_t last_progress = 0;
  const char *step = w->format->name;
  bool encodes = w->format->encode != NULL;
  for (uint64_t off = 0; rc == 0 && off < size; off += w->block_size) {
    uint32_t len = size - off < w->block_size ? (uint32_t)(size - off)
                                              : w->block_size;
    bool data;
    if (block_may_have_data(src, &sc, off, len, &data) < 0) {
      rc = -1;
      break;
    }
    if (!data && pl.first == pl.filled) {
      /* Nothing in flight: a hole goes straight to put(). */
      struct vab_block b = {.offset = off, .len = len, .is_zero = true};
      res->zero_bytes += len;
      rc = w->format->put(w, &b);
    } else {
      if (pl.filled - pl.first == pl.n_slots &&
          pipeline_put_oldest(&pl) < 0) {
        rc = -1;
        break;
      }
      struct slot *s = slot_of(&pl, pl.filled);
      struct vab_block *b = &s->block;
      b->offset = off;
      b->len = len;
      b->out_len = 0;
      b->is_zero = !data;
      b->data = NULL;
      if (data) {
        if (vab_image_pread(src, s->data, len, off) < 0) {
          rc = -1;
          break;
        }
        b->is_zero = vab_buffer_is_zero(s->data, len);
        b->data = b->is_zero ? NULL : s->data;
      }
      if (b->is_zero)
        res->zero_bytes += len;
      else
        res->data_bytes += len;
      s->failed = 0;
      pthread_mutex_lock(&pl.lock);
      s->state = (encodes && !b->is_zero) ? SLOT_READY : SLOT_DONE;
      pl.filled++;
      if (s->state == SLOT_READY)
        pthread_cond_signal(&pl.work);
      pthread_mutex_unlock(&pl.lock);
    }
    if (rc == 0)
      rc = report_progress(ctx, step, off + len, size, &last_progress);
  }
  while (rc == 0 && pl.first < pl.filled)
    rc = pipeline_put_oldest(&pl);
  pipeline_free(&pl);
  return rc;
}

static unsigned default_threads(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1)
    return 1;
  return n > MAX_THREADS ? MAX_THREADS : (unsigned)n;
}

static int parse_threads(struct vab_ctx *ctx, const char *value,
                         unsigned *out) {
  char *end;
  errno = 0;
  unsigned long n = strtoul(value, &end, 10);
  if (errno != 0 || end == value || *end != '\0' || n < 1 ||
      n > MAX_THREADS || value[0] == '-')
    return vab_error(ctx, VAB_E_USAGE,
                     "threads must be a number from 1 to %d, not '%s'",
                     MAX_THREADS, value);
  *out = (unsigned)n;
  return 0;
}

/* Hand each -o option to the core (threads) or the writer. */
static int apply_options(struct vab_writer *w,
                         const struct vab_convert_opts *opts) {
  /* The writer's own options are checked as a set first, by the table
   * `vab validate` also reads, and then set. */
  struct vab_option *own = NULL;
  size_t n_own = 0;
  if (opts->n_options > 0) {
    own = calloc(opts->n_options, sizeof *own);
    if (own == NULL)
      return vab_error(w->ctx, VAB_E_NOMEM, "out of memory");
  }
  for (size_t i = 0; i < opts->n_options; i++)
    if (strcmp(opts->options[i].key, "threads") != 0)
      own[n_own++] = opts->options[i];
  int r = vab_writer_set_options(w, own, n_own);
  free(own);
  if (r < 0)
    return -1;
  for (size_t i = 0; i < opts->n_options; i++)
    if (strcmp(opts->options[i].key, "threads") == 0 &&
        parse_threads(w->ctx, opts->options[i].value, &w->threads) < 0)
      return -1;
  return 0;
}

/* The writer's whole life on one source: open, the pipeline, close. */
static int encode_image(struct vab_writer *w, struct vab_reader *src,
                        struct vab_convert_result *res) {
  if (w->format->open(w) < 0)
    return -1;
  if (w->block_size == 0 || w->block_size > (64u << 20))
    return vab_error(w->ctx, VAB_E_INTERNAL, "%s writer set block size %u",
                     w->format->name, w->block_size);
  if (run_pipeline(w, src, res) < 0)
    return -1;
  return w->format->close(w);
}

/* The guest bytes of src, read through vab's confined reader, into a
 * sparse raw file beside tmp.  *stage is its malloc'd name. */
static int stage_raw(struct vab_ctx *ctx, struct vab_reader *src,
                     const char *tmp, char **stage) {
  int fd = create_temp_beside(tmp, stage);
  if (fd < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno,
                           "cannot create a file next to '%s'", tmp);
  size_t cap = 1u << 20;
  uint8_t *buf = malloc(cap);
  uint64_t size = src->info.virtual_size, off = 0;
  int rc = buf == NULL ? vab_error(ctx, VAB_E_NOMEM, "out of memory") : 0;
  while (rc == 0 && off < size) {
    uint64_t run;
    bool is_zero;
    uint64_t want = size - off < cap ? size - off : cap;
    rc = vab_image_block_status(src, off, want, &run, &is_zero);
    if (rc == 0 && !is_zero) {
      rc = vab_image_pread(src, buf, (size_t)run, off);
      if (rc == 0 && !vab_buffer_is_zero(buf, (size_t)run) &&
          pwrite(fd, buf, (size_t)run, (off_t)off) != (ssize_t)run)
        rc = vab_error_errno(ctx, VAB_E_IO, errno, "cannot write '%s'",
                             *stage);
    }
    if (rc == 0)
      rc = vab_check_cancel(ctx);
    off += run;
  }
  if (rc == 0 && ftruncate(fd, (off_t)size) < 0)
    rc = vab_error_errno(ctx, VAB_E_IO, errno, "cannot extend '%s'", *stage);
  free(buf);
  close(fd);
  if (rc < 0) {
    unlink(*stage);
    free(*stage);
    *stage = NULL;
  }
  return rc;
}

static int write_image(struct vab_writer *w, struct vab_reader *src,
                       const char *src_path, int fd, const char *tmp,
                       struct vab_convert_result *res) {
  struct vab_ctx *ctx = w->ctx;
  if (w->format->caps & VAB_FMT_EXTERNAL) {
    /* A helper would open the chain again by name, by its own rules (it
     * follows formats and names vab refuses): with a chain, it gets the
     * guest bytes as vab's confined reader read them. */
    char *stage = NULL;
    if (src->backing != NULL && stage_raw(ctx, src, tmp, &stage) < 0)
      return -1;
    int rc = w->format->convert_file(w, stage ? stage : src_path,
                                     stage ? "raw" : src->format->name, tmp);
    if (stage != NULL) {
      unlink(stage);
      free(stage);
    }
    if (rc < 0)
      return -1;
    res->data_bytes = src->info.allocated_bytes;
    return 0;
  }
  if (encode_image(w, src, res) < 0)
    return -1;
  struct stat st;
  if (fstat(fd, &st) < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot stat '%s'", tmp);
  /* Holes at the end exist only once the file is that long. */
  if ((uint64_t)st.st_size < w->sink->offset &&
      ftruncate(fd, (off_t)w->sink->offset) < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot extend '%s'", tmp);
  return 0;
}

/* What vab_convert and vab_convert_to_sink share: pick the writer, open
 * the source, apply the options. */
static int writer_setup(struct vab_ctx *ctx, const char *src_path,
                        const char *dst_name,
                        const struct vab_convert_opts *opts,
                        struct vab_writer *w, struct vab_sink *sink,
                        struct vab_reader **src) {
  const struct vab_format *format = vab_format_by_name(opts->dst_format);
  if (format == NULL)
    return vab_error(ctx, VAB_E_USAGE, "unknown output format '%s'",
                     opts->dst_format ? opts->dst_format : "(none)");
  if (!(format->caps & VAB_FMT_WRITE))
    return vab_error(ctx, VAB_E_UNSUPPORTED, "vab cannot write %s images",
                     format->name);
  w->format = format;
  w->ctx = ctx;
  w->sink = sink;
  w->path = dst_name;
  w->threads = opts->threads ? opts->threads : default_threads();
  /* A backing_file option is named by the user; its own chain is not. */
  w->open_flags = opts->open_flags & VAB_OPEN_TRUST_BACKING;
  if (apply_options(w, opts) < 0)
    return -1;
  if (vab_image_open(ctx, src_path, opts->src_format, opts->open_flags,
                     src) < 0)
    return -1;
  w->virtual_size = (*src)->info.virtual_size;
  return 0;
}

/* Both entry points end here, failed or not: free the writer and the
 * source, and report what was done. */
static void writer_finish(struct vab_writer *w, struct vab_reader *src,
                          double start, struct vab_convert_result *res,
                          struct vab_convert_result *result) {
  if (w->format != NULL && w->format->free != NULL)
    w->format->free(w);
  vab_image_close(src);
  res->stored_bytes = w->stored_bytes;
  res->dedup_bytes = w->dedup_bytes;
  res->seconds = now_seconds() - start;
  if (result != NULL)
    *result = *res;
}

int vab_convert_to_sink(struct vab_ctx *ctx, const char *src_path,
                        const char *dst_name, struct vab_sink *sink,
                        const struct vab_convert_opts *opts,
                        struct vab_convert_result *result) {
  struct vab_convert_result res;
  memset(&res, 0, sizeof res);
  double start = now_seconds();
  struct vab_writer w;
  memset(&w, 0, sizeof w);
  struct vab_reader *src = NULL;
  int rc = -1;
  if (writer_setup(ctx, src_path, dst_name, opts, &w, sink, &src) < 0)
    goto out;
  res.virtual_size = w.virtual_size;
  if (!(w.format->caps & VAB_FMT_STREAM)) {
    vab_error(ctx, VAB_E_INTERNAL, "%s cannot be written as a stream",
              w.format->name);
    goto out;
  }
  if (encode_image(&w, src, &res) < 0)
    goto out;
  res.file_size = sink->offset;
  rc = 0;
out:
  writer_finish(&w, src, start, &res, result);
  return rc;
}

int vab_convert(struct vab_ctx *ctx, const char *src_path,
                const char *dst_path, const struct vab_convert_opts *opts,
                struct vab_convert_result *result) {
  struct vab_convert_result res;
  memset(&res, 0, sizeof res);
  double start = now_seconds();
  struct vab_sink sink;
  struct vab_writer w;
  memset(&w, 0, sizeof w);
  vab_sink_init_fd(&sink, ctx, -1);
  /* Errors name the file the user asked for, not its temporary. */
  sink.name = dst_path;
  struct vab_reader *src = NULL;
  char *tmp = NULL;
  int fd = -1;
  int rc = -1;
  if (writer_setup(ctx, src_path, dst_path, opts, &w, &sink, &src) < 0)
    goto out;
  res.virtual_size = w.virtual_size;
  fd = create_temp_beside(dst_path, &tmp);
  if (fd < 0) {
    vab_error_errno(ctx, VAB_E_IO, errno, "cannot create a file next to '%s'",
                    dst_path);
    goto out;
  }
  if (fchmod(fd, 0644) < 0) {
    vab_error_errno(ctx, VAB_E_IO, errno, "cannot set the mode of '%s'", tmp);
    goto out;
  }
  sink.fd = fd;
  if (write_image(&w, src, src_path, fd, tmp, &res) < 0)
    goto out;
  if (vab_check_cancel(ctx) < 0)
    goto out;
  rc = vab_commit_temp(ctx, fd, tmp, dst_path, &res.file_size);
  fd = -1;
  free(tmp);
  tmp = NULL;
out:
  if (fd >= 0)
    close(fd);
  if (tmp != NULL) {
    unlink(tmp);
    free(tmp);
  }
  writer_finish(&w, src, start, &res, result);
  return rc;
}
