/* common/buf: growth, cap, detach. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/buf.h"

static void test_append_and_printf(void **state) {
  (void)state;
  struct buf b = BUF_INIT;
  assert_int_equal(buf_puts(&b, "abc"), 0);
  assert_int_equal(buf_printf(&b, "-%d-", 42), 0);
  assert_int_equal(buf_putc(&b, 'z'), 0);
  assert_string_equal(b.data, "abc-42-z");
  assert_int_equal(b.len, 8);
  for (int i = 0; i < 1000; i++)
    assert_int_equal(buf_puts(&b, "0123456789"), 0);
  assert_int_equal(b.len, 10008);
  buf_truncate(&b, 3);
  assert_string_equal(b.data, "abc");
  char *s = buf_detach(&b);
  assert_null(b.data);
  assert_string_equal(s, "abc");
  free(s);
  buf_release(&b);
}

static void test_cap(void **state) {
  (void)state;
  struct buf b = BUF_INIT;
  b.cap = 8;
  assert_int_equal(buf_puts(&b, "12345678"), 0);
  errno = 0;
  assert_int_equal(buf_putc(&b, '9'), -1);
  assert_int_equal(errno, EFBIG);
  assert_string_equal(b.data, "12345678");
  buf_release(&b);
}

static void test_detach_empty_is_empty_string(void **state) {
  (void)state;
  struct buf b = BUF_INIT;
  char *s = buf_detach(&b);
  assert_non_null(s);
  assert_string_equal(s, "");
  free(s);
}

/* text_plain_copy: no CR, no colour or cursor sequences; other bytes
 * kept, a lone ESC too; a sequence cut off at the end is dropped. */
static void test_plain_copy(void **state) {
  (void)state;
  char *p = text_plain_copy("\033[0;32m  OK  \033[0m Started nginx\r");
  assert_non_null(p);
  assert_string_equal(p, "  OK   Started nginx");
  free(p);
  p = text_plain_copy("a\033b\033[1");
  assert_non_null(p);
  assert_string_equal(p, "a\033b");
  free(p);
  p = text_plain_copy("");
  assert_non_null(p);
  assert_string_equal(p, "");
  free(p);
}

/* text_keep_tail: lines joined by newlines; a line that does not fit
 * starts the text over; one longer than the buffer is cut. */
static void test_keep_tail(void **state) {
  (void)state;
  char out[12] = "";
  text_keep_tail(out, sizeof out, "one");
  text_keep_tail(out, sizeof out, "two");
  assert_string_equal(out, "one\ntwo");
  text_keep_tail(out, sizeof out, "three");
  assert_string_equal(out, "three");
  text_keep_tail(out, sizeof out, "a-very-long-line");
  assert_string_equal(out, "a-very-lon");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_append_and_printf),
    cmocka_unit_test(test_cap),
    cmocka_unit_test(test_detach_empty_is_empty_string),
    cmocka_unit_test(test_keep_tail),
    cmocka_unit_test(test_plain_copy),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
