/* common/shell-quote: every value becomes one /bin/sh word that keeps its
 * bytes, checked against the text and against a real sh. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/buf.h"
#include "common/shell-quote.h"

static void expect_quoted(const char *value, const char *quoted) {
  struct buf b = BUF_INIT;
  assert_int_equal(shell_quote(&b, value), 0);
  assert_string_equal(b.data, quoted);
  assert_int_equal(b.len, strlen(quoted));
  buf_release(&b);
}

/* What sh makes of a script `printf %s QUOTED`: the value back, byte for
 * byte.  A script file, as the guest gets, since one argument of 1 MiB is
 * beyond what exec passes. */
static void expect_sh_roundtrip(const char *value) {
  struct buf cmd = BUF_INIT;
  assert_int_equal(buf_puts(&cmd, "printf %s "), 0);
  assert_int_equal(shell_quote(&cmd, value), 0);
  char path[] = "/tmp/test-shell-quote-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *script = fdopen(fd, "w");
  assert_non_null(script);
  assert_int_equal(fwrite(cmd.data, 1, cmd.len, script), cmd.len);
  assert_int_equal(fclose(script), 0);
  char run[64];
  snprintf(run, sizeof run, "sh %s", path);
  FILE *p = popen(run, "r");
  assert_non_null(p);
  struct buf out = BUF_INIT;
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, p)) > 0)
    assert_int_equal(buf_append(&out, chunk, n), 0);
  int status = pclose(p);
  unlink(path);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_int_equal(out.len, strlen(value));
  if (out.len > 0)
    assert_memory_equal(out.data, value, out.len);
  buf_release(&out);
  buf_release(&cmd);
}

static void test_empty(void **state) {
  (void)state;
  expect_quoted("", "''");
  expect_sh_roundtrip("");
}

static void test_plain(void **state) {
  (void)state;
  expect_quoted("nginx", "'nginx'");
  expect_quoted("-rf", "'-rf'");
}

static void test_quotes(void **state) {
  (void)state;
  expect_quoted("it's", "'it'\\''s'");
  expect_quoted("'", "''\\'''");
  expect_quoted("''", "''\\'''\\'''");
  expect_quoted("a'; rm -rf / #", "'a'\\''; rm -rf / #'");
  expect_sh_roundtrip("a'; rm -rf / #");
  expect_sh_roundtrip("'''");
  expect_sh_roundtrip("\"double\" \\back\\ $HOME `id` $(id) *");
}

static void test_newlines(void **state) {
  (void)state;
  expect_quoted("a\nb", "'a\nb'");
  expect_sh_roundtrip("line one\nline two\n\n");
  expect_sh_roundtrip("x'\n'y");
}

static void test_non_ascii(void **state) {
  (void)state;
  expect_quoted("caf\xc3\xa9 \xe2\x82\xac", "'caf\xc3\xa9 \xe2\x82\xac'");
  expect_sh_roundtrip("\xc3\xa9t\xc3\xa9 \xff\xfe\x01\x7f");
}

/* A value of 1 MiB, a quote every 1000 bytes: the length is exact. */
static void test_large(void **state) {
  (void)state;
  size_t len = 1u << 20;
  char *value = malloc(len + 1);
  assert_non_null(value);
  size_t quotes = 0;
  for (size_t i = 0; i < len; i++) {
    value[i] = i % 1000 == 999 ? '\'' : (char)('a' + i % 26);
    quotes += value[i] == '\'';
  }
  value[len] = '\0';
  struct buf b = BUF_INIT;
  assert_int_equal(shell_quote(&b, value), 0);
  assert_int_equal(b.len, len + 2 + 3 * quotes);
  assert_int_equal(b.data[0], '\'');
  assert_int_equal(b.data[b.len - 1], '\'');
  assert_memory_equal(b.data + 1, value, 999);
  assert_memory_equal(b.data + 1000, "'\\''", 4);
  buf_release(&b);
  expect_sh_roundtrip(value);
  free(value);
}

/* A buffer that cannot grow (its cap stands in for an allocation that
 * fails) makes the call fail, at every point of the quoting. */
static void test_cannot_grow(void **state) {
  (void)state;
  const char *value = "ab'cd";
  size_t full = strlen("'ab'\\''cd'");
  for (size_t cap = 1; cap < full; cap++) {
    struct buf b = BUF_INIT;
    b.cap = cap;
    errno = 0;
    assert_int_equal(shell_quote(&b, value), -1);
    assert_int_equal(errno, EFBIG);
    assert_true(b.len <= cap);
    buf_release(&b);
  }
  struct buf b = BUF_INIT;
  b.cap = full;
  assert_int_equal(shell_quote(&b, value), 0);
  assert_string_equal(b.data, "'ab'\\''cd'");
  buf_release(&b);
}

/* Appends after what the buffer holds. */
static void test_appends(void **state) {
  (void)state;
  struct buf b = BUF_INIT;
  assert_int_equal(buf_puts(&b, "chown -- "), 0);
  assert_int_equal(shell_quote(&b, "root:root"), 0);
  assert_int_equal(buf_putc(&b, ' '), 0);
  assert_int_equal(shell_quote(&b, "/srv/a b"), 0);
  assert_string_equal(b.data, "chown -- 'root:root' '/srv/a b'");
  buf_release(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_empty),      cmocka_unit_test(test_plain),
    cmocka_unit_test(test_quotes),     cmocka_unit_test(test_newlines),
    cmocka_unit_test(test_non_ascii),  cmocka_unit_test(test_large),
    cmocka_unit_test(test_cannot_grow), cmocka_unit_test(test_appends),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
