/* qcow2 entry encoders (formats/qcow2/qcow2-entry.c) against the layout
 * of qcow2.txt "Compressed Clusters Descriptor". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "formats/qcow2/qcow2.h"

/* 64 KiB clusters: offset in bits 0-53, extra sectors in bits 54-61. */
static void test_compressed_64k(void **state) {
  (void)state;
  uint64_t e;
  assert_true(qcow2_compressed_entry(0x30000, 1000, 16, &e));
  /* 1000 bytes from a sector start: sectors 0-1, one additional. */
  assert_int_equal(e, (1ull << 62) | 0x30000 | (1ull << 54));
  assert_true(qcow2_compressed_entry(0x30000 + 500, 100, 16, &e));
  /* Bytes 500..599 straddle a sector boundary. */
  assert_int_equal(e, (1ull << 62) | (0x30000 + 500) | (1ull << 54));
  assert_true(qcow2_compressed_entry(0x30000 + 12, 100, 16, &e));
  assert_int_equal(e, (1ull << 62) | (0x30000 + 12));
  uint64_t host, len;
  qcow2_compressed_range((1ull << 62) | 0x30000 | (1ull << 54), 16, &host,
                         &len);
  assert_int_equal(host, 0x30000);
  assert_int_equal(len, 1024);
  qcow2_compressed_range((1ull << 62) | (0x30000 + 500) | (1ull << 54), 16,
                         &host, &len);
  assert_int_equal(host, 0x30000 + 500);
  assert_int_equal(len, 1024 - 500);
  /* COPIED must never be set on a compressed entry. */
  assert_int_equal(e & (1ull << 63), 0);
}

/* The extremes of the table in formats.md 1.6. */
static void test_compressed_limits(void **state) {
  (void)state;
  uint64_t e;
  /* 512 B clusters: one sector-count bit (61), offsets up to 2^56. */
  assert_true(qcow2_compressed_entry(1000, 400, 9, &e));
  assert_int_equal(e, (1ull << 62) | 1000 | (1ull << 61));
  assert_false(qcow2_compressed_entry(1ull << 56, 10, 9, &e));
  /* 2 MiB clusters: offsets below 2^49, 13 sector-count bits. */
  assert_true(qcow2_compressed_entry((1ull << 49) - 4096, 2048, 21, &e));
  assert_false(qcow2_compressed_entry(1ull << 49, 100, 21, &e));
  uint64_t host, len;
  assert_true(qcow2_compressed_entry(7, (2u << 20) - 1, 21, &e));
  qcow2_compressed_range(e, 21, &host, &len);
  assert_int_equal(host, 7);
  /* Bytes 7 .. 2 MiB + 5 touch sectors 0 to 4096. */
  assert_int_equal(len, 4097 * 512 - 7);
  assert_false(qcow2_compressed_entry(0, 0, 16, &e));
}

static void test_refcounts(void **state) {
  (void)state;
  const uint8_t block16[] = {0x00, 0x01, 0xff, 0xfe, 0x12, 0x34};
  assert_int_equal(qcow2_refcount16(block16, 1), 0xfffe);
  assert_int_equal(qcow2_refcount_get(block16, 2, 4), 0x1234);
  /* Sub-byte widths are LSB first. */
  const uint8_t block1[] = {0x05};  /* bits 0 and 2 */
  assert_int_equal(qcow2_refcount_get(block1, 0, 0), 1);
  assert_int_equal(qcow2_refcount_get(block1, 1, 0), 0);
  assert_int_equal(qcow2_refcount_get(block1, 2, 0), 1);
  const uint8_t block4[] = {0x3a};
  assert_int_equal(qcow2_refcount_get(block4, 0, 2), 0xa);
  assert_int_equal(qcow2_refcount_get(block4, 1, 2), 0x3);
  const uint8_t block64[] = {0, 0, 0, 0, 0, 0, 1, 2};
  assert_int_equal(qcow2_refcount_get(block64, 0, 6), 0x102);
}

static void test_big_endian(void **state) {
  (void)state;
  uint8_t b[8];
  store_be64(b, 0x0102030405060708ull);
  const uint8_t want[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  assert_memory_equal(b, want, 8);
  assert_int_equal(load_be64(b), 0x0102030405060708ull);
  store_be32(b, QCOW2_MAGIC);
  assert_memory_equal(b, "QFI\xfb", 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_compressed_64k),
    cmocka_unit_test(test_compressed_limits),
    cmocka_unit_test(test_refcounts),
    cmocka_unit_test(test_big_endian),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
