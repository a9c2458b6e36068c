/* raw: the guest bytes as they are.
 *
 * Reader: holes are found with SEEK_DATA/SEEK_HOLE, so a sparse file is
 * never read where it has no data.  Writer: zero blocks become holes; with
 * compression=zstd the whole image is one standard .zst stream, compressed
 * by zstd's own worker threads, that `zstd -d` restores.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "common/io.h"
#include "vab/format.h"
#include "formats/image.h"
#include "formats/registry.h"

/* Writer blocks: large, since raw does no per-block work. */
#define RAW_BLOCK_SIZE (1u << 20)
/* Granularity of holes in the output. */
#define RAW_PAGE 4096u

struct raw_writer {
  bool zstd;
  int level;
  ZSTD_CCtx *cctx;
  uint8_t *out;           /* ZSTD_CStreamOutSize() bytes */
  size_t out_size;
  uint8_t *zeros;         /* RAW_BLOCK_SIZE zero bytes, for holes */
};

static const char *const raw_compressions[] = {"none", "zstd", NULL};

/* 22 is ZSTD_maxCLevel() of every zstd vab builds with (1.4 and later). */
static const struct vab_option_spec raw_options[] = {
  {"compression", VAB_OPTION_ENUM, raw_compressions, 0, 0, "none", 0,
   "zstd: a .zst stream of the raw disk"},
  {"level", VAB_OPTION_INT, NULL, 1, 22, "3", 0, "zstd level"},
  {NULL, VAB_OPTION_STRING, NULL, 0, 0, NULL, 0, NULL},
};

static struct raw_writer *raw_priv(struct vab_writer *w) {
  if (w->priv == NULL) {
    struct raw_writer *rw = calloc(1, sizeof *rw);
    if (rw == NULL)
      return NULL;
    rw->level = ZSTD_CLEVEL_DEFAULT;
    w->priv = rw;
  }
  return w->priv;
}

/* The values passed raw_options. */
static int raw_set_option(struct vab_writer *w,
                          const struct vab_option_value *v) {
  struct raw_writer *rw = raw_priv(w);
  if (rw == NULL)
    return vab_error(w->ctx, VAB_E_NOMEM, "out of memory");
  if (strcmp(v->spec->key, "compression") == 0)
    rw->zstd = strcmp(v->text, "zstd") == 0;
  else  /* level */
    rw->level = (int)v->number;
  return 0;
}

static int zstd_failed(struct vab_writer *w, size_t code, const char *what) {
  if (!ZSTD_isError(code))
    return 0;
  return vab_error(w->ctx, VAB_E_INTERNAL, "zstd %s failed: %s", what,
                   ZSTD_getErrorName(code));
}

static int raw_open(struct vab_writer *w) {
  struct raw_writer *rw = raw_priv(w);
  if (rw == NULL)
    return vab_error(w->ctx, VAB_E_NOMEM, "out of memory");
  w->block_size = RAW_BLOCK_SIZE;
  if (!rw->zstd)
    return 0;
  rw->cctx = ZSTD_createCCtx();
  rw->out_size = ZSTD_CStreamOutSize();
  rw->out = malloc(rw->out_size);
  rw->zeros = calloc(1, RAW_BLOCK_SIZE);
  if (rw->cctx == NULL || rw->out == NULL || rw->zeros == NULL)
    return vab_error(w->ctx, VAB_E_NOMEM, "out of memory");
  if (zstd_failed(w, ZSTD_CCtx_setParameter(rw->cctx, ZSTD_c_compressionLevel,
                                            rw->level),
                  "level") < 0 ||
      zstd_failed(w, ZSTD_CCtx_setParameter(rw->cctx, ZSTD_c_checksumFlag, 1),
                  "checksum") < 0 ||
      zstd_failed(w, ZSTD_CCtx_setPledgedSrcSize(rw->cctx, w->virtual_size),
                  "size") < 0)
    return -1;
  /* Threads: a libzstd built without them refuses nbWorkers, and then
   * compresses on this thread, which gives the same .zst format. */
  if (w->threads > 1)
    ZSTD_CCtx_setParameter(rw->cctx, ZSTD_c_nbWorkers, (int)w->threads);
  return 0;
}

static int zstd_feed(struct vab_writer *w, const void *data, size_t len,
                     ZSTD_EndDirective mode) {
  struct raw_writer *rw = w->priv;
  ZSTD_inBuffer in = {data, len, 0};
  for (;;) {
    ZSTD_outBuffer out = {rw->out, rw->out_size, 0};
    size_t left = ZSTD_compressStream2(rw->cctx, &out, &in, mode);
    if (zstd_failed(w, left, "compression") < 0)
      return -1;
    if (out.pos > 0 && vab_sink_write(w->sink, rw->out, out.pos) < 0)
      return -1;
    bool finished = mode == ZSTD_e_continue ? in.pos == in.size : left == 0;
    if (finished)
      return 0;
  }
}

static int raw_put(struct vab_writer *w, const struct vab_block *b) {
  struct raw_writer *rw = w->priv;
  if (rw->zstd)
    return zstd_feed(w, b->is_zero ? rw->zeros : b->data, b->len,
                     ZSTD_e_continue);
  if (b->is_zero)
    return vab_sink_skip(w->sink, b->len);
  /* Zero pages inside a data block become holes too. */
  size_t pos = 0;
  while (pos < b->len) {
    size_t n = b->len - pos < RAW_PAGE ? b->len - pos : RAW_PAGE;
    bool zero = vab_buffer_is_zero(b->data + pos, n);
    size_t run = n;
    while (pos + run < b->len) {
      size_t m = b->len - pos - run < RAW_PAGE ? b->len - pos - run : RAW_PAGE;
      if (vab_buffer_is_zero(b->data + pos + run, m) != zero)
        break;
      run += m;
    }
    if (zero) {
      if (vab_sink_skip(w->sink, run) < 0)
        return -1;
    } else {
      if (vab_sink_write(w->sink, b->data + pos, run) < 0)
        return -1;
      w->stored_bytes += run;
    }
    pos += run;
  }
  return 0;
}

static int raw_close(struct vab_writer *w) {
  struct raw_writer *rw = w->priv;
  if (!rw->zstd)
    return 0;
  if (zstd_feed(w, NULL, 0, ZSTD_e_end) < 0)
    return -1;
  w->stored_bytes = w->sink->offset;
  return 0;
}

static void raw_free(struct vab_writer *w) {
  struct raw_writer *rw = w->priv;
  if (rw == NULL)
    return;
  ZSTD_freeCCtx(rw->cctx);
  free(rw->out);
  free(rw->zeros);
  free(rw);
  w->priv = NULL;
}

/* Reader. */

static int raw_reader_open(struct vab_reader *r) {
  r->info.virtual_size = r->file_size;
  r->info.allocated_bytes = r->file_size;
  snprintf(r->info.compression, sizeof r->info.compression, "none");
  /* Count what the file system really stores, for inspect. */
  uint64_t allocated = 0, pos = 0;
  while (pos < r->file_size) {
    off_t data = lseek(r->fd, (off_t)pos, SEEK_DATA);
    if (data < 0) {
      if (errno != ENXIO)  /* no SEEK_DATA here: count it all */
        allocated = r->file_size;
      break;
    }
    off_t hole = lseek(r->fd, data, SEEK_HOLE);
    if (hole < 0)
      hole = (off_t)r->file_size;
    allocated += (uint64_t)(hole - data);
    pos = (uint64_t)hole;
  }
  r->info.allocated_bytes = allocated;
  return 0;
}

static int raw_block_status(struct vab_reader *r, uint64_t offset,
                            uint64_t len, uint64_t *run, bool *is_zero) {
  off_t data = lseek(r->fd, (off_t)offset, SEEK_DATA);
  if (data < 0) {
    if (errno == ENXIO) {  /* a hole up to the end of the file */
      *run = len;
      *is_zero = true;
      return 0;
    }
    /* No SEEK_DATA on this file system: everything is data. */
    *run = len;
    *is_zero = false;
    return 0;
  }
  if ((uint64_t)data > offset) {
    uint64_t hole = (uint64_t)data - offset;
    *run = hole < len ? hole : len;
    *is_zero = true;
    return 0;
  }
  off_t hole = lseek(r->fd, (off_t)offset, SEEK_HOLE);
  uint64_t end = hole < 0 ? offset + len : (uint64_t)hole;
  *run = end - offset < len ? end - offset : len;
  if (*run == 0)
    *run = len;
  *is_zero = false;
  return 0;
}

static int raw_pread(struct vab_reader *r, void *buf, size_t len,
                     uint64_t offset) {
  ssize_t n = pread_full(r->fd, buf, len, offset);
  if (n < 0)
    return vab_error_errno(r->ctx, VAB_E_IO, errno,
                           "cannot read '%s' at offset %llu", r->path,
                           (unsigned long long)offset);
  /* The file shrank under us: the rest reads as zeros. */
  memset((uint8_t *)buf + n, 0, len - (size_t)n);
  return 0;
}

static int raw_check(struct vab_reader *r, struct vab_check_result *result) {
  (void)r;
  memset(result, 0, sizeof *result);
  return 0;
}

const struct vab_format vab_format_raw = {
  .name = "raw",
  .extension = "raw",
  .description = "raw disk bytes (sparse), optionally a .zst stream",
  .caps = VAB_FMT_READ | VAB_FMT_WRITE | VAB_FMT_SPARSE | VAB_FMT_COMPRESS |
          VAB_FMT_STREAM,
  .options = raw_options,
  .set_option = raw_set_option,
  .open = raw_open,
  .put = raw_put,
  .close = raw_close,
  .free = raw_free,
  .probe = NULL,
  .reader_open = raw_reader_open,
  .block_status = raw_block_status,
  .pread = raw_pread,
  .check = raw_check,
};
