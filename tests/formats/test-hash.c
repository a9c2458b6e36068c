/* BLAKE2b (common/blake2b.c) against the RFC 7693 and reference vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "common/blake2b.h"

static void hex(const uint8_t *d, size_t n, char *out) {
  for (size_t i = 0; i < n; i++)
    sprintf(out + 2 * i, "%02x", d[i]);
}

/* RFC 7693 appendix A: BLAKE2b-512("abc"). */
static void test_rfc7693_abc(void **state) {
  (void)state;
  uint8_t d[64];
  char h[129];
  blake2b(d, 64, "abc", 3);
  hex(d, 64, h);
  assert_string_equal(h,
    "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
    "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923");
}

/* BLAKE2b-512 and -256 of the empty string (reference implementation). */
static void test_empty(void **state) {
  (void)state;
  uint8_t d[64];
  char h[129];
  blake2b(d, 64, "", 0);
  hex(d, 64, h);
  assert_string_equal(h,
    "786a02f742015903c6c6fd852552d272912f4740e15847618a86e217f71f5419"
    "d25e1031afee585313896444934eb04b903a685b1448b755d56f701afe9be2ce");
  blake2b(d, 32, "", 0);
  hex(d, 32, h);
  assert_string_equal(h,
    "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
}

/* One call and many small updates give the same digest, across the
 * 128-byte block boundaries where the final-block rule matters. */
static void test_incremental(void **state) {
  (void)state;
  uint8_t data[1000];
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (uint8_t)(i * 31 + 7);
  size_t lengths[] = {0, 1, 127, 128, 129, 255, 256, 257, 1000};
  for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++) {
    size_t len = lengths[k];
    uint8_t one[32], many[32];
    blake2b(one, 32, data, len);
    struct blake2b_state s;
    blake2b_init(&s, 32);
    for (size_t i = 0; i < len; i += 13)
      blake2b_update(&s, data + i, len - i < 13 ? len - i : 13);
    blake2b_final(&s, many);
    assert_memory_equal(one, many, 32);
  }
}

/* Different data, different digest; digest length is in the parameters. */
static void test_distinct(void **state) {
  (void)state;
  uint8_t a[32], b[32], c[64];
  blake2b(a, 32, "cluster-a", 9);
  blake2b(b, 32, "cluster-b", 9);
  blake2b(c, 64, "cluster-a", 9);
  assert_memory_not_equal(a, b, 32);
  assert_memory_not_equal(a, c, 32);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_rfc7693_abc),
    cmocka_unit_test(test_empty),
    cmocka_unit_test(test_incremental),
    cmocka_unit_test(test_distinct),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
