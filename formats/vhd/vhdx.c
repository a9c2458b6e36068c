/* VHDX through `qemu-img convert -O vhdx` (docs/formats.md, VHDX: its
 * CRC-32C headers, region tables, metadata and interleaved BAT are a lot
 * of code for what qemu-img already writes correctly).
 *
 * The core hands convert_file() the temporary output path and removes it
 * if this fails.  qemu-img runs in its own process group; its `-p`
 * progress ("    (42.00/100%)") becomes vab progress, its other output
 * is kept for the error message, and a cancel kills it.
 *
 * qemu-img draws the headers' sequence number, file and data write GUIDs
 * and the disk's Page 83 id at random.  With SOURCE_DATE_EPOCH set (a
 * reproducible build) vab rewrites them afterwards from a hash of the
 * epoch, the size and the subformat, so the same input gives the same
 * bytes (docs/build.md, "Reproducible builds").
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/blake2b.h"
#include "common/buf.h"
#include "common/crc32c.h"
#include "common/endian.h"
#include "common/qemu-name.h"
#include "common/subprocess.h"
#include "formats/vhd/vhd.h"
#include "vab/error.h"
#include "vab/progress.h"

struct vhdx_writer {
  char subformat[16];
};

struct run_state {
  struct vab_writer *w;
  bool cancel;           /* the progress callback asked to stop */
  char output[1024];     /* qemu-img's last non-progress lines */
};

static const char *const vhdx_subformats[] = {"dynamic", "fixed", NULL};

static const struct vab_option_spec vhdx_options[] = {
  {"subformat", VAB_OPTION_ENUM, vhdx_subformats, 0, 0, "dynamic", 0,
   "qemu-img's vhdx subformat"},
  {NULL, VAB_OPTION_STRING, NULL, 0, 0, NULL, 0, NULL},
};

static struct vhdx_writer *writer_state(struct vab_writer *w) {
  if (w->priv == NULL) {
    struct vhdx_writer *s = calloc(1, sizeof *s);
    if (s == NULL) {
      vab_error(w->ctx, VAB_E_NOMEM, "vhdx: out of memory");
      return NULL;
    }
    snprintf(s->subformat, sizeof s->subformat, "dynamic");
    w->priv = s;
  }
  return w->priv;
}

/* subformat, its one option, after vhdx_options checked it. */
static int vhdx_set_option(struct vab_writer *w,
                           const struct vab_option_value *v) {
  struct vhdx_writer *s = writer_state(w);
  if (s == NULL)
    return -1;
  snprintf(s->subformat, sizeof s->subformat, "%s", v->text);
  return 0;
}

/* vab's format names as qemu-img spells them. */
static const char *qemu_format_name(const char *name) {
  if (strcmp(name, "vhd") == 0)
    return "vpc";
  return name;
}

/* Parse "    (12.34/100%)"; false for any other line. */
bool vhdx_parse_progress(const char *line, double *percent) {
  while (*line == ' ' || *line == '\t')
    line++;
  double p;
  char tail[8];
  if (sscanf(line, "(%lf/100%1[%])", &p, tail) != 2 || p < 0 || p > 100)
    return false;
  *percent = p;
  return true;
}

static void on_line(void *opaque, const char *line) {
  struct run_state *st = opaque;
  double percent;
  if (vhdx_parse_progress(line, &percent)) {
    uint64_t total = st->w->virtual_size ? st->w->virtual_size : 10000;
    uint64_t done = (uint64_t)((double)total * percent / 100.0);
    if (vab_progress(st->w->ctx, VAB_PHASE_CONVERT, "vhdx", done, total) < 0)
      st->cancel = true;
    return;
  }
  /* Keep the tail of the rest: qemu-img's error is its last line. */
  text_keep_tail(st->output, sizeof st->output, line);
  vab_log(st->w->ctx, VAB_LOG_DEBUG, "qemu-img: %s", line);
}

static int should_cancel(void *opaque) {
  struct run_state *st = opaque;
  return st->cancel || vab_cancelled(st->w->ctx);
}

/* VHDX facts (MS-VHDX 2.2): two 4 KiB headers at 64 and 128 KiB, each
 * "head", a CRC-32C of the 4 KiB with its own field zero, a sequence
 * number (the higher one is current) and the write GUIDs; the region
 * table at 192 KiB locates the metadata region, whose table ("metadata")
 * locates the Page 83 item. */
#define VHDX_HEADER_1 (64 * 1024)
#define VHDX_HEADER_2 (128 * 1024)
#define VHDX_HEADER_SIZE 4096
#define VHDX_REGION_TABLE (192 * 1024)
#define VHDX_REGION_SIZE (64 * 1024)
#define VHDX_METADATA_TABLE_SIZE (64 * 1024)

/* GUIDs as stored on disk (the first three fields little-endian). */
static const uint8_t metadata_region_guid[16] = {
    0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b,
    0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e};
static const uint8_t page83_item_guid[16] = {
    0xab, 0x12, 0xca, 0xbe, 0xe6, 0xb2, 0x23, 0x45,
    0x93, 0xef, 0xc3, 0x09, 0xe0, 0x00, 0xc7, 0x46};

/* SOURCE_DATE_EPOCH when it is a whole number of seconds. */
static bool source_date_epoch(long long *out) {
  const char *text = getenv("SOURCE_DATE_EPOCH");
  if (text == NULL || *text == '\0')
    return false;
  char *end = NULL;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (errno != 0 || *end != '\0' || v < 0)
    return false;
  *out = v;
  return true;
}

/* A random-looking GUID (version 4 bits set) from SEED and a label. */
static void derived_guid(const char *seed, const char *what, uint8_t out[16]) {
  struct blake2b_state h;
  blake2b_init(&h, 16);
  blake2b_update(&h, seed, strlen(seed));
  blake2b_update(&h, what, strlen(what) + 1);
  blake2b_final(&h, out);
  out[7] = (uint8_t)((out[7] & 0x0f) | 0x40);
  out[8] = (uint8_t)((out[8] & 0x3f) | 0x80);
}

static int pread_all(int fd, uint8_t *p, size_t n, off_t at) {
  while (n > 0) {
    ssize_t got = pread(fd, p, n, at);
    if (got <= 0)
      return -1;
    p += got, n -= (size_t)got, at += got;
  }
  return 0;
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, off_t at) {
  while (n > 0) {
    ssize_t put = pwrite(fd, p, n, at);
    if (put < 0)
      return -1;
    p += put, n -= (size_t)put, at += put;
  }
  return 0;
}

/* The Page 83 item's file offset, from the region and metadata tables;
 * 0 if qemu-img wrote none. */
static int find_page83(struct vab_writer *w, int fd, const char *path,
                       off_t *at) {
  static uint8_t table[VHDX_METADATA_TABLE_SIZE];
  *at = 0;
  if (pread_all(fd, table, VHDX_REGION_SIZE, VHDX_REGION_TABLE) < 0)
    return vab_error_errno(w->ctx, VAB_E_IO, errno,
                           "vhdx: cannot read the region table of '%s'", path);
  if (memcmp(table, "regi", 4) != 0)
    return vab_error(w->ctx, VAB_E_FORMAT, "vhdx: '%s' has no region table "
                     "at offset %d", path, VHDX_REGION_TABLE);
  uint32_t n = load_le32(table + 8);
  uint64_t metadata = 0;
  for (uint32_t i = 0; i < n && 16 + (size_t)(i + 1) * 32 <= VHDX_REGION_SIZE;
       i++) {
    const uint8_t *e = table + 16 + (size_t)i * 32;
    if (memcmp(e, metadata_region_guid, 16) == 0)
      metadata = load_le64(e + 16);
  }
  if (metadata == 0)
    return 0;
  if (pread_all(fd, table, sizeof table, (off_t)metadata) < 0)
    return vab_error_errno(w->ctx, VAB_E_IO, errno,
                           "vhdx: cannot read the metadata table of '%s' at "
                           "offset %" PRIu64, path, metadata);
  if (memcmp(table, "metadata", 8) != 0)
    return vab_error(w->ctx, VAB_E_FORMAT, "vhdx: '%s' has no metadata table "
                     "at offset %" PRIu64, path, metadata);
  uint16_t items = load_le16(table + 10);
  for (uint16_t i = 0; i < items && 32 + (size_t)(i + 1) * 32 <= sizeof table;
       i++) {
    const uint8_t *e = table + 32 + (size_t)i * 32;
    if (memcmp(e, page83_item_guid, 16) == 0 && load_le32(e + 20) == 16) {
      *at = (off_t)(metadata + load_le32(e + 16));
      return 0;
    }
  }
  return 0;
}

/* Replace qemu-img's random ids in PATH by ids derived from SEED. */
static int vhdx_derive_ids(struct vab_writer *w, const char *path,
                           const char *seed) {
  int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return vab_error_errno(w->ctx, VAB_E_IO, errno, "vhdx: cannot open '%s'",
                           path);
  uint8_t headers[2][VHDX_HEADER_SIZE];
  const off_t where[2] = {VHDX_HEADER_1, VHDX_HEADER_2};
  int r = 0;
  for (int i = 0; i < 2 && r == 0; i++)
    if (pread_all(fd, headers[i], VHDX_HEADER_SIZE, where[i]) < 0)
      r = vab_error_errno(w->ctx, VAB_E_IO, errno, "vhdx: cannot read the "
                          "header of '%s' at offset %lld", path,
                          (long long)where[i]);
    else if (memcmp(headers[i], "head", 4) != 0)
      r = vab_error(w->ctx, VAB_E_FORMAT, "vhdx: '%s' has no header at offset "
                    "%lld", path, (long long)where[i]);
  uint8_t file_guid[16], data_guid[16], page83[16];
  derived_guid(seed, "file write", file_guid);
  derived_guid(seed, "data write", data_guid);
  derived_guid(seed, "page 83", page83);
  /* Sequence numbers 1 and 2, keeping which header is current. */
  bool second_current = r == 0 &&
                        load_le64(headers[1] + 8) > load_le64(headers[0] + 8);
  for (int i = 0; i < 2 && r == 0; i++) {
    uint8_t *h = headers[i];
    store_le64(h + 8, (i == 1) == second_current ? 2 : 1);
    memcpy(h + 16, file_guid, 16);
    memcpy(h + 32, data_guid, 16);
    store_le32(h + 4, 0);
    store_le32(h + 4, crc32c(h, VHDX_HEADER_SIZE));
    if (pwrite_all(fd, h, VHDX_HEADER_SIZE, where[i]) < 0)
      r = vab_error_errno(w->ctx, VAB_E_IO, errno, "vhdx: cannot write the "
                          "header of '%s' at offset %lld", path,
                          (long long)where[i]);
  }
  /* With no log GUID the log is empty (qemu-img closed cleanly), but its
   * region keeps the entries qemu wrote, random GUIDs and all: zeros. */
  static const uint8_t no_guid[16];
  const uint8_t *current = headers[second_current ? 1 : 0];
  uint64_t log_at = load_le64(current + 72);
  uint32_t log_len = load_le32(current + 68);
  if (r == 0 && memcmp(current + 48, no_guid, 16) == 0 && log_at != 0) {
    static const uint8_t zeros[64 * 1024];
    for (uint64_t done = 0; done < log_len && r == 0; done += sizeof zeros) {
      size_t n = log_len - done < sizeof zeros ? (size_t)(log_len - done)
                                               : sizeof zeros;
      if (pwrite_all(fd, zeros, n, (off_t)(log_at + done)) < 0)
        r = vab_error_errno(w->ctx, VAB_E_IO, errno, "vhdx: cannot clear the "
                            "log of '%s' at offset %" PRIu64, path,
                            log_at + done);
    }
  }
  off_t page83_at = 0;
  if (r == 0)
    r = find_page83(w, fd, path, &page83_at);
  if (r == 0 && page83_at != 0 &&
      pwrite_all(fd, page83, sizeof page83, page83_at) < 0)
    r = vab_error_errno(w->ctx, VAB_E_IO, errno, "vhdx: cannot write the "
                        "disk id of '%s' at offset %lld", path,
                        (long long)page83_at);
  if (close(fd) < 0 && r == 0)
    r = vab_error_errno(w->ctx, VAB_E_IO, errno, "vhdx: cannot write '%s'",
                        path);
  return r;
}

static int vhdx_convert_file(struct vab_writer *w, const char *src_path,
                             const char *src_format, const char *dst_path) {
  struct vhdx_writer *s = writer_state(w);
  if (s == NULL)
    return -1;
  if (!subprocess_have_program("qemu-img"))
    return vab_error(w->ctx, VAB_E_SUBPROCESS,
                     "vhdx: qemu-img is not installed (Debian: qemu-utils); "
                     "vab writes VHDX through it");
  char options[64];
  snprintf(options, sizeof options, "subformat=%s", s->subformat);
  /* "--", then names that qemu-img cannot read as options or protocols
   * ("nbd:x", "json:{...}"). */
  struct buf src = BUF_INIT, dst = BUF_INIT;
  if (qemu_file_name(&src, src_path) < 0 ||
      qemu_file_name(&dst, dst_path) < 0) {
    buf_release(&src);
    buf_release(&dst);
    return vab_error(w->ctx, VAB_E_NOMEM, "out of memory");
  }
  const char *argv[16];
  size_t n = 0;
  argv[n++] = "qemu-img";
  argv[n++] = "convert";
  argv[n++] = "-p";
  if (src_format != NULL) {
    argv[n++] = "-f";
    argv[n++] = qemu_format_name(src_format);
  }
  argv[n++] = "-O";
  argv[n++] = "vhdx";
  argv[n++] = "-o";
  argv[n++] = options;
  argv[n++] = "--";
  argv[n++] = src.data;
  argv[n++] = dst.data;
  argv[n] = NULL;

  struct run_state st = {.w = w};
  struct subprocess proc;
  struct subprocess_opts opts = SUBPROCESS_OPTS_INIT;
  int started = subprocess_start(&proc, (char *const *)argv, &opts);
  int start_errno = errno;
  buf_release(&src);
  buf_release(&dst);
  if (started < 0)
    return vab_error_errno(w->ctx, VAB_E_SUBPROCESS, start_errno,
                           "vhdx: cannot start qemu-img");
  int status = 0;
  if (subprocess_wait(&proc, on_line, &st, should_cancel, &st, 0, &status) <
      0) {
    if (errno == ECANCELED)  /* vab_progress() recorded it if st.cancel */
      return st.cancel ? -1
                       : vab_error(w->ctx, VAB_E_CANCELLED,
                                   "vhdx: qemu-img convert cancelled");
    return vab_error_errno(w->ctx, VAB_E_SUBPROCESS, errno,
                           "vhdx: waiting for qemu-img failed");
  }
  if (status != 0) {
    char how[128];
    subprocess_describe_status(status, how, sizeof how);
    return vab_error(w->ctx, VAB_E_SUBPROCESS,
                     "vhdx: qemu-img convert of '%s' to '%s' failed (%s)%s%s",
                     src_path, w->path, how, st.output[0] ? ": " : "", st.output);
  }
  long long epoch = 0;
  if (source_date_epoch(&epoch)) {
    char seed[128];
    snprintf(seed, sizeof seed, "vab vhdx/%lld/%" PRIu64 "/%s", epoch,
             w->virtual_size, s->subformat);
    if (vhdx_derive_ids(w, dst_path, seed) < 0)
      return -1;
  }
  if (vab_progress(w->ctx, VAB_PHASE_CONVERT, "vhdx", w->virtual_size,
                   w->virtual_size) < 0)
    return -1;
  return 0;
}

static void vhdx_free(struct vab_writer *w) {
  free(w->priv);
  w->priv = NULL;
}

const struct vab_format vab_format_vhdx = {
    .name = "vhdx",
    .extension = "vhdx",
    .description = "Microsoft VHDX (Hyper-V generation 2), via qemu-img",
    .caps = VAB_FMT_WRITE | VAB_FMT_SPARSE | VAB_FMT_EXTERNAL,
    .options = vhdx_options,
    .set_option = vhdx_set_option,
    .free = vhdx_free,
    .convert_file = vhdx_convert_file,
};
