/* common/endian.h: byte order of every load and store, at odd addresses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/endian.h"

static const uint8_t bytes[9] = {0xff, 0x01, 0x23, 0x45, 0x67,
                                 0x89, 0xab, 0xcd, 0xef};

static void test_loads(void **state) {
  (void)state;
  const uint8_t *p = bytes + 1; /* unaligned on purpose */
  assert_int_equal(load_be16(p), 0x0123);
  assert_int_equal(load_le16(p), 0x2301);
  assert_int_equal(load_be32(p), 0x01234567u);
  assert_int_equal(load_le32(p), 0x67452301u);
  assert_true(load_be64(p) == 0x0123456789abcdefull);
  assert_true(load_le64(p) == 0xefcdab8967452301ull);
  /* High bits must not sign-extend. */
  assert_int_equal(load_be16(bytes), 0xff01);
  assert_int_equal(load_le32(bytes + 5), 0xefcdab89u);
}

static void test_stores(void **state) {
  (void)state;
  uint8_t out[9];
  memset(out, 0xee, sizeof out);
  store_be64(out + 1, 0x0123456789abcdefull);
  assert_int_equal(out[0], 0xee);
  assert_memory_equal(out + 1, bytes + 1, 8);
  store_le64(out + 1, 0xefcdab8967452301ull);
  assert_memory_equal(out + 1, bytes + 1, 8);
  memset(out, 0xee, sizeof out);
  store_be32(out + 1, 0x01234567u);
  assert_memory_equal(out + 1, bytes + 1, 4);
  assert_int_equal(out[5], 0xee);
  store_le32(out + 1, 0x67452301u);
  assert_memory_equal(out + 1, bytes + 1, 4);
  store_be16(out + 1, 0x0123);
  assert_memory_equal(out + 1, bytes + 1, 2);
  assert_int_equal(out[3], 0x45); /* untouched */
  store_le16(out + 1, 0x2301);
  assert_memory_equal(out + 1, bytes + 1, 2);
}

static void test_round_trip(void **state) {
  (void)state;
  uint8_t out[8];
  const uint64_t v = 0x8000000000000001ull;
  store_be64(out, v);
  assert_true(load_be64(out) == v);
  store_le64(out, v);
  assert_true(load_le64(out) == v);
  store_be32(out, 0xfffffffeu);
  assert_int_equal(load_be32(out), 0xfffffffeu);
  store_le16(out, 0xfffe);
  assert_int_equal(load_le16(out), 0xfffe);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_loads),
      cmocka_unit_test(test_stores),
      cmocka_unit_test(test_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
