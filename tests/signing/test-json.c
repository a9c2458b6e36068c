/* common/json: the strict reader behind manifest verification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/json.h"

static struct json_value *parse(const char *text, char *err) {
  return json_parse(text, strlen(text), err, 128);
}

static void test_values(void **state) {
  (void)state;
  char err[128];
  struct json_value *v = parse(
      " {\"a\": [1, -2.5e3, true, false, null], \"s\": \"x\\u00e9\\ud83d\\ude00\\n\","
      " \"big\": 9007199254740993} ", err);
  assert_non_null(v);
  const struct json_value *a = json_get(v, "a");
  assert_int_equal(a->type, JSON_ARRAY);
  assert_int_equal(a->n, 5);
  assert_true(a->items[0]->is_integer);
  assert_int_equal(a->items[0]->integer, 1);
  assert_false(a->items[1]->is_integer);
  assert_true(a->items[1]->number == -2500.0);
  assert_true(a->items[2]->boolean);
  assert_int_equal(a->items[4]->type, JSON_NULL);
  assert_string_equal(json_get_string(v, "s"), "x\xc3\xa9\xf0\x9f\x98\x80\n");
  assert_int_equal(json_get(v, "big")->integer, 9007199254740993LL);
  assert_null(json_get(v, "missing"));
  json_free(v);
}

static void expect_error(const char *text, const char *message) {
  char err[128];
  struct json_value *v = parse(text, err);
  assert_null(v);
  assert_string_equal(err, message);
}

static void test_errors_say_where(void **state) {
  (void)state;
  expect_error("", "unexpected end of input at byte 0");
  expect_error("{\"a\":1,}", "expected a string at byte 7");
  expect_error("{\"a\":1 \"b\":2}", "expected ',' or '}' at byte 7");
  expect_error("[1,2", "unexpected end of input at byte 4");
  expect_error("{\"a\":1,\"a\":2}", "duplicate object key at byte 7");
  expect_error("\"\\u0000\"", "NUL character in string at byte 7");
  expect_error("\"\\ud800\"", "unpaired surrogate in \\u escape at byte 7");
  expect_error("\"\xff\"", "invalid UTF-8 in string at byte 1");
  expect_error("\"a\nb\"", "control character in string at byte 2");
  expect_error("01", "trailing data after the JSON value at byte 1");
  expect_error("1.", "bad number at byte 2");
  expect_error("{} x", "trailing data after the JSON value at byte 3");
  expect_error("nul", "unexpected character at byte 0");
}

static void test_depth_is_capped(void **state) {
  (void)state;
  char deep[200];
  memset(deep, '[', 100);
  memset(deep + 100, ']', 100);
  char err[128];
  assert_null(json_parse(deep, 200, err, sizeof err));
  assert_non_null(strstr(err, "nesting too deep"));
  struct json_value *ok = json_parse(deep + 50, 100, err, sizeof err);
  assert_non_null(ok);
  json_free(ok);
}

static void test_append_string_escapes(void **state) {
  (void)state;
  struct buf b = BUF_INIT;
  assert_int_equal(json_append_string(&b, "a\"b\\c\n\x01"), 0);
  assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\u0001\"");
  char err[128];
  struct json_value *v = json_parse(b.data, b.len, err, sizeof err);
  assert_non_null(v);
  assert_string_equal(v->string, "a\"b\\c\n\x01");
  json_free(v);
  buf_release(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_values),
    cmocka_unit_test(test_errors_say_where),
    cmocka_unit_test(test_depth_is_capped),
    cmocka_unit_test(test_append_string_escapes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
