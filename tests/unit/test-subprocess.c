/* common/subprocess: capture, exit status, timeout kills the group. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "common/subprocess.h"

struct lines {
  char text[256];
  int n;
};

static void collect(void *opaque, const char *line) {
  struct lines *l = opaque;
  l->n++;
  strncat(l->text, line, sizeof l->text - strlen(l->text) - 2);
  strcat(l->text, "|");
}

static void test_capture_and_status(void **state) {
  (void)state;
  char *argv[] = {"sh", "-c", "echo one; echo two >&2; exit 3", NULL};
  struct subprocess p;
  assert_int_equal(subprocess_start(&p, argv, NULL), 0);
  struct lines l = {{0}, 0};
  int status = 0;
  assert_int_equal(subprocess_wait(&p, collect, &l, NULL, NULL, 10000, &status), 0);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 3);
  assert_int_equal(l.n, 2);
  assert_non_null(strstr(l.text, "one|"));
  assert_non_null(strstr(l.text, "two|"));
  char desc[64];
  subprocess_describe_status(status, desc, sizeof desc);
  assert_string_equal(desc, "exit status 3");
}

static void test_timeout_kills_children(void **state) {
  (void)state;
  /* The grandchild would keep the pipe open; killing the group ends it. */
  char *argv[] = {"sh", "-c", "sleep 30 & sleep 30", NULL};
  struct subprocess p;
  assert_int_equal(subprocess_start(&p, argv, NULL), 0);
  int status;
  errno = 0;
  assert_int_equal(subprocess_wait(&p, NULL, NULL, NULL, NULL, 300, &status), -1);
  assert_int_equal(errno, ETIMEDOUT);
  assert_int_equal(p.pid, 0);
}

static int always(void *opaque) { return 1; }

static void test_cancel(void **state) {
  (void)state;
  char *argv[] = {"sleep", "30", NULL};
  struct subprocess p;
  assert_int_equal(subprocess_start(&p, argv, NULL), 0);
  errno = 0;
  assert_int_equal(subprocess_wait(&p, NULL, NULL, always, NULL, 0, NULL), -1);
  assert_int_equal(errno, ECANCELED);
}

static void test_missing_program(void **state) {
  (void)state;
  assert_false(subprocess_have_program("vab-no-such-program"));
  assert_true(subprocess_have_program("sh"));
  char *argv[] = {"vab-no-such-program", NULL};
  struct subprocess p;
  assert_int_equal(subprocess_start(&p, argv, NULL), 0);
  int status;
  assert_int_equal(subprocess_wait(&p, NULL, NULL, NULL, NULL, 5000, &status), 0);
  assert_int_equal(WEXITSTATUS(status), 127);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_capture_and_status),
    cmocka_unit_test(test_timeout_kills_children),
    cmocka_unit_test(test_cancel),
    cmocka_unit_test(test_missing_program),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
