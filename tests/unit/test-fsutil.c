/* common/fsutil commit_temp() and core's vab_commit_temp(): the temporary
 * becomes the file, and on every failure the descriptor is closed and no
 * temporary is left. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/fsutil.h"
#include "core/files.h"
#include "vab/error.h"

static char folder[64];
static char dst[128];

static int setup(void **state) {
  (void)state;
  snprintf(folder, sizeof folder, "/tmp/vab-test-fsutil-XXXXXX");
  if (mkdtemp(folder) == NULL)
    return -1;
  snprintf(dst, sizeof dst, "%s/out.img", folder);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  remove_tree(folder);
  return 0;
}

static bool fd_open(int fd) { return fcntl(fd, F_GETFD) >= 0; }

/* Only dst (or nothing) in the folder: no temporary left over. */
static size_t entries(void) {
  char cmd[160];
  snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", folder);
  FILE *p = popen(cmd, "r");
  size_t n = 99;
  if (p != NULL) {
    if (fscanf(p, "%zu", &n) != 1)
      n = 99;
    pclose(p);
  }
  return n;
}

static void test_commit(void **state) {
  (void)state;
  char *tmp = NULL;
  int fd = create_temp_beside(dst, &tmp);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "hello", 5), 5);
  struct stat st;
  enum temp_commit_step failed = 0;
  assert_int_equal(commit_temp(fd, tmp, dst, &st, &failed), 0);
  assert_false(fd_open(fd));
  assert_int_equal(st.st_size, 5);
  assert_int_equal(access(tmp, F_OK), -1);
  char back[8] = {0};
  FILE *f = fopen(dst, "r");
  assert_non_null(f);
  assert_int_equal(fread(back, 1, sizeof back, f), 5);
  fclose(f);
  assert_string_equal(back, "hello");
  assert_int_equal(entries(), 1);
  free(tmp);
}

static void test_rename_fails(void **state) {
  (void)state;
  /* A folder at dst that holds a file: rename() cannot replace it. */
  assert_int_equal(mkdir(dst, 0700), 0);
  char inner[160];
  snprintf(inner, sizeof inner, "%s/x", dst);
  FILE *f = fopen(inner, "w");
  assert_non_null(f);
  fclose(f);
  char *tmp = NULL;
  int fd = create_temp_beside(dst, &tmp);
  assert_true(fd >= 0);
  enum temp_commit_step failed = 0;
  errno = 0;
  assert_int_equal(commit_temp(fd, tmp, dst, NULL, &failed), -1);
  assert_int_equal(failed, TEMP_COMMIT_RENAME);
  assert_true(errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST);
  assert_false(fd_open(fd));
  assert_int_equal(access(tmp, F_OK), -1);
  assert_int_equal(entries(), 1);  /* only the folder */
  free(tmp);
  remove_tree(dst);
}

/* A temporary beside dst, and a pipe to commit in place of its descriptor:
 * fsync() of a pipe is EINVAL, so the first step fails. */
static char *temp_and_pipe(int p[2]) {
  char *tmp = NULL;
  int fd = create_temp_beside(dst, &tmp);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(pipe(p), 0);
  return tmp;
}

static void test_sync_fails(void **state) {
  (void)state;
  int p[2];
  char *tmp = temp_and_pipe(p);
  enum temp_commit_step failed = 0;
  errno = 0;
  assert_int_equal(commit_temp(p[1], tmp, dst, NULL, &failed), -1);
  assert_int_equal(failed, TEMP_COMMIT_SYNC);
  assert_int_equal(errno, EINVAL);
  assert_false(fd_open(p[1]));
  assert_int_equal(access(tmp, F_OK), -1);
  assert_int_equal(access(dst, F_OK), -1);
  assert_int_equal(entries(), 0);
  close(p[0]);
  free(tmp);
}

static void test_vab_commit_temp_message(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  assert_non_null(ctx);
  int p[2];
  char *tmp = temp_and_pipe(p);
  assert_int_equal(vab_commit_temp(ctx, p[1], tmp, dst, NULL), -1);
  const struct vab_diag *d = vab_last_error(ctx);
  assert_non_null(d);
  assert_int_equal(d->code, VAB_E_IO);
  assert_int_equal(d->sys_errno, EINVAL);
  char want[256];
  snprintf(want, sizeof want, "cannot sync '%s'", tmp);
  assert_string_equal(d->message, want);
  assert_int_equal(entries(), 0);
  close(p[0]);
  free(tmp);
  vab_ctx_free(ctx);
}

static void test_vab_commit_temp_size(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  assert_non_null(ctx);
  char *tmp = NULL;
  int fd = create_temp_beside(dst, &tmp);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "0123456789", 10), 10);
  uint64_t size = 0;
  assert_int_equal(vab_commit_temp(ctx, fd, tmp, dst, &size), 0);
  assert_int_equal(size, 10);
  assert_null(vab_last_error(ctx));
  assert_int_equal(entries(), 1);
  free(tmp);
  vab_ctx_free(ctx);
}

/* A regular file opens both ways; a FIFO never blocks and is refused both
 * ways; a symbolic link is followed by open_regular_file and refused by the
 * nofollow form, even when it points at a regular file. */
static void test_open_regular(void **state) {
  (void)state;
  char file[128], fifo[128], link_path[128];
  snprintf(file, sizeof file, "%s/file", folder);
  snprintf(fifo, sizeof fifo, "%s/fifo", folder);
  snprintf(link_path, sizeof link_path, "%s/link", folder);
  int fd = open(file, O_WRONLY | O_CREAT, 0600);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(mkfifo(fifo, 0600), 0);
  assert_int_equal(symlink(file, link_path), 0);

  struct stat st;
  bool not_regular = true;
  fd = open_regular_file_nofollow(file, &st, &not_regular);
  assert_true(fd >= 0);
  assert_false(not_regular);
  assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
  close(fd);

  fd = open_regular_file(link_path, &st, &not_regular);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(open_regular_file_nofollow(link_path, &st, &not_regular), -1);
  assert_true(not_regular);
  assert_int_equal(errno, ELOOP);

  assert_int_equal(open_regular_file(fifo, &st, &not_regular), -1);
  assert_true(not_regular);
  assert_int_equal(open_regular_file_nofollow(fifo, &st, &not_regular), -1);
  assert_true(not_regular);

  char missing[128];
  snprintf(missing, sizeof missing, "%s/missing", folder);
  assert_int_equal(open_regular_file_nofollow(missing, &st, &not_regular), -1);
  assert_false(not_regular);
  assert_int_equal(errno, ENOENT);
  unlink(file);
  unlink(fifo);
  unlink(link_path);
}

/* remove_tree stops at a mount point: what is mounted inside the tree
 * stays (root only; skipped elsewhere). */
static void test_remove_tree_stays_on_its_file_system(void **state) {
  (void)state;
  char tree[160], mnt[192], kept[224];
  snprintf(tree, sizeof tree, "%s/tree", folder);
  snprintf(mnt, sizeof mnt, "%s/mnt", tree);
  snprintf(kept, sizeof kept, "%s/kept", mnt);
  assert_int_equal(mkdir(tree, 0755), 0);
  assert_int_equal(mkdir(mnt, 0755), 0);
  if (mount("tmpfs", mnt, "tmpfs", 0, "size=1m") < 0) {
    remove_tree(tree);
    skip();
  }
  FILE *f = fopen(kept, "w");
  assert_non_null(f);
  fclose(f);
  remove_tree(tree);
  struct stat st;
  bool survived = stat(kept, &st) == 0;
  umount(mnt);
  remove_tree(tree);
  assert_true(survived);
  assert_int_equal(stat(tree, &st), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_commit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_open_regular, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rename_fails, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sync_fails, setup, teardown),
      cmocka_unit_test_setup_teardown(test_vab_commit_temp_message, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_vab_commit_temp_size, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_remove_tree_stays_on_its_file_system, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
