/* common/subprocess: capture, exit status, timeout kills the group, a
 * killed child's grace period, and a child that gets descriptors 0, 1 and
 * 2 only. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
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

/* The descriptors the child shell has, one per line ("0|1|2|"): ls is
 * its child, so the listing holds no descriptor of its own. */
static void child_fds(const struct subprocess_opts *opts, struct lines *l) {
  char *argv[] = {"sh", "-c", "ls /proc/$$/fd", NULL};
  struct subprocess p;
  assert_int_equal(subprocess_start(&p, argv, opts), 0);
  int status = 0;
  assert_int_equal(subprocess_wait(&p, collect, l, NULL, NULL, 10000, &status),
                   0);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_clean_descriptor_table(void **state) {
  (void)state;
  /* What a CI runner or `time -o` leaves open: fds 3 and up, none of them
   * close-on-exec, past 10 where dash's redirections stop working. */
  int extra[12];
  size_t n = 0;
  int null_fd = open("/dev/null", O_RDONLY);
  assert_true(null_fd >= 0);
  for (int fd = 3; fd <= 12; fd++)
    if (fcntl(fd, F_GETFD) < 0 && dup2(null_fd, fd) == fd)
      extra[n++] = fd;
  int leak[2];
  assert_int_equal(pipe(leak), 0);
  assert_true(fcntl(12, F_GETFD) >= 0);

  struct lines l = {{0}, 0};
  child_fds(NULL, &l);
  assert_string_equal(l.text, "0|1|2|");

  /* A pipe meant for the child arrives as its stdin, and nothing else. */
  int in[2];
  assert_int_equal(pipe(in), 0);
  struct subprocess_opts opts = SUBPROCESS_OPTS_INIT;
  opts.stdin_fd = in[0];
  struct lines l2 = {{0}, 0};
  child_fds(&opts, &l2);
  assert_string_equal(l2.text, "0|1|2|");
  char *argv[] = {"sh", "-c", "readlink /proc/$$/fd/0", NULL};
  struct subprocess p;
  assert_int_equal(subprocess_start(&p, argv, &opts), 0);
  struct lines l3 = {{0}, 0};
  int status = 0;
  assert_int_equal(subprocess_wait(&p, collect, &l3, NULL, NULL, 10000,
                                   &status), 0);
  assert_int_equal(strncmp(l3.text, "pipe:", 5), 0);

  close(in[0]);
  close(in[1]);
  close(leak[0]);
  close(leak[1]);
  for (size_t i = 0; i < n; i++)
    close(extra[i]);
  close(null_fd);
}

/* A child that shuts down cleanly on SIGTERM gets its grace period even
 * when it writes while doing so (1 MB: more than a pipe holds): its output
 * is drained, not cut off by a closed pipe (SIGPIPE). */
static void test_kill_grace_drains_output(void **state) {
  (void)state;
  char mark[] = "/tmp/vab-test-kill-XXXXXX";
  int fd = mkstemp(mark);
  assert_true(fd >= 0);
  close(fd);
  unlink(mark);
  char script[512];
  snprintf(script, sizeof script,
           "trap 'head -c 1000000 /dev/zero || exit 3; echo clean >%s; exit 0' "
           "TERM; "
           "echo ready; while :; do sleep 0.1; done", mark);
  char *argv[] = {"sh", "-c", script, NULL};
  struct subprocess p;
  assert_int_equal(subprocess_start(&p, argv, NULL), 0);
  char ready[6] = "";
  size_t got = 0;
  while (got < 6) {   /* the trap is set once "ready" is written */
    ssize_t n = read(p.output_fd, ready + got, 6 - got);
    assert_true(n > 0);
    got += (size_t)n;
  }
  assert_memory_equal(ready, "ready\n", 6);
  subprocess_kill(&p);
  assert_int_equal(p.pid, 0);
  assert_int_equal(p.output_fd, -1);
  FILE *f = fopen(mark, "r");
  assert_non_null(f);
  char text[16] = "";
  assert_non_null(fgets(text, sizeof text, f));
  fclose(f);
  unlink(mark);
  assert_string_equal(text, "clean\n");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_capture_and_status),
    cmocka_unit_test(test_timeout_kills_children),
    cmocka_unit_test(test_cancel),
    cmocka_unit_test(test_kill_grace_drains_output),
    cmocka_unit_test(test_missing_program),
    cmocka_unit_test(test_clean_descriptor_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
