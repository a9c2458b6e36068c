/* builder/plan: steps, labels and keys.
 *
 * Templates are written to a temporary project folder and loaded for real.
 * Keys must be stable for the same template, change from the changed step
 * onwards (never before it), follow the bytes of the files a step reads,
 * chain through parent keys, and match an independent SHA-256 (sha256sum)
 * of the documented record. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "builder/vocab.h"
#include "builder/plan.h"
#include "vab/vab.h"

/* Line numbers matter: labels point at them. */
static const char template_text[] =
    "vab: 1\n"                                          /* 1 */
    "name: web\n"                                       /* 2 */
    "version: \"1.0\"\n"                                /* 3 */
    "source:\n"                                         /* 4 */
    "  bootstrap: {suite: bookworm}\n"                  /* 5 */
    "disk: {size: 2G, firmware: bios}\n"                /* 6 */
    "provisioners:\n"                                   /* 7 */
    "  - type: file\n"                                  /* 8 */
    "    source: files/index.html\n"                    /* 9 */
    "    destination: /var/www/html/index.html\n"       /* 10 */
    "  - type: shell\n"                                 /* 11 */
    "    inline: [\"echo STEP2\"]\n"                    /* 12 */
    "  - type: hostname\n"                              /* 13 */
    "    hostname: web\n"                               /* 14 */
    "tests:\n"                                          /* 15 */
    "  - boot: {timeout: 60s, serial: \"login:\"}\n"    /* 16 */
    "outputs:\n"                                        /* 17 */
    "  - {format: qcow2}\n"                             /* 18 */
    "  - {format: raw}\n";                              /* 19 */

static void write_file(const char *dir, const char *name, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  assert_int_equal(fclose(f), 0);
}

/* A project folder holding web.yaml (text) and files/index.html. */
static void make_project(char *dir, size_t len, const char *text,
                         const char *index_html) {
  snprintf(dir, len, "/tmp/vab-test-plan-XXXXXX");
  assert_non_null(mkdtemp(dir));
  char files[512];
  snprintf(files, sizeof files, "%s/files", dir);
  assert_int_equal(mkdir(files, 0755), 0);
  write_file(dir, "web.yaml", text);
  write_file(dir, "files/index.html", index_html);
}

static void remove_project(const char *dir) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

struct loaded {
  struct vab_ctx *ctx;
  struct vab_template *t;
  struct vab_plan plan;
};

static void load_plan(struct loaded *l, const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/web.yaml", dir);
  l->ctx = vab_ctx_new();
  struct vab_load_opts opts = {.vocab = vab_template_vocab(), .use_environment = false};
  if (vab_template_load(l->ctx, path, &opts, &l->t) < 0) {
    for (size_t i = 0; i < vab_diag_count(l->ctx); i++)
      fprintf(stderr, "%s\n", vab_diag_get(l->ctx, i)->message);
    fail_msg("template did not load");
  }
  if (vab_plan_build(l->ctx, l->t, &l->plan) < 0)
    fail_msg("plan: %s", vab_last_error(l->ctx)->message);
}

static void unload(struct loaded *l) {
  vab_plan_release(&l->plan);
  vab_template_free(l->t);
  vab_ctx_free(l->ctx);
}

/* One project, planned twice; a second project built from texts. */
static void plan_text(struct loaded *l, char *dir, size_t len,
                      const char *text, const char *html) {
  make_project(dir, len, text, html);
  load_plan(l, dir);
}

static char *replace(const char *text, const char *from, const char *to) {
  const char *at = strstr(text, from);
  assert_non_null(at);
  size_t n = strlen(text) - strlen(from) + strlen(to) + 1;
  char *out = malloc(n);
  assert_non_null(out);
  snprintf(out, n, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
  return out;
}

static void test_steps_and_labels(void **state) {
  (void)state;
  char dir[64];
  struct loaded l;
  plan_text(&l, dir, sizeof dir, template_text, "<h1>hello</h1>\n");
  const struct vab_plan *p = &l.plan;
  assert_int_equal(p->n_steps, 9);
  static const char *const labels[] = {
      "source: bootstrap debian bookworm (web.yaml:5)",
      "layout (web.yaml:6)",
      "provision 1/3: file (web.yaml:8)",
      "provision 2/3: shell (web.yaml:11)",
      "provision 3/3: hostname (web.yaml:13)",
      "sysprep",
      "test 1/1: boot (web.yaml:16)",
      "export 1/2: qcow2 (web.yaml:18)",
      "export 2/2: raw (web.yaml:19)",
  };
  static const enum vab_plan_kind kinds[] = {
      VAB_PLAN_SOURCE, VAB_PLAN_LAYOUT, VAB_PLAN_PROVISION,
      VAB_PLAN_PROVISION, VAB_PLAN_PROVISION, VAB_PLAN_SYSPREP,
      VAB_PLAN_TEST, VAB_PLAN_EXPORT, VAB_PLAN_EXPORT,
  };
  for (size_t i = 0; i < p->n_steps; i++) {
    assert_int_equal(p->steps[i].kind, kinds[i]);
    /* Line numbers are what the loader marked; labels carry them. */
    if (strcmp(p->steps[i].label, labels[i]) != 0)
      fail_msg("step %zu: '%s', expected '%s'", i, p->steps[i].label,
               labels[i]);
    assert_int_equal(strlen(p->steps[i].key), 64);
    assert_int_equal(strspn(p->steps[i].key, "0123456789abcdef"), 64);
  }
  assert_non_null(p->steps[2].provision);
  assert_string_equal(p->steps[2].provision->type, "file");
  assert_non_null(p->steps[6].test);
  assert_non_null(p->steps[7].output);
  assert_string_equal(p->steps[8].output->format, "raw");
  assert_string_equal(vab_plan_kind_name(VAB_PLAN_PROVISION), "provision");
  unload(&l);
  remove_project(dir);
}

static void test_parent_chain(void **state) {
  (void)state;
  char dir[64];
  struct loaded l;
  plan_text(&l, dir, sizeof dir, template_text, "<h1>hello</h1>\n");
  const struct vab_plan *p = &l.plan;
  assert_string_equal(p->steps[0].parent_key, "");
  for (size_t i = 1; i <= 6; i++)
    assert_string_equal(p->steps[i].parent_key, p->steps[i - 1].key);
  /* Every export hangs off the tested disk, not off another export. */
  assert_string_equal(p->steps[7].parent_key, p->steps[6].key);
  assert_string_equal(p->steps[8].parent_key, p->steps[6].key);
  for (size_t i = 0; i < p->n_steps; i++)
    for (size_t j = i + 1; j < p->n_steps; j++)
      assert_string_not_equal(p->steps[i].key, p->steps[j].key);
  unload(&l);
  remove_project(dir);
}

/* Same template, same files, even in another folder: same keys. */
static void test_same_template_same_keys(void **state) {
  (void)state;
  char d1[64], d2[64];
  struct loaded a, b;
  plan_text(&a, d1, sizeof d1, template_text, "<h1>hello</h1>\n");
  plan_text(&b, d2, sizeof d2, template_text, "<h1>hello</h1>\n");
  assert_string_not_equal(d1, d2);
  assert_int_equal(a.plan.n_steps, b.plan.n_steps);
  for (size_t i = 0; i < a.plan.n_steps; i++)
    assert_string_equal(a.plan.steps[i].key, b.plan.steps[i].key);
  unload(&a);
  unload(&b);
  remove_project(d1);
  remove_project(d2);
}

/* Keys before index `first` are equal, from it on (but for exports, see
 * below) all differ. */
static void expect_changed_from(const struct vab_plan *a,
                                const struct vab_plan *b, size_t first,
                                size_t last) {
  assert_int_equal(a->n_steps, b->n_steps);
  for (size_t i = 0; i < a->n_steps; i++) {
    bool same = strcmp(a->steps[i].key, b->steps[i].key) == 0;
    if (i < first || i > last) {
      if (!same)
        fail_msg("step %zu (%s) changed", i, a->steps[i].label);
    } else if (same) {
      fail_msg("step %zu (%s) did not change", i, a->steps[i].label);
    }
  }
}

static void test_changed_provisioner(void **state) {
  (void)state;
  char d1[64], d2[64];
  struct loaded a, b;
  char *changed = replace(template_text, "echo STEP2", "echo STEP2b");
  plan_text(&a, d1, sizeof d1, template_text, "<h1>hello</h1>\n");
  plan_text(&b, d2, sizeof d2, changed, "<h1>hello</h1>\n");
  expect_changed_from(&a.plan, &b.plan, 3, 8);
  free(changed);
  unload(&a);
  unload(&b);
  remove_project(d1);
  remove_project(d2);
}

static void test_changed_input_bytes(void **state) {
  (void)state;
  char d1[64], d2[64];
  struct loaded a, b;
  plan_text(&a, d1, sizeof d1, template_text, "<h1>hello</h1>\n");
  plan_text(&b, d2, sizeof d2, template_text, "<h1>hellO</h1>\n");
  expect_changed_from(&a.plan, &b.plan, 2, 8);
  unload(&a);
  unload(&b);
  remove_project(d1);
  remove_project(d2);
}

static void test_changed_layout(void **state) {
  (void)state;
  char d1[64], d2[64];
  struct loaded a, b;
  char *changed = replace(template_text, "size: 2G", "size: 3G");
  plan_text(&a, d1, sizeof d1, template_text, "<h1>hello</h1>\n");
  plan_text(&b, d2, sizeof d2, changed, "<h1>hello</h1>\n");
  expect_changed_from(&a.plan, &b.plan, 1, 8);
  free(changed);
  unload(&a);
  unload(&b);
  remove_project(d1);
  remove_project(d2);
}

/* Changing one output changes that export's key only. */
static void test_changed_output(void **state) {
  (void)state;
  char d1[64], d2[64];
  struct loaded a, b;
  char *changed = replace(template_text, "{format: raw}",
                          "{format: raw, compression: zstd}");
  plan_text(&a, d1, sizeof d1, template_text, "<h1>hello</h1>\n");
  plan_text(&b, d2, sizeof d2, changed, "<h1>hello</h1>\n");
  expect_changed_from(&a.plan, &b.plan, 8, 8);
  free(changed);
  unload(&a);
  unload(&b);
  remove_project(d1);
  remove_project(d2);
}

/* The rootfs source hashes its tarball's bytes. */
static void test_rootfs_bytes(void **state) {
  (void)state;
  char *text = replace(template_text, "bootstrap: {suite: bookworm}",
                       "rootfs: {path: files/root.tar}");
  char d1[64], d2[64];
  make_project(d1, sizeof d1, text, "<h1>hello</h1>\n");
  make_project(d2, sizeof d2, text, "<h1>hello</h1>\n");
  char cmd[400];
  snprintf(cmd, sizeof cmd,
           "tar cf %s/files/root.tar -C %s files/index.html && "
           "tar cf %s/files/root.tar -C %s web.yaml",
           d1, d1, d2, d2);
  assert_int_equal(system(cmd), 0);
  struct loaded a, b;
  load_plan(&a, d1);
  load_plan(&b, d2);
  assert_string_equal(a.plan.steps[0].label,
                      "source: rootfs root.tar (web.yaml:5)");
  expect_changed_from(&a.plan, &b.plan, 0, 8);
  free(text);
  unload(&a);
  unload(&b);
  remove_project(d1);
  remove_project(d2);
}

/* The record behind a key, rebuilt here and hashed by sha256sum. */
static void frame(FILE *f, const void *data, size_t len) {
  for (int i = 0; i < 8; i++)
    fputc((int)(((uint64_t)len >> (8 * i)) & 0xff), f);
  fwrite(data, 1, len, f);
}

static void frame_str(FILE *f, const char *s) { frame(f, s, strlen(s)); }

static void sha256sum(const char *path, char out[65]) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  assert_int_equal(fscanf(p, "%64s", out), 1);
  pclose(p);
}

static void test_key_matches_sha256sum(void **state) {
  (void)state;
  unsetenv("SOURCE_DATE_EPOCH");   /* the record below has it empty */
  char dir[64];
  struct loaded l;
  const char *html = "<h1>hello</h1>\n";
  plan_text(&l, dir, sizeof dir, template_text, html);
  const struct vab_plan_step *s = &l.plan.steps[2];   /* the file step */
  char *yaml = vab_node_to_yaml(l.ctx, s->provision->spec);
  assert_non_null(yaml);
  assert_non_null(strstr(yaml, "source: files/index.html"));

  char record[128];
  snprintf(record, sizeof record, "%s/record", dir);
  FILE *f = fopen(record, "wb");
  assert_non_null(f);
  frame_str(f, "vab-plan-1");
  frame_str(f, l.plan.steps[1].key);
  frame_str(f, "provision");
  frame_str(f, yaml);
  frame_str(f, "files/index.html");
  frame_str(f, html);
  assert_int_equal(fclose(f), 0);
  char expected[65];
  sha256sum(record, expected);
  assert_string_equal(s->key, expected);

  /* And the layout step: its spec and SOURCE_DATE_EPOCH (unset here). */
  const struct vab_node *disk = vab_node_get(l.t->root, "disk");
  char *disk_yaml = vab_node_to_yaml(l.ctx, disk);
  f = fopen(record, "wb");
  frame_str(f, "vab-plan-1");
  frame_str(f, l.plan.steps[0].key);
  frame_str(f, "layout");
  frame_str(f, disk_yaml);
  frame_str(f, "");
  assert_int_equal(fclose(f), 0);
  sha256sum(record, expected);
  assert_string_equal(l.plan.steps[1].key, expected);
  free(yaml);
  free(disk_yaml);
  char source_key[65], layout_key[65];
  memcpy(source_key, l.plan.steps[0].key, 65);
  memcpy(layout_key, l.plan.steps[1].key, 65);
  unload(&l);
  remove_project(dir);

  /* SOURCE_DATE_EPOCH changes the layout's key (and so every later one),
   * never the source's: the bootstrap stays shared. */
  setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
  plan_text(&l, dir, sizeof dir, template_text, html);
  unsetenv("SOURCE_DATE_EPOCH");
  assert_string_equal(l.plan.steps[0].key, source_key);
  assert_string_not_equal(l.plan.steps[1].key, layout_key);
  unload(&l);
  remove_project(dir);
}

/* An input that vanished between load and plan is an error naming it. */
static void test_missing_input(void **state) {
  (void)state;
  char dir[64];
  make_project(dir, sizeof dir, template_text, "x");
  char path[512];
  snprintf(path, sizeof path, "%s/web.yaml", dir);
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_load_opts opts = {.vocab = vab_template_vocab(), .use_environment = false};
  struct vab_template *t = NULL;
  assert_int_equal(vab_template_load(ctx, path, &opts, &t), 0);
  char input[512];
  snprintf(input, sizeof input, "%s/files/index.html", dir);
  assert_int_equal(unlink(input), 0);
  struct vab_plan plan;
  assert_int_equal(vab_plan_build(ctx, t, &plan), -1);
  assert_null(plan.steps);
  const struct vab_diag *d = vab_last_error(ctx);
  assert_int_equal(d->code, VAB_E_IO);
  assert_int_equal(d->sys_errno, ENOENT);
  char expected[600];
  snprintf(expected, sizeof expected, "cannot open '%s'", input);
  assert_string_equal(d->message, expected);
  vab_template_free(t);
  vab_ctx_free(ctx);
  remove_project(dir);
}

/* Where a step runs and its timeout are part of its key (issue 13); an
 * explicit `booted: false` is the offline step's key. */
static void test_booted_and_timeout_in_key(void **state) {
  (void)state;
  static const char *const variants[][2] = {
    {"    inline: [\"echo STEP2\"]\n",
     "    inline: [\"echo STEP2\"]\n    booted: true\n"},
    {"    inline: [\"echo STEP2\"]\n",
     "    inline: [\"echo STEP2\"]\n    booted: true\n    timeout: 5m\n"},
  };
  char d0[64];
  struct loaded base;
  plan_text(&base, d0, sizeof d0, template_text, "<h1>hello</h1>\n");
  for (size_t v = 0; v < 2; v++) {
    char d1[64];
    struct loaded b;
    char *changed = replace(template_text, variants[v][0], variants[v][1]);
    plan_text(&b, d1, sizeof d1, changed, "<h1>hello</h1>\n");
    expect_changed_from(&base.plan, &b.plan, 3, 8);
    free(changed);
    unload(&b);
    remove_project(d1);
  }
  /* booted: true with and without the default timeout spelled out. */
  char d1[64], d2[64];
  struct loaded a, b;
  char *one = replace(template_text, variants[0][0], variants[0][1]);
  char *two = replace(template_text, variants[0][0],
                      "    inline: [\"echo STEP2\"]\n    booted: true\n"
                      "    timeout: 30m\n");
  plan_text(&a, d1, sizeof d1, one, "<h1>hello</h1>\n");
  plan_text(&b, d2, sizeof d2, two, "<h1>hello</h1>\n");
  expect_changed_from(&a.plan, &b.plan, 99, 99);
  free(one);
  free(two);
  unload(&a);
  unload(&b);
  remove_project(d1);
  remove_project(d2);
  char d3[64];
  struct loaded c;
  char *off = replace(template_text, variants[0][0],
                      "    inline: [\"echo STEP2\"]\n    booted: false\n");
  plan_text(&c, d3, sizeof d3, off, "<h1>hello</h1>\n");
  expect_changed_from(&base.plan, &c.plan, 99, 99);
  free(off);
  unload(&c);
  remove_project(d3);
  unload(&base);
  remove_project(d0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_steps_and_labels),
      cmocka_unit_test(test_parent_chain),
      cmocka_unit_test(test_same_template_same_keys),
      cmocka_unit_test(test_changed_provisioner),
      cmocka_unit_test(test_changed_input_bytes),
      cmocka_unit_test(test_changed_layout),
      cmocka_unit_test(test_changed_output),
      cmocka_unit_test(test_rootfs_bytes),
      cmocka_unit_test(test_key_matches_sha256sum),
      cmocka_unit_test(test_missing_input),
      cmocka_unit_test(test_booted_and_timeout_in_key),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
