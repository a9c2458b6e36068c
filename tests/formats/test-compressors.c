/* formats/compressors: one set per thread, reused, remade on a new level,
 * output identical to a fresh compressor's, released on demand. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "formats/compressors.h"

#define DATA_SIZE 65536

static uint8_t data[DATA_SIZE];

static void fill(void) {
  uint32_t x = 12345;
  for (size_t i = 0; i < DATA_SIZE; i++) {
    x = x * 1103515245u + 12345u;
    data[i] = (uint8_t)((x >> 16) % 7 + 'a');  /* compressible */
  }
}

static void test_deflate_reused_and_same_output(void **state) {
  (void)state;
  struct libdeflate_compressor *c = vab_thread_deflate(6);
  assert_non_null(c);
  assert_ptr_equal(vab_thread_deflate(6), c);
  static uint8_t a[DATA_SIZE], b[DATA_SIZE];
  size_t na = libdeflate_zlib_compress(c, data, DATA_SIZE, a, sizeof a);
  struct libdeflate_compressor *fresh = libdeflate_alloc_compressor(6);
  size_t nb = libdeflate_zlib_compress(fresh, data, DATA_SIZE, b, sizeof b);
  libdeflate_free_compressor(fresh);
  assert_true(na > 0 && na < DATA_SIZE);
  assert_int_equal(na, nb);
  assert_memory_equal(a, b, na);
  /* A new level gives a compressor at that level. */
  struct libdeflate_compressor *c1 = vab_thread_deflate(1);
  assert_non_null(c1);
  fresh = libdeflate_alloc_compressor(1);
  na = libdeflate_zlib_compress(c1, data, DATA_SIZE, a, sizeof a);
  nb = libdeflate_zlib_compress(fresh, data, DATA_SIZE, b, sizeof b);
  libdeflate_free_compressor(fresh);
  assert_int_equal(na, nb);
  assert_memory_equal(a, b, na);
  /* Out-of-range level: NULL, and the next good call still works. */
  assert_null(vab_thread_deflate(99));
  assert_non_null(vab_thread_deflate(6));
}

static void test_zstd_reused(void **state) {
  (void)state;
  ZSTD_CCtx *z = vab_thread_zstd();
  assert_non_null(z);
  assert_ptr_equal(vab_thread_zstd(), z);
  static uint8_t out[DATA_SIZE];
  size_t n = ZSTD_compressCCtx(z, out, sizeof out, data, DATA_SIZE, 3);
  assert_false(ZSTD_isError(n));
  static uint8_t back[DATA_SIZE];
  assert_int_equal(ZSTD_decompress(back, sizeof back, out, n), DATA_SIZE);
  assert_memory_equal(back, data, DATA_SIZE);
}

static void test_zero_padded(void **state) {
  (void)state;
  const uint8_t *p = vab_thread_zero_padded(data, 10, 4096);
  assert_non_null(p);
  assert_memory_equal(p, data, 10);
  for (size_t i = 10; i < 4096; i++)
    assert_int_equal(p[i], 0);
  /* A larger size grows the buffer; a smaller one reuses it. */
  p = vab_thread_zero_padded(data, 100, 65536);
  assert_non_null(p);
  assert_memory_equal(p, data, 100);
  assert_int_equal(p[65535], 0);
  assert_ptr_equal(vab_thread_zero_padded(data, 5, 512), p);
  assert_null(vab_thread_zero_padded(data, 10, 5));
}

static void *other_thread(void *arg) {
  struct libdeflate_compressor **out = arg;
  *out = vab_thread_deflate(6);
  return NULL;  /* freed at this thread's exit */
}

static void test_per_thread(void **state) {
  (void)state;
  struct libdeflate_compressor *mine = vab_thread_deflate(6);
  struct libdeflate_compressor *theirs = NULL;
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, other_thread, &theirs), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_non_null(theirs);
  assert_ptr_not_equal(theirs, mine);
}

static void test_release(void **state) {
  (void)state;
  assert_non_null(vab_thread_deflate(6));
  assert_non_null(vab_thread_zstd());
  vab_thread_compressors_release();
  vab_thread_compressors_release();  /* twice is harmless */
  /* Made again on the next use (leak-checked under ASan). */
  assert_non_null(vab_thread_deflate(6));
  vab_thread_compressors_release();
}

int main(void) {
  fill();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_deflate_reused_and_same_output),
      cmocka_unit_test(test_zstd_reused),
      cmocka_unit_test(test_zero_padded),
      cmocka_unit_test(test_per_thread),
      cmocka_unit_test(test_release),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
