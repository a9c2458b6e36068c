/* common/io: whole transfers across short reads and writes, EINTR, end of
 * file and errors. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/io.h"

static void pause_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

/* A child writes data in small pieces with pauses: the reader sees short
 * reads. */
static pid_t trickle(int fd, const uint8_t *data, size_t len, size_t piece,
                     long pause) {
  pid_t pid = fork();
  if (pid == 0) {
    for (size_t at = 0; at < len; at += piece) {
      size_t n = len - at < piece ? len - at : piece;
      if (write(fd, data + at, n) != (ssize_t)n)
        _exit(1);
      pause_ms(pause);
    }
    _exit(0);
  }
  return pid;
}

static void reap(pid_t pid) {
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_read_full_short_reads(void **state) {
  (void)state;
  uint8_t data[1000], got[1200];
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (uint8_t)(i * 7);
  int p[2];
  assert_int_equal(pipe(p), 0);
  pid_t pid = trickle(p[1], data, sizeof data, 100, 2);
  close(p[1]);
  /* Asks for more than there is: gets it all, and the count says where the
   * pipe ended. */
  assert_int_equal(read_full(p[0], got, sizeof got), sizeof data);
  assert_memory_equal(got, data, sizeof data);
  assert_int_equal(read_full(p[0], got, sizeof got), 0);
  close(p[0]);
  reap(pid);
}

static void on_alarm(int sig) { (void)sig; }

static void test_read_full_retries_eintr(void **state) {
  (void)state;
  struct sigaction sa = {0}, old;
  sa.sa_handler = on_alarm;  /* no SA_RESTART: read() fails with EINTR */
  assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
  int p[2];
  assert_int_equal(pipe(p), 0);
  const uint8_t data[4] = {1, 2, 3, 4};
  pid_t pid = fork();
  if (pid == 0) {
    pause_ms(200);
    _exit(write(p[1], data, sizeof data) == sizeof data ? 0 : 1);
  }
  close(p[1]);
  struct itimerval t = {{0, 20000}, {0, 20000}};  /* every 20 ms */
  assert_int_equal(setitimer(ITIMER_REAL, &t, NULL), 0);
  uint8_t got[4] = {0};
  ssize_t n = read_full(p[0], got, sizeof got);
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  sigaction(SIGALRM, &old, NULL);
  assert_int_equal(n, sizeof data);
  assert_memory_equal(got, data, sizeof data);
  close(p[0]);
  reap(pid);
}

static void test_write_full_pipe(void **state) {
  (void)state;
  /* More than a pipe holds, so write() returns short while the child
   * drains it slowly. */
  size_t len = 1u << 20;
  uint8_t *data = malloc(len);
  assert_non_null(data);
  for (size_t i = 0; i < len; i++)
    data[i] = (uint8_t)(i ^ (i >> 8));
  int p[2];
  assert_int_equal(pipe(p), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(p[1]);
    uint8_t *back = malloc(len);
    size_t at = 0;
    while (back != NULL && at < len) {
      ssize_t n = read(p[0], back + at, len - at < 4096 ? len - at : 4096);
      if (n <= 0)
        _exit(1);
      at += (size_t)n;
    }
    _exit(back != NULL && memcmp(back, data, len) == 0 ? 0 : 1);
  }
  close(p[0]);
  assert_int_equal(write_full(p[1], data, len), 0);
  close(p[1]);
  reap(pid);
  free(data);
}

static void test_positioned(void **state) {
  (void)state;
  char path[] = "/tmp/vab-test-io-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  unlink(path);
  const char text[] = "0123456789";
  assert_int_equal(pwrite_full(fd, text, 10, 5), 0);
  assert_int_equal(lseek(fd, 0, SEEK_CUR), 0);  /* offset untouched */
  char got[20];
  memset(got, 'x', sizeof got);
  /* Past the end: a short count, not an error. */
  assert_int_equal(pread_full(fd, got, sizeof got, 3), 12);
  assert_memory_equal(got, "\0\0" "0123456789", 12);
  assert_int_equal(pread_full(fd, got, 4, 100), 0);
  assert_int_equal(write_full(fd, "ab", 2), 0);
  assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
  assert_int_equal(read_full(fd, got, 3), 3);
  assert_memory_equal(got, "ab\0", 3);
  close(fd);
}

static void test_errors(void **state) {
  (void)state;
  char b[4] = {0};
  errno = 0;
  assert_int_equal(read_full(-1, b, sizeof b), -1);
  assert_int_equal(errno, EBADF);
  errno = 0;
  assert_int_equal(pwrite_full(-1, b, sizeof b, 0), -1);
  assert_int_equal(errno, EBADF);
  errno = 0;
  assert_int_equal(pread_full(0, b, sizeof b, UINT64_MAX), -1);
  assert_int_equal(errno, EINVAL);
  errno = 0;
  assert_int_equal(write_full(-1, b, sizeof b), -1);
  assert_int_equal(errno, EBADF);
  /* Nothing to do is success, even on a bad descriptor. */
  assert_int_equal(write_full(-1, b, 0), 0);
  assert_int_equal(read_full(-1, b, 0), 0);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_read_full_short_reads),
      cmocka_unit_test(test_read_full_retries_eintr),
      cmocka_unit_test(test_write_full_pipe),
      cmocka_unit_test(test_positioned),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
