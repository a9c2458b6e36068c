/* builder/source: the bootstrap tarball as an entry of the step cache,
 * with a fake mmdebstrap first on PATH (a shell script that counts its
 * runs and writes a small tar), so that no mirror or root is needed:
 * a miss runs it and stores the entry, a hit does not run it, a corrupt
 * entry is a warning and is bootstrapped again, --no-cache runs it again,
 * two processes at once run it once, and a failed run leaves nothing. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/fsutil.h"
#include "builder/source.h"
#include "builder/vocab.h"
#include "vab/vab.h"

static const char fake_mmdebstrap[] =
  "#!/bin/sh\n"
  "echo run >>\"$FAKE_COUNT\"\n"
  "eval \"target=\\${$(($# - 1))}\"\n"
  "sleep \"${FAKE_SLEEP:-0}\"\n"
  "[ -z \"$FAKE_FAIL\" ] || { echo 'E: the mirror is gone'; exit 1; }\n"
  "mkdir -p \"$TMPDIR/root/etc\"\n"
  "echo ID=debian >\"$TMPDIR/root/etc/os-release\"\n"
  "tar -cf \"$target\" -C \"$TMPDIR/root\" .\n";

static const char template_text[] =
  "vab: 1\n"
  "name: t\n"
  "version: \"1\"\n"
  "source:\n"
  "  bootstrap: {suite: bookworm}\n"
  "disk: {size: 2G, firmware: bios}\n"
  "outputs:\n"
  "  - {format: raw}\n";

static const char plan_key[] =
  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct fixture {
  char root[256];
  char cache[300];
  char count[300];
  struct vab_ctx *ctx;
  struct vab_template *t;
  int work;             /* work folders made so far */
};

static void write_file(const char *path, const char *text, mode_t mode) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  assert_int_equal(fclose(f), 0);
  assert_int_equal(chmod(path, mode), 0);
}

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  const char *tmp = getenv("TMPDIR");
  snprintf(f->root, sizeof f->root, "%s/vab-test-source-cache-XXXXXX",
           tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
  assert_non_null(mkdtemp(f->root));
  char path[512];
  snprintf(path, sizeof path, "%s/bin", f->root);
  assert_int_equal(mkdir(path, 0755), 0);
  snprintf(path, sizeof path, "%s/bin/mmdebstrap", f->root);
  write_file(path, fake_mmdebstrap, 0755);
  char *old_path = getenv("PATH");
  char new_path[4096];
  snprintf(new_path, sizeof new_path, "%s/bin:%s", f->root,
           old_path != NULL ? old_path : "/usr/bin:/bin");
  setenv("PATH", new_path, 1);
  snprintf(f->count, sizeof f->count, "%s/count", f->root);
  setenv("FAKE_COUNT", f->count, 1);
  unsetenv("FAKE_SLEEP");
  unsetenv("FAKE_FAIL");
  snprintf(f->cache, sizeof f->cache, "%s/cache", f->root);
  snprintf(path, sizeof path, "%s/t.yaml", f->root);
  write_file(path, template_text, 0644);
  f->ctx = vab_ctx_new();
  struct vab_load_opts opts = {.vocab = vab_template_vocab()};
  assert_int_equal(vab_template_load(f->ctx, path, &opts, &f->t), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  vab_template_free(f->t);
  vab_ctx_free(f->ctx);
  remove_tree(f->root);
  free(f);
  return 0;
}

static int runs(struct fixture *f) {
  FILE *fp = fopen(f->count, "r");
  if (fp == NULL)
    return 0;
  int n = 0;
  for (int c; (c = fgetc(fp)) != EOF;)
    n += c == '\n';
  fclose(fp);
  return n;
}

static void decided(void *opaque, bool cached) {
  *(int *)opaque = cached ? 1 : 0;
}

/* vab_source_prepare in a new work folder; the tarball must hold the
 * fake's os-release when it succeeds.  Returns its result. */
static int prepare(struct fixture *f, bool refresh, bool *cached,
                   int *told) {
  char work[400];
  snprintf(work, sizeof work, "%s/work%d", f->root, f->work++);
  assert_int_equal(mkdir(work, 0700), 0);
  *told = -1;
  struct vab_source_opts opts = {
    .cache_dir = f->cache, .work_dir = work, .key = plan_key,
    .label = "source: bootstrap (t.yaml:5)", .refresh = refresh,
    .decided = decided, .opaque = told,
  };
  struct vab_source_result res;
  int r = vab_source_prepare(f->ctx, f->t, &opts, &res);
  if (r == 0) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "tar -xOf '%s' ./etc/os-release | grep -qx "
             "ID=debian", res.tarball);
    assert_int_equal(system(cmd), 0);
    assert_non_null(strstr(res.tarball, work));   /* its own copy */
    *cached = res.cached;
    vab_source_result_release(&res);
  }
  return r;
}

/* The path of the one entry's rootfs.tar, or "" when there is none, and
 * the count of .tmp- leftovers. */
static int entries(struct fixture *f, char *tar, size_t len, int *temps) {
  char steps[400];
  snprintf(steps, sizeof steps, "%s/steps", f->cache);
  DIR *d = opendir(steps);
  int n = 0;
  *temps = 0;
  tar[0] = '\0';
  if (d == NULL)
    return 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (strlen(e->d_name) == 64 && strchr(e->d_name, '.') == NULL) {
      snprintf(tar, len, "%s/%s/rootfs.tar", steps, e->d_name);
      n++;
    }
    *temps += strncmp(e->d_name, ".tmp-", 5) == 0;
  }
  closedir(d);
  return n;
}

static void test_miss_then_hit(void **state) {
  struct fixture *f = *state;
  bool cached = true;
  int told;
  assert_int_equal(prepare(f, false, &cached, &told), 0);
  assert_false(cached);
  assert_int_equal(told, 0);
  assert_int_equal(runs(f), 1);
  char tar[600];
  int temps;
  assert_int_equal(entries(f, tar, sizeof tar, &temps), 1);
  assert_int_equal(temps, 0);
  /* The entry is under the plan's key itself: what --json shows and what
   * a registry cache is asked for. */
  char expect[400];
  snprintf(expect, sizeof expect, "%s/steps/%s/rootfs.tar", f->cache,
           plan_key);
  assert_string_equal(tar, expect);
  assert_int_equal(prepare(f, false, &cached, &told), 0);
  assert_true(cached);
  assert_int_equal(told, 1);
  assert_int_equal(runs(f), 1);           /* not run again */
  assert_int_equal(vab_diag_count(f->ctx), 0);
}

static void test_corrupt_entry_rebuilt(void **state) {
  struct fixture *f = *state;
  bool cached;
  int told, temps;
  assert_int_equal(prepare(f, false, &cached, &told), 0);
  char tar[600];
  assert_int_equal(entries(f, tar, sizeof tar, &temps), 1);
  /* One byte flipped in place: the size still matches. */
  FILE *fp = fopen(tar, "r+");
  assert_non_null(fp);
  assert_int_equal(fseek(fp, 600, SEEK_SET), 0);
  int c = fgetc(fp);
  assert_int_equal(fseek(fp, 600, SEEK_SET), 0);
  fputc(c ^ 0x55, fp);
  assert_int_equal(fclose(fp), 0);
  assert_int_equal(prepare(f, false, &cached, &told), 0);
  assert_false(cached);
  assert_int_equal(runs(f), 2);
  assert_int_equal(vab_error_count(f->ctx), 0);
  assert_int_equal(vab_diag_count(f->ctx), 1);
  const struct vab_diag *d = vab_diag_get(f->ctx, 0);
  assert_int_equal(d->severity, VAB_SEV_WARNING);
  assert_non_null(strstr(d->message, "rootfs.tar has sha256"));
  assert_non_null(strstr(d->message, "source: bootstrap (t.yaml:5)"));
  /* And the new entry is sound. */
  assert_int_equal(prepare(f, false, &cached, &told), 0);
  assert_true(cached);
}

static void test_refresh(void **state) {
  struct fixture *f = *state;
  bool cached;
  int told, temps;
  assert_int_equal(prepare(f, false, &cached, &told), 0);
  assert_int_equal(prepare(f, true, &cached, &told), 0);
  assert_false(cached);
  assert_int_equal(told, 0);
  assert_int_equal(runs(f), 2);
  char tar[600];
  assert_int_equal(entries(f, tar, sizeof tar, &temps), 1);
  assert_int_equal(temps, 0);
}

static void test_failed_bootstrap_leaves_nothing(void **state) {
  struct fixture *f = *state;
  setenv("FAKE_FAIL", "1", 1);
  bool cached;
  int told, temps;
  assert_int_equal(prepare(f, false, &cached, &told), -1);
  unsetenv("FAKE_FAIL");
  const struct vab_diag *d = vab_last_error(f->ctx);
  assert_non_null(d);
  assert_non_null(strstr(d->message, "failed: mmdebstrap"));
  char tar[600];
  assert_int_equal(entries(f, tar, sizeof tar, &temps), 0);
  assert_int_equal(temps, 0);
  /* The next one bootstraps. */
  assert_int_equal(prepare(f, false, &cached, &told), 0);
  assert_false(cached);
}

/* Two processes, one source: one bootstraps, the other waits and hits. */
static void test_concurrent(void **state) {
  struct fixture *f = *state;
  setenv("FAKE_SLEEP", "1", 1);
  pid_t pids[2];
  for (int i = 0; i < 2; i++) {
    f->work = 100 + 10 * i;
    pids[i] = fork();
    assert_true(pids[i] >= 0);
    if (pids[i] == 0) {
      bool cached = false;
      int told;
      int r = prepare(f, false, &cached, &told);
      _exit(r < 0 ? 2 : cached ? 1 : 0);
    }
  }
  int hits = 0;
  for (int i = 0; i < 2; i++) {
    int status;
    assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
    assert_true(WIFEXITED(status));
    assert_true(WEXITSTATUS(status) <= 1);
    hits += WEXITSTATUS(status);
  }
  unsetenv("FAKE_SLEEP");
  assert_int_equal(hits, 1);
  assert_int_equal(runs(f), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_miss_then_hit, setup, teardown),
    cmocka_unit_test_setup_teardown(test_corrupt_entry_rebuilt, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_refresh, setup, teardown),
    cmocka_unit_test_setup_teardown(test_failed_bootstrap_leaves_nothing,
                                    setup, teardown),
    cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
