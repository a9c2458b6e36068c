/* builder/cache: the step cache store.
 *
 * Each test gets a fresh cache folder and a destination folder under
 * $TMPDIR.  Entries are made through the store's own writer; damage is done
 * to the files the way a disk, a killed writer or a user would. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/fsutil.h"
#include "builder/cache.h"
#include "vab/vab.h"

struct fixture {
  struct vab_ctx *ctx;
  char root[256];
  char dir[300];     /* the cache */
  char dest[300];    /* where gets put files */
  struct vab_cache *cache;
};

static const char key_a[] =
  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char key_b[] =
  "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
static const char key_c[] =
  "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  const char *tmp = getenv("TMPDIR");
  snprintf(f->root, sizeof f->root, "%s/vab-test-cache-XXXXXX",
           tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
  assert_non_null(mkdtemp(f->root));
  snprintf(f->dir, sizeof f->dir, "%s/cache", f->root);
  snprintf(f->dest, sizeof f->dest, "%s/dest", f->root);
  assert_int_equal(mkdir(f->dest, 0755), 0);
  f->ctx = vab_ctx_new();
  assert_int_equal(vab_cache_open(f->ctx, f->dir, true, &f->cache), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  vab_cache_close(f->cache);
  vab_ctx_free(f->ctx);
  remove_tree(f->root);
  free(f);
  return 0;
}

static void write_file(const char *path, const char *text) {
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  fputs(text, fp);
  assert_int_equal(fclose(fp), 0);
}

static char *read_text(const char *path) {
  static char text[4096];
  FILE *fp = fopen(path, "r");
  if (fp == NULL)
    return NULL;
  size_t n = fread(text, 1, sizeof text - 1, fp);
  text[n] = '\0';
  fclose(fp);
  return text;
}

/* An entry of key with one file, "data", holding text. */
static void put(struct fixture *f, const char *key, const char *text) {
  struct vab_cache_lock lock;
  assert_int_equal(vab_cache_lock(f->cache, key, NULL, &lock), 0);
  struct vab_cache_writer *w = NULL;
  assert_int_equal(vab_cache_begin(f->cache, &lock, "provision",
                                   "provision 1/1: shell (t.yaml:5)", &w), 0);
  char *path = NULL;
  assert_int_equal(vab_cache_writer_path(w, "data", &path), 0);
  write_file(path, text);
  free(path);
  assert_int_equal(vab_cache_writer_add(w, "data"), 0);
  assert_int_equal(vab_cache_commit(w), 0);
  vab_cache_unlock(&lock);
}

/* vab_cache_get of key into dest: 1 hit, 0 miss. */
static int get(struct fixture *f, const char *key,
               struct vab_cache_meta *meta) {
  struct vab_cache_lock lock;
  assert_int_equal(vab_cache_lock(f->cache, key, NULL, &lock), 0);
  int r = vab_cache_get(f->cache, &lock, f->dest, meta);
  vab_cache_unlock(&lock);
  return r;
}

static char *entry_file(struct fixture *f, const char *key, const char *name) {
  static char path[512];
  snprintf(path, sizeof path, "%s/steps/%s/%s", f->dir, key, name);
  return path;
}

static bool has_warning(struct vab_ctx *ctx, const char *needle) {
  for (size_t i = 0; i < vab_diag_count(ctx); i++) {
    const struct vab_diag *d = vab_diag_get(ctx, i);
    if (d->severity == VAB_SEV_WARNING && strstr(d->message, needle) != NULL)
      return true;
  }
  return false;
}

static bool exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

static void set_last_use(struct fixture *f, const char *key, time_t t) {
  struct timespec times[2] = {{t, 0}, {t, 0}};
  assert_int_equal(utimensat(AT_FDCWD, entry_file(f, key, "meta"), times, 0),
                   0);
}

static void test_put_get(void **state) {
  struct fixture *f = *state;
  struct vab_cache_meta meta;
  assert_int_equal(get(f, key_a, &meta), 0);   /* empty: a miss */
  put(f, key_a, "hello\n");
  set_last_use(f, key_a, 1000);
  assert_int_equal(get(f, key_a, &meta), 1);
  assert_string_equal(meta.key, key_a);
  assert_string_equal(meta.kind, "provision");
  assert_string_equal(meta.label, "provision 1/1: shell (t.yaml:5)");
  assert_int_equal(meta.n_files, 1);
  assert_int_equal(meta.files[0].size, 6);
  /* sha256("hello\n"), as sha256sum says */
  assert_string_equal(meta.files[0].sha256,
      "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
  char path[512];
  snprintf(path, sizeof path, "%s/data", f->dest);
  assert_string_equal(read_text(path), "hello\n");
  /* A hit marks the last use. */
  struct stat st;
  assert_int_equal(stat(entry_file(f, key_a, "meta"), &st), 0);
  assert_true(st.st_mtime > time(NULL) - 60);
  assert_int_equal(vab_error_count(f->ctx), 0);
  assert_int_equal(vab_diag_count(f->ctx), 0);
}

/* One byte changed, same size: the digest catches it. */
static void test_corrupt_is_discarded(void **state) {
  struct fixture *f = *state;
  put(f, key_a, "hello\n");
  write_file(entry_file(f, key_a, "data"), "jello\n");
  struct vab_cache_meta meta;
  assert_int_equal(get(f, key_a, &meta), 0);
  assert_true(has_warning(f->ctx, "sha256"));
  assert_true(has_warning(f->ctx, key_a));
  assert_int_equal(vab_error_count(f->ctx), 0);
  assert_false(exists(entry_file(f, key_a, "")));
  char path[512];
  snprintf(path, sizeof path, "%s/data", f->dest);
  assert_false(exists(path));   /* nothing left for the caller */
  /* Rebuilt, it is a hit again. */
  put(f, key_a, "hello\n");
  assert_int_equal(get(f, key_a, &meta), 1);
}

static void test_truncated_is_discarded(void **state) {
  struct fixture *f = *state;
  put(f, key_a, "hello world\n");
  assert_int_equal(truncate(entry_file(f, key_a, "data"), 5), 0);
  struct vab_cache_meta meta;
  assert_int_equal(get(f, key_a, &meta), 0);
  assert_true(has_warning(f->ctx, "5 bytes, 12 recorded"));
  assert_false(exists(entry_file(f, key_a, "")));
}

static void test_bad_meta_is_discarded(void **state) {
  struct fixture *f = *state;
  put(f, key_a, "x");
  write_file(entry_file(f, key_a, "meta"), "vab-cache 1\nkey zz\n");
  struct vab_cache_meta meta;
  assert_int_equal(get(f, key_a, &meta), 0);
  assert_true(has_warning(f->ctx, "meta is corrupt"));
  assert_false(exists(entry_file(f, key_a, "")));
  /* A missing file. */
  put(f, key_b, "y");
  assert_int_equal(unlink(entry_file(f, key_b, "data")), 0);
  assert_int_equal(get(f, key_b, &meta), 0);
  assert_true(has_warning(f->ctx, "data is missing"));
}

/* A SIGKILLed writer leaves its .tmp- folder: no reader uses it, and the
 * next holder of the key's lock removes it. */
static void test_stale_temp(void **state) {
  struct fixture *f = *state;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct vab_ctx *ctx = vab_ctx_new();
    struct vab_cache *c = NULL;
    struct vab_cache_lock lock;
    struct vab_cache_writer *w = NULL;
    char *path = NULL;
    if (vab_cache_open(ctx, f->dir, true, &c) < 0 ||
        vab_cache_lock(c, key_a, NULL, &lock) < 0 ||
        vab_cache_begin(c, &lock, "source", "killed", &w) < 0 ||
        vab_cache_writer_path(w, "data", &path) < 0)
      _exit(1);
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    if (fd < 0 || write(fd, "half", 4) != 4)
      _exit(1);
    raise(SIGKILL);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));
  char steps[400];
  snprintf(steps, sizeof steps, "%s/steps", f->dir);
  int temps = 0;
  DIR *d = opendir(steps);
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    temps += strncmp(e->d_name, ".tmp-", 5) == 0;
  closedir(d);
  assert_int_equal(temps, 1);
  struct vab_cache_meta meta;
  assert_int_equal(get(f, key_a, &meta), 0);   /* a miss, not the half */
  d = opendir(steps);
  temps = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    temps += strncmp(e->d_name, ".tmp-", 5) == 0;
  closedir(d);
  assert_int_equal(temps, 0);
  assert_int_equal(vab_diag_count(f->ctx), 0);
}

/* Stale temps of many keys (more than any fixed batch): one prune removes
 * every one whose lock is free. */
static void test_many_stale_temps(void **state) {
  struct fixture *f = *state;
  put(f, key_a, "x");   /* makes CACHE/steps */
  char steps[400];
  snprintf(steps, sizeof steps, "%s/steps", f->dir);
  for (int i = 0; i < 100; i++) {
    char path[600];
    snprintf(path, sizeof path, "%s/.tmp-%064x-abc%03d", steps, i, i);
    assert_int_equal(mkdir(path, 0700), 0);
  }
  struct vab_cache *c = NULL;
  assert_int_equal(vab_cache_open(f->ctx, f->dir, false, &c), 0);
  struct vab_cache_prune_opts opts = {.max_size = UINT64_MAX,
                                      .older_than = -1};
  struct vab_cache_prune_result res;
  assert_int_equal(vab_cache_prune(c, &opts, &res), 0);
  vab_cache_close(c);
  int temps = 0;
  DIR *d = opendir(steps);
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    temps += strncmp(e->d_name, ".tmp-", 5) == 0;
  closedir(d);
  assert_int_equal(temps, 0);
}

static void count_lines(void *opaque, enum vab_log_level level,
                        const char *line) {
  (void)level;
  if (strcmp(line, "waiting for the other") == 0)
    (*(int *)opaque)++;
}

/* Two processes want key_a: the child takes the lock and builds slowly;
 * the parent waits for it and then hits the child's entry. */
static void test_concurrent_same_key(void **state) {
  struct fixture *f = *state;
  int ready[2];
  assert_int_equal(pipe(ready), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(ready[0]);
    struct vab_ctx *ctx = vab_ctx_new();
    struct vab_cache *c = NULL;
    struct vab_cache_lock lock;
    struct vab_cache_writer *w = NULL;
    char *path = NULL;
    if (vab_cache_open(ctx, f->dir, true, &c) < 0 ||
        vab_cache_lock(c, key_a, NULL, &lock) < 0)
      _exit(1);
    if (write(ready[1], "x", 1) != 1)
      _exit(1);
    struct timespec ts = {0, 500 * 1000 * 1000};
    nanosleep(&ts, NULL);
    if (vab_cache_begin(c, &lock, "source", "child", &w) < 0 ||
        vab_cache_writer_path(w, "data", &path) < 0)
      _exit(1);
    FILE *fp = fopen(path, "w");
    if (fp == NULL || fputs("built by the child\n", fp) < 0 || fclose(fp) != 0)
      _exit(1);
    if (vab_cache_writer_add(w, "data") < 0 || vab_cache_commit(w) < 0)
      _exit(1);
    vab_cache_unlock(&lock);
    _exit(0);
  }
  close(ready[1]);
  char c;
  assert_int_equal(read(ready[0], &c, 1), 1);
  close(ready[0]);
  struct vab_cache_lock lock;
  int waited = 0;
  vab_ctx_set_log(f->ctx, count_lines, &waited);
  time_t before = time(NULL);
  assert_int_equal(vab_cache_lock(f->cache, key_a, "waiting for the other",
                                  &lock), 0);
  vab_ctx_set_log(f->ctx, NULL, NULL);
  assert_int_equal(waited, 1);
  /* The lock came only once the child had committed. */
  struct vab_cache_meta meta;
  assert_int_equal(vab_cache_get(f->cache, &lock, f->dest, &meta), 1);
  vab_cache_unlock(&lock);
  assert_true(time(NULL) - before <= 10);
  assert_string_equal(meta.label, "child");
  char path[512];
  snprintf(path, sizeof path, "%s/data", f->dest);
  assert_string_equal(read_text(path), "built by the child\n");
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_lru_eviction_by_size(void **state) {
  struct fixture *f = *state;
  char big[1001];
  memset(big, 'z', 1000);
  big[1000] = '\0';
  put(f, key_a, big);
  put(f, key_b, big);
  put(f, key_c, big);
  /* b used longest ago, then a, then c. */
  set_last_use(f, key_b, 1000);
  set_last_use(f, key_a, 2000);
  set_last_use(f, key_c, 3000);
  struct vab_cache_info *list = NULL;
  size_t n = 0;
  assert_int_equal(vab_cache_list(f->cache, &list, &n), 0);
  assert_int_equal(n, 3);
  assert_string_equal(list[0].meta.key, key_b);
  assert_true(list[0].ok);
  uint64_t one = list[0].size;
  assert_true(one > 1000);
  free(list);
  /* Room for two entries: b goes. */
  struct vab_cache_prune_opts opts = {.max_size = 2 * one + 10,
                                      .older_than = -1};
  struct vab_cache_prune_result res;
  assert_int_equal(vab_cache_prune(f->cache, &opts, &res), 0);
  assert_int_equal(res.removed, 1);
  assert_int_equal(res.kept, 2);
  assert_int_equal(res.freed, one);
  assert_false(exists(entry_file(f, key_b, "")));
  assert_true(exists(entry_file(f, key_a, "meta")));
  /* Held by a build: kept even over the limit. */
  struct vab_cache_lock lock;
  assert_int_equal(vab_cache_lock(f->cache, key_a, NULL, &lock), 0);
  opts.max_size = 0;
  assert_int_equal(vab_cache_prune(f->cache, &opts, &res), 0);
  assert_int_equal(res.removed, 1);   /* c */
  assert_int_equal(res.busy, 1);      /* a */
  vab_cache_unlock(&lock);
  assert_true(exists(entry_file(f, key_a, "meta")));
  assert_false(exists(entry_file(f, key_c, "")));
}

static void test_age_pruning(void **state) {
  struct fixture *f = *state;
  put(f, key_a, "old");
  put(f, key_b, "new");
  set_last_use(f, key_a, time(NULL) - 40 * 86400);
  set_last_use(f, key_b, time(NULL) - 3600);
  struct vab_cache_prune_opts opts = {.max_size = UINT64_MAX,
                                      .older_than = 30 * 86400};
  struct vab_cache_prune_result res;
  assert_int_equal(vab_cache_prune(f->cache, &opts, &res), 0);
  assert_int_equal(res.removed, 1);
  assert_false(exists(entry_file(f, key_a, "")));
  assert_true(exists(entry_file(f, key_b, "meta")));
  /* clear: everything, locks too, and odd names stay. */
  char odd[400];
  snprintf(odd, sizeof odd, "%s/steps/not-an-entry", f->dir);
  write_file(odd, "mine");
  opts = (struct vab_cache_prune_opts){.max_size = UINT64_MAX,
                                       .older_than = -1, .all = true};
  assert_int_equal(vab_cache_prune(f->cache, &opts, &res), 0);
  assert_int_equal(res.removed, 1);
  assert_int_equal(res.kept, 0);
  assert_false(exists(entry_file(f, key_b, "")));
  assert_true(exists(odd));
}

/* --no-cache: a commit replaces the key's entry. */
static void test_refresh_replaces(void **state) {
  struct fixture *f = *state;
  put(f, key_a, "first\n");
  put(f, key_a, "second\n");
  struct vab_cache_meta meta;
  assert_int_equal(get(f, key_a, &meta), 1);
  char path[512];
  snprintf(path, sizeof path, "%s/data", f->dest);
  assert_string_equal(read_text(path), "second\n");
}

/* tmpl with @K as key_a and @S as sha. */
static void expand(char *out, size_t len, const char *tmpl, const char *sha) {
  size_t n = 0;
  for (const char *p = tmpl; *p != '\0' && n + 65 < len; p++) {
    if (p[0] == '@' && (p[1] == 'K' || p[1] == 'S')) {
      memcpy(out + n, p[1] == 'K' ? key_a : sha, 64);
      n += 64;
      p++;
    } else {
      out[n++] = *p;
    }
  }
  out[n] = '\0';
}

static void test_meta_parse(void **state) {
  (void)state;
  struct vab_cache_meta m;
  char err[128];
  char sha[65];
  memset(sha, '0', 64);
  sha[64] = '\0';
  char good[512];
  snprintf(good, sizeof good,
           "vab-cache 1\nkey %s\nkind source\nlabel source: bootstrap "
           "(w.yaml:3)\ncreated 1700000000\nfile 10 %s rootfs.tar\n"
           "file 0 %s b\n", key_a, sha, sha);
  assert_int_equal(vab_cache_meta_parse(good, strlen(good), &m, err,
                                        sizeof err), 0);
  assert_int_equal(m.n_files, 2);
  assert_int_equal(m.created, 1700000000);
  assert_string_equal(m.files[0].name, "rootfs.tar");
  struct buf out = BUF_INIT;
  assert_int_equal(vab_cache_meta_format(&m, &out), 0);
  assert_string_equal(out.data, good);   /* a round trip */
  buf_release(&out);
  static const char *const bad[] = {
    "",
    "vab-cache 2\n",
    "vab-cache 1\nkey AAAA\n",
    "vab-cache 1\nkey @K\nkind nope\nlabel x\ncreated 1\nfile 1 @S a\n",
    "vab-cache 1\nkey @K\nkind source\nlabel x\ncreated -1\nfile 1 @S a\n",
    "vab-cache 1\nkey @K\nkind source\nlabel x\ncreated 1\n",
    "vab-cache 1\nkey @K\nkind source\nlabel x\ncreated 1\nfile 1 @S ../a\n",
    "vab-cache 1\nkey @K\nkind source\nlabel x\ncreated 1\nfile 1 @S meta\n",
    "vab-cache 1\nkey @K\nkind source\nlabel x\ncreated 1\nfile 1 @S a\n"
    "file 1 @S a\n",
    "vab-cache 1\nkey @K\nkind source\nlabel x\ncreated 1\nfile 1 @S a",
    "vab-cache 1\nkey @K\nkind source\nlabel x\ncreated 1\nfile 01 @S a\n",
    "vab-cache 1\nkey @K\nkind source\nlabel x\ncreated 1\nfile "
    "99999999999999999999 @S a\n",
    "vab-cache 1\nkind source\nkey @K\nlabel x\ncreated 1\nfile 1 @S a\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char text[512];
    expand(text, sizeof text, bad[i], sha);
    err[0] = '\0';
    assert_int_equal(vab_cache_meta_parse(text, strlen(text), &m, err,
                                          sizeof err), -1);
    assert_true(err[0] != '\0');
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_put_get, setup, teardown),
    cmocka_unit_test_setup_teardown(test_corrupt_is_discarded, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_truncated_is_discarded, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_bad_meta_is_discarded, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_stale_temp, setup, teardown),
    cmocka_unit_test_setup_teardown(test_many_stale_temps, setup, teardown),
    cmocka_unit_test_setup_teardown(test_concurrent_same_key, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_lru_eviction_by_size, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_age_pruning, setup, teardown),
    cmocka_unit_test_setup_teardown(test_refresh_replaces, setup, teardown),
    cmocka_unit_test(test_meta_parse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
