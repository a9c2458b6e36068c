/* The VMDK and VHD writers and readers driven through their vtables, as
 * the core does, on files in a temporary folder: round trips, the
 * streamOptimized tail layout, and hostile images with exact errors. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "formats/registry.h"
#include "formats/vmdk/vmdk.h"
#include "vab/error.h"
#include "vab/format.h"

static char dir[] = "/tmp/vab-vmdk-test-XXXXXX";

static char *path_in_dir(const char *name) {
  static char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return path;
}

/* Write size bytes of data through the writer vtable, as the core would. */
static int write_image(struct vab_ctx *ctx, const struct vab_format *f,
                       const char *path, const char *const *options,
                       const uint8_t *data, uint64_t size) {
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  assert_true(fd >= 0);
  struct vab_sink sink;
  vab_sink_init_fd(&sink, ctx, fd);
  struct vab_writer w = {.format = f, .ctx = ctx, .sink = &sink,
                         .path = path, .virtual_size = size, .threads = 1};
  struct vab_option opts[8];
  size_t n = 0;
  for (size_t i = 0; options && options[i]; i += 2) {
    assert_true(n < sizeof opts / sizeof opts[0]);
    opts[n++] = (struct vab_option){options[i], options[i + 1]};
  }
  int r = vab_writer_set_options(&w, opts, n);
  if (r == 0)
    r = f->open(&w);
  uint8_t *out = NULL;
  if (r == 0) {
    out = malloc(2 * (size_t)w.block_size + 4096);
    assert_non_null(out);
  }
  for (uint64_t off = 0; r == 0 && off < size; off += w.block_size) {
    uint32_t len = size - off < w.block_size ? (uint32_t)(size - off)
                                             : w.block_size;
    struct vab_block b = {.offset = off, .len = len, .data = data + off,
                          .out = out,
                          .out_capacity = 2 * (size_t)w.block_size + 4096};
    b.is_zero = true;
    for (uint32_t i = 0; i < len && b.is_zero; i++)
      b.is_zero = data[off + i] == 0;
    if (b.is_zero)
      b.data = NULL;
    else if (f->encode != NULL)
      r = f->encode(&w, &b);
    if (r == 0)
      r = f->put(&w, &b);
  }
  if (r == 0)
    r = f->close(&w);
  if (r == 0)
    assert_int_equal(ftruncate(fd, (off_t)sink.offset), 0);
  f->free(&w);
  free(out);
  close(fd);
  return r;
}

struct reader_handle {
  struct vab_reader r;
};

static int open_reader(struct vab_ctx *ctx, const struct vab_format *f,
                       const char *path, struct vab_reader *r) {
  memset(r, 0, sizeof *r);
  r->format = f;
  r->ctx = ctx;
  r->path = path;
  r->fd = open(path, O_RDONLY);
  assert_true(r->fd >= 0);
  struct stat st;
  assert_int_equal(fstat(r->fd, &st), 0);
  r->file_size = (uint64_t)st.st_size;
  return f->reader_open(r);
}

static void close_reader(struct vab_reader *r) {
  r->format->reader_close(r);
  close(r->fd);
}

/* Mixed test data: text, random, zero grains, and a short tail. */
static uint8_t *make_data(uint64_t size) {
  uint8_t *d = calloc(1, size);
  assert_non_null(d);
  uint32_t x = 12345;
  for (uint64_t i = 0; i < size; i++) {
    uint64_t grain = i / 65536;
    if (grain % 5 == 1)
      continue;  /* zero grain */
    if (grain % 5 == 2) {
      x = x * 1103515245u + 12345u;
      d[i] = (uint8_t)(x >> 16);  /* incompressible */
    } else {
      d[i] = (uint8_t)("the quick brown fox jumps\n"[i % 26]);
    }
  }
  return d;
}

static void round_trip(const char *name, const char *const *options,
                       uint64_t size, const char *subformat) {
  struct vab_ctx *ctx = vab_ctx_new();
  uint8_t *data = make_data(size);
  const char *path = path_in_dir(name);
  assert_int_equal(write_image(ctx, &vab_format_vmdk, path, options, data,
                               size),
                   0);
  struct vab_reader r;
  assert_int_equal(open_reader(ctx, &vab_format_vmdk, path, &r), 0);
  assert_string_equal(r.info.subformat, subformat);
  assert_int_equal(r.info.cluster_size, 65536);
  /* Capacity in sectors: rounded to a sector, not to a grain. */
  uint64_t rounded = (size + 511) / 512 * 512;
  assert_int_equal(r.info.virtual_size, rounded);
  uint8_t *back = malloc(rounded);
  assert_non_null(back);
  /* Read in odd pieces so reads cross grain boundaries. */
  for (uint64_t off = 0; off < rounded;) {
    size_t n = rounded - off < 100000 ? (size_t)(rounded - off) : 100000;
    assert_int_equal(r.format->pread(&r, back + off, n, off), 0);
    off += n;
  }
  assert_memory_equal(back, data, size);
  for (uint64_t i = size; i < rounded; i++)
    assert_int_equal(back[i], 0);
  uint64_t run = 0;
  bool zero = false;
  assert_int_equal(r.format->block_status(&r, 65536, rounded - 65536, &run,
                                          &zero),
                   0);
  assert_true(zero);
  assert_int_equal(run, 65536);
  struct vab_check_result cr;
  assert_int_equal(r.format->check(&r, &cr), 0);
  assert_int_equal(cr.errors, 0);
  assert_true(cr.checked > 0);
  close_reader(&r);
  assert_int_equal(vab_error_count(ctx), 0);
  free(back);
  free(data);
  vab_ctx_free(ctx);
}

static void test_stream_round_trip(void **state) {
  round_trip("s.vmdk", NULL, 3 * 65536 * 5 + 1000, "streamOptimized");
}

static void test_sparse_round_trip(void **state) {
  static const char *const opts[] = {"subformat", "monolithicSparse", NULL};
  round_trip("m.vmdk", opts, 40u << 20, "monolithicSparse");
}

/* The last three sectors are footer marker, footer, EOS; the footer is
 * the header with the real GD offset, which points after a GD marker. */
static void test_stream_tail(void **state) {
  struct vab_ctx *ctx = vab_ctx_new();
  uint64_t size = 70u << 20;  /* three grain tables */
  uint8_t *data = make_data(size);
  const char *path = path_in_dir("tail.vmdk");
  static const char *const opts[] = {"cid", "0badcafe", "extent_file",
                                     "app-disk1.vmdk", NULL};
  assert_int_equal(write_image(ctx, &vab_format_vmdk, path, opts, data, size),
                   0);
  int fd = open(path, O_RDONLY);
  struct stat st;
  fstat(fd, &st);
  assert_int_equal(st.st_size % 512, 0);
  uint8_t tail[1536], head[512];
  assert_int_equal(pread(fd, tail, sizeof tail, st.st_size - 1536), 1536);
  assert_int_equal(pread(fd, head, sizeof head, 0), 512);
  static const uint8_t footer_marker[16] = {1, 0, 0, 0, 0, 0, 0, 0,
                                            0, 0, 0, 0, 3, 0, 0, 0};
  assert_memory_equal(tail, footer_marker, 16);
  for (int i = 0; i < 512; i++)
    assert_int_equal(tail[1024 + i], 0);  /* EOS */
  struct vmdk_header h, f;
  assert_true(vmdk_header_decode(head, &h));
  assert_true(vmdk_header_decode(tail + 512, &f));
  assert_true(h.gd_offset == VMDK_GD_AT_END);
  assert_int_equal(h.version, 3);
  assert_int_equal(h.flags, 0x30001);
  assert_int_equal(h.capacity, size / 512);
  assert_int_equal(h.overhead, 128);
  /* GD: 3 entries, one sector, right before the footer marker. */
  assert_int_equal(f.gd_offset, (uint64_t)st.st_size / 512 - 4);
  uint8_t gd_marker[512];
  pread(fd, gd_marker, sizeof gd_marker, (off_t)(f.gd_offset - 1) * 512);
  assert_int_equal(load_le64(gd_marker), 1);
  assert_int_equal(load_le32(gd_marker + 12), VMDK_MARKER_GD);
  char desc[64];
  pread(fd, desc, sizeof desc, 512);
  assert_memory_equal(desc, "# Disk DescriptorFile\nversion=1\n", 32);
  char text[1024] = {0};
  pread(fd, text, sizeof text - 1, 512);
  assert_non_null(strstr(text, "CID=0badcafe\n"));
  assert_non_null(strstr(text, "RW 143360 SPARSE \"app-disk1.vmdk\"\n"));
  assert_non_null(strstr(text, "createType=\"streamOptimized\"\n"));
  close(fd);
  free(data);
  vab_ctx_free(ctx);
}

/* One -o option, checked and set as the core does. */
static int set_one(struct vab_writer *w, const char *key, const char *value) {
  struct vab_option o = {key, value};
  return vab_writer_set_options(w, &o, 1);
}

/* The writer stores what its spec table and check_options() accepted;
 * those are the only checks, with the messages `vab validate` gives. */
static void test_options(void **state) {
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_sink sink;
  vab_sink_init_fd(&sink, ctx, -1);
  struct vab_writer w = {.format = &vab_format_vmdk, .ctx = ctx,
                         .sink = &sink};
  const struct vab_format *f = &vab_format_vmdk;
  assert_int_equal(set_one(&w, "subformat", "flat"), -1);
  assert_string_equal(vab_last_error(ctx)->message,
                      "vmdk option subformat must be streamOptimized or "
                      "monolithicSparse, not 'flat'");
  assert_int_equal(set_one(&w, "adapter_type", "pvscsi"), -1);
  assert_string_equal(vab_last_error(ctx)->message,
                      "vmdk option adapter_type must be ide, lsilogic, "
                      "buslogic or legacyESX, not 'pvscsi'");
  assert_int_equal(set_one(&w, "hwversion", "3"), -1);
  assert_int_equal(set_one(&w, "level", "13"), -1);
  assert_string_equal(vab_last_error(ctx)->message,
                      "vmdk option level must be a number from 1 to 12, "
                      "not '13'");
  assert_int_equal(set_one(&w, "cid", "ffffffff"), -1);
  assert_int_equal(set_one(&w, "colour", "blue"), -1);
  assert_string_equal(vab_last_error(ctx)->message,
                      "format vmdk has no option 'colour'");
  assert_int_equal(set_one(&w, "extent_file", "a/b.vmdk"), -1);
  assert_string_equal(vab_last_error(ctx)->message,
                      "vmdk: extent_file 'a/b.vmdk' is not a plain file name");
  assert_int_equal(set_one(&w, "hwversion", "13"), 0);
  assert_int_equal(set_one(&w, "level", "1"), 0);
  assert_int_equal(set_one(&w, "cid", "0000abcd"), 0);
  f->free(&w);
  /* Larger than a sparse extent can address. */
  w.virtual_size = (UINT64_C(2) << 40) + 512;
  assert_int_equal(f->open(&w), -1);
  assert_string_equal(vab_last_error(ctx)->message,
                      "vmdk: virtual size 2199023256064 bytes is over the "
                      "2 TiB a sparse VMDK extent can hold");
  f->free(&w);
  vab_ctx_free(ctx);
}

/* Write a valid stream image, patch bytes, and expect an exact error from
 * open or from reading everything. */
static void patch_and_expect(const char *name, uint64_t at, const void *bytes,
                             size_t n, long truncate_to, const char *expect) {
  struct vab_ctx *ctx = vab_ctx_new();
  uint64_t size = 2u << 20;
  uint8_t *data = make_data(size);
  char path[256];
  snprintf(path, sizeof path, "%s", path_in_dir(name));
  assert_int_equal(write_image(ctx, &vab_format_vmdk, path, NULL, data, size),
                   0);
  int fd = open(path, O_RDWR);
  if (bytes != NULL)
    assert_int_equal(pwrite(fd, bytes, n, (off_t)at), (ssize_t)n);
  if (truncate_to >= 0)
    assert_int_equal(ftruncate(fd, truncate_to), 0);
  close(fd);
  struct vab_reader r;
  int rc = open_reader(ctx, &vab_format_vmdk, path, &r);
  if (rc == 0) {
    uint8_t *back = malloc(size);
    rc = r.format->pread(&r, back, size, 0);
    free(back);
  }
  assert_int_equal(rc, -1);
  const struct vab_diag *d = vab_last_error(ctx);
  assert_non_null(d);
  char want[512];
  snprintf(want, sizeof want, "'%s': %s", path, expect);
  assert_string_equal(d->message, want);
  assert_int_equal(d->code == VAB_E_FORMAT || d->code == VAB_E_UNSUPPORTED, 1);
  close_reader(&r);
  free(data);
  vab_ctx_free(ctx);
}

static void test_hostile(void **state) {
  uint8_t le[8];
  /* Truncated stream: no footer where the header says to look. */
  patch_and_expect("trunc.vmdk", 0, NULL, 0, 70000,
                   "no footer marker at offset 68464 (truncated "
                   "stream?)");
  /* Absurd grain size. */
  store_le64(le, 3);
  patch_and_expect("grain.vmdk", 20, le, 8, -1,
                   "grain size 3 sectors in the header at offset 0 is "
                   "not a power of two up to 2048");
  /* Absurd capacity. */
  store_le64(le, UINT64_C(1) << 60);
  patch_and_expect("cap.vmdk", 12, le, 8, -1,
                   "capacity 1152921504606846976 sectors in the header "
                   "at offset 0 is too large");
  /* Too many GTEs per GT. */
  store_le32(le, 100000);
  patch_and_expect("gtes.vmdk", 44, le, 4, -1,
                   "100000 entries per grain table in the header at "
                   "offset 0 (1 to 512 are valid)");
  /* Version 4. */
  store_le32(le, 4);
  patch_and_expect("version.vmdk", 4, le, 4, -1,
                   "VMDK version 4 at offset 0 is not supported (1 to 3 "
                   "are)");
  /* Grain marker with an absurd size (first grain at sector 128). */
  store_le32(le, 0x7fffffff);
  patch_and_expect("msize.vmdk", 128 * 512 + 8, le, 4, -1,
                   "grain marker at offset 65536 has an absurd size of "
                   "2147483647 bytes");
  /* Garbage where the zlib stream starts. */
  patch_and_expect("zlib.vmdk", 128 * 512 + 12, "\xff\xff\xff\xff", 4, -1,
                   "compressed grain at offset 65536 is not a valid "
                   "zlib stream");
  /* A grain marker for the wrong LBA. */
  store_le64(le, 999);
  patch_and_expect("lba.vmdk", 128 * 512, le, 8, -1,
                   "grain marker at offset 65536 is for sector 999, "
                   "not 0");
  /* Not a VMDK at all. */
  patch_and_expect("magic.vmdk", 0, "QFI\xfb", 4, -1,
                   "no VMDK sparse extent magic (KDMV) at offset 0");
}

/* A GD entry pointing past the end, and two GTs sharing one place: open
 * reports the first, check() counts the second. */
static void test_hostile_tables(void **state) {
  struct vab_ctx *ctx = vab_ctx_new();
  uint64_t size = 40u << 20;  /* two GTs */
  uint8_t *data = make_data(size);
  const char *path = path_in_dir("gd.vmdk");
  static const char *const opts[] = {"subformat", "monolithicSparse", NULL};
  assert_int_equal(write_image(ctx, &vab_format_vmdk, path, opts, data, size),
                   0);
  struct vab_reader r;
  assert_int_equal(open_reader(ctx, &vab_format_vmdk, path, &r), 0);
  uint64_t gd_at = 0;
  {
    uint8_t head[512];
    struct vmdk_header h;
    pread(r.fd, head, sizeof head, 0);
    vmdk_header_decode(head, &h);
    gd_at = h.gd_offset * 512;
  }
  close_reader(&r);

  /* GT 1 := GT 0: overlapping tables. */
  int fd = open(path, O_RDWR);
  uint8_t gde[4];
  pread(fd, gde, 4, (off_t)gd_at);
  pwrite(fd, gde, 4, (off_t)gd_at + 4);
  close(fd);
  assert_int_equal(open_reader(ctx, &vab_format_vmdk, path, &r), 0);
  struct vab_check_result cr;
  assert_int_equal(r.format->check(&r, &cr), 0);
  assert_true(cr.errors >= 1);
  close_reader(&r);

  /* GT 1 past the end of the file. */
  fd = open(path, O_RDWR);
  store_le32(gde, 0x7ffffff0);
  pwrite(fd, gde, 4, (off_t)gd_at + 4);
  close(fd);
  assert_int_equal(open_reader(ctx, &vab_format_vmdk, path, &r), -1);
  char want[512];
  snprintf(want, sizeof want,
           "'%s': grain table 1 at offset 1099511619584 (2048 bytes) lies "
           "past the end of the file (%llu bytes)",
           path, (unsigned long long)r.file_size);
  assert_string_equal(vab_last_error(ctx)->message, want);
  close_reader(&r);
  free(data);
  vab_ctx_free(ctx);
}

/* Fixed VHD: the exact size, footer, read back. */
static void test_vhd_round_trip(void **state) {
  struct vab_ctx *ctx = vab_ctx_new();
  uint64_t size = (3u << 20) + 4096;
  uint8_t *data = make_data(size);
  const char *path = path_in_dir("d.vhd");
  assert_int_equal(write_image(ctx, &vab_format_vhd, path, NULL, data, size),
                   0);
  struct stat st;
  stat(path, &st);
  assert_int_equal(st.st_size, size + 512);
  struct vab_reader r;
  assert_int_equal(open_reader(ctx, &vab_format_vhd, path, &r), 0);
  assert_int_equal(r.info.virtual_size, size);
  uint8_t *back = malloc(size);
  assert_int_equal(r.format->pread(&r, back, size, 0), 0);
  assert_memory_equal(back, data, size);
  struct vab_check_result cr;
  assert_int_equal(r.format->check(&r, &cr), 0);
  assert_int_equal(cr.errors, 0);
  close_reader(&r);
  free(back);
  free(data);
  vab_ctx_free(ctx);
}

int main(void) {
  if (mkdtemp(dir) == NULL)
    return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stream_round_trip),
      cmocka_unit_test(test_sparse_round_trip),
      cmocka_unit_test(test_stream_tail),
      cmocka_unit_test(test_options),
      cmocka_unit_test(test_hostile),
      cmocka_unit_test(test_hostile_tables),
      cmocka_unit_test(test_vhd_round_trip),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    failed++;
  return failed;
}
