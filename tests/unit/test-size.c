/* common/size.c: the one size grammar of templates and format options, and
 * the one duration grammar of templates and vab cache prune. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/size.h"

static void test_accepted(void **state) {
  (void)state;
  static const struct {
    const char *text;
    uint64_t value;
  } cases[] = {
    {"0", 0},
    {"1048576", 1048576},
    {"512", 512},
    {"64k", 65536},
    {"64K", 65536},
    {"64KiB", 65536},
    {"512M", 512ull << 20},
    {"2m", 2ull << 20},
    {"4G", 4ull << 30},
    {"4GiB", 4ull << 30},
    {"2T", 2ull << 40},
    {"1P", 1ull << 50},
    {"18446744073709551615", UINT64_MAX},
    {"16383P", 16383ull << 50},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint64_t v = 1;
    assert_int_equal(vab_parse_size(cases[i].text, &v), 0);
    assert_int_equal(v, cases[i].value);
  }
}

static void test_refused(void **state) {
  (void)state;
  static const char *const cases[] = {
    "", "G", "4GB", "4 G", " 4G", "4G ", "-1", "+1", "4X", "4Gi", "4GiBs",
    "1.5G", "0x10", "16384P", "99999999999P", "18446744073709551616",
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint64_t v = 7;
    assert_int_equal(vab_parse_size(cases[i], &v), -1);
    assert_int_equal(v, 7);  /* untouched on error */
  }
}

static void test_durations(void **state) {
  (void)state;
  static const struct {
    const char *text;
    uint64_t ms;
  } cases[] = {
    {"90s", 90000}, {"5m", 300000}, {"300", 300000}, {"1h30m", 5400000},
    {"250ms", 250}, {"30d", 30ull * 86400 * 1000}, {"1d12h", 129600000},
    {"0", 0}, {"1m1ms", 60001},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint64_t v = 1;
    assert_int_equal(vab_parse_duration_ms(cases[i].text, &v), 0);
    assert_int_equal(v, cases[i].ms);
  }
  static const char *const refused[] = {
    "", "5x", "m", "1m30", "1.5h", "-1s", " 5s", "5s ", "5S", "d",
    "99999999999999999999h", "213503982334602d", "1h1",
  };
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    uint64_t v = 7;
    assert_int_equal(vab_parse_duration_ms(refused[i], &v), -1);
    assert_int_equal(v, 7);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_accepted),
    cmocka_unit_test(test_refused),
    cmocka_unit_test(test_durations),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
