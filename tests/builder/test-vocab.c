/* builder/vocab.c: what `vab validate` accepts is what the owners accept.
 *
 * Output options go through the template loader and through a real
 * vab_convert() with the same -o options; publish references through the
 * loader and publish/ref.c; sysprep operations through the loader and the
 * sysprep planner.  Each pair must agree, case by case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "vab/vab.h"
#include "vab/format.h"
#include "builder/sysprep.h"
#include "builder/vocab.h"
#include "publish/ref.h"

#define HEAD "vab: 1\nname: web\nsource: {bootstrap: {suite: bookworm}}\n"

static char work[] = "/tmp/vab-test-vocab-XXXXXX";
static char src_path[256];

static int setup(void **state) {
  (void)state;
  if (mkdtemp(work) == NULL)
    return -1;
  snprintf(src_path, sizeof src_path, "%s/src.raw", work);
  FILE *f = fopen(src_path, "w");
  if (f == NULL)
    return -1;
  /* 1 MiB: one data block among zeros, so writers do real work. */
  static char block[65536];
  memset(block, 0x5a, sizeof block);
  int r = fseek(f, 256 * 1024, SEEK_SET) == 0 &&
          fwrite(block, 1, sizeof block, f) == sizeof block &&
          fseek(f, (1 << 20) - 1, SEEK_SET) == 0 && fputc(0, f) != EOF;
  return fclose(f) == 0 && r ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", work);
  return system(cmd) == 0 ? 0 : -1;
}

/* A template whose one output is format with these options; NULL when the
 * loader refused it, with its first error message in why and the line. */
static bool validate(const char *format, const struct vab_option *options,
                     size_t n, char *why, size_t why_len, uint32_t *line,
                     uint32_t *column) {
  char yaml[2048];
  int used = snprintf(yaml, sizeof yaml, HEAD "outputs:\n  - format: %s\n",
                      format);
  for (size_t i = 0; i < n; i++)
    used += snprintf(yaml + used, sizeof yaml - (size_t)used, "    %s: %s\n",
                     options[i].key, options[i].value);
  assert_true(used > 0 && (size_t)used < sizeof yaml);
  struct vab_ctx *ctx = vab_ctx_new();
  assert_non_null(ctx);
  struct vab_load_opts opts = {.vocab = vab_template_vocab()};
  struct vab_template *t = NULL;
  int r = vab_template_load_data(ctx, "t.yaml", work, yaml, strlen(yaml),
                                 &opts, &t);
  if (r < 0) {
    const struct vab_diag *d = vab_diag_get(ctx, 0);
    assert_non_null(d);
    snprintf(why, why_len, "%s", d->message);
    *line = d->line;
    *column = d->column;
  }
  vab_template_free(t);
  vab_ctx_free(ctx);
  return r == 0;
}

/* vab convert -O format -o options src dst. */
static bool convert(const char *format, const struct vab_option *options,
                    size_t n, char *why, size_t why_len) {
  char dst[300];
  snprintf(dst, sizeof dst, "%s/out.%s", work, format);
  struct vab_ctx *ctx = vab_ctx_new();
  assert_non_null(ctx);
  struct vab_convert_opts opts = {
    .src_format = "raw", .dst_format = format, .options = options,
    .n_options = n, .threads = 1,
  };
  struct vab_convert_result res;
  int r = vab_convert(ctx, src_path, dst, &opts, &res);
  if (r < 0)
    snprintf(why, why_len, "%s", vab_last_error(ctx)->message);
  unlink(dst);
  vab_ctx_free(ctx);
  return r == 0;
}

static size_t cases_run, cases_refused;

/* Both ways agree; a refusal is the same message, at the option's line
 * (options start on line 6) and its value's column. */
static void agree(const char *format, const struct vab_option *options,
                  size_t n) {
  char v_why[512] = "", c_why[512] = "";
  uint32_t line = 0, column = 0;
  bool v_ok = validate(format, options, n, v_why, sizeof v_why, &line,
                       &column);
  bool c_ok = convert(format, options, n, c_why, sizeof c_why);
  if (v_ok != c_ok) {
    fprintf(stderr, "%s", format);
    for (size_t i = 0; i < n; i++)
      fprintf(stderr, " %s=%s", options[i].key, options[i].value);
    fprintf(stderr, ": validate %s (%s), convert %s (%s)\n",
            v_ok ? "accepts" : "refuses", v_why, c_ok ? "accepts" : "refuses",
            c_why);
    fail();
  }
  cases_run++;
  if (v_ok)
    return;
  cases_refused++;
  assert_string_equal(v_why, c_why);
  assert_true(line >= 6 && line < 6 + n);
  const struct vab_option *at = &options[line - 6];
  assert_int_equal(column, 4 + strlen(at->key) + 2 + 1);
}

static void agree1(const char *format, const char *key, const char *value) {
  struct vab_option o = {key, value};
  agree(format, &o, 1);
}

/* Values every kind should be tried with: each edge, and past it. */
static void try_spec(const char *format, const struct vab_option_spec *spec) {
  char text[64];
  switch (spec->kind) {
  case VAB_OPTION_ENUM:
    for (size_t i = 0; spec->values[i] != NULL; i++)
      agree1(format, spec->key, spec->values[i]);
    agree1(format, spec->key, "bogus");
    agree1(format, spec->key, "NONE");
    break;
  case VAB_OPTION_INT: {
    const long edges[] = {(long)spec->min - 1, (long)spec->min,
                          (long)spec->max, (long)spec->max + 1, 1000};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
      snprintf(text, sizeof text, "%ld", edges[i]);
      agree1(format, spec->key, text);
    }
    static const char *const words[] = {"abc", "1.5", "+5", "0x10", "12k"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
      agree1(format, spec->key, words[i]);
    break;
  }
  case VAB_OPTION_SIZE: {
    const unsigned long long edges[] = {spec->min - 1, spec->min,
                                        spec->min + 1, spec->max,
                                        spec->max + 1, spec->max * 2};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
      snprintf(text, sizeof text, "%llu", edges[i]);
      agree1(format, spec->key, text);
    }
    static const char *const words[] = {"64K", "64KiB", "2M", "4M", "1G",
                                        "3000", "4KB", "abc", "-512"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
      agree1(format, spec->key, words[i]);
    break;
  }
  case VAB_OPTION_BOOL: {
    static const char *const words[] = {"on", "off", "true", "false", "yes",
                                        "no", "1", "0", "maybe"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
      agree1(format, spec->key, words[i]);
    break;
  }
  case VAB_OPTION_STRING:
    break;  /* only in NOT_IN_TEMPLATES options today */
  }
}

/* Every option of every writable format, one at a time. */
static void test_every_option(void **state) {
  (void)state;
  size_t formats = 0;
  for (size_t i = 0; i < vab_format_count(); i++) {
    const struct vab_format *f = vab_format_at(i);
    if (!(f->caps & VAB_FMT_WRITE))
      continue;
    formats++;
    /* An unknown key: both refuse (each says so in its own words). */
    struct vab_option colour = {"colour", "blue"};
    char why[512];
    uint32_t line, column;
    assert_false(validate(f->name, &colour, 1, why, sizeof why, &line,
                          &column));
    assert_false(convert(f->name, &colour, 1, why, sizeof why));
    for (size_t j = 0; f->options != NULL && f->options[j].key != NULL; j++)
      if (!(f->options[j].flags & VAB_OPTION_NOT_IN_TEMPLATES))
        try_spec(f->name, &f->options[j]);
  }
  assert_int_equal(formats, 5);  /* qcow2 vmdk vhd vhdx raw */
  assert_true(cases_refused > 0 && cases_refused < cases_run);
}

/* The combinations the tables cannot say. */
static void test_combinations(void **state) {
  (void)state;
  static const struct {
    const char *format;
    struct vab_option options[3];
    size_t n;
    bool ok;
  } cases[] = {
    {"qcow2", {{"compression", "zlib"}, {"level", "20"}}, 2, false},
    {"qcow2", {{"compression", "zlib"}, {"level", "13"}}, 2, false},
    {"qcow2", {{"compression", "deflate"}, {"level", "20"}}, 2, false},
    {"qcow2", {{"level", "20"}, {"compression", "zlib"}}, 2, false},
    {"qcow2", {{"compression", "zlib"}, {"level", "12"}}, 2, true},
    {"qcow2", {{"compression", "zstd"}, {"level", "20"}}, 2, true},
    {"qcow2", {{"compression", "zstd"}, {"level", "22"}}, 2, true},
    {"qcow2", {{"compression", "zstd"}, {"level", "23"}}, 2, false},
    {"qcow2", {{"compression", "none"}, {"level", "20"}}, 2, true},
    {"qcow2", {{"compression", "zlib"}, {"dedup", "on"},
               {"cluster_size", "1M"}}, 3, true},
    {"raw", {{"compression", "zstd"}, {"level", "22"}}, 2, true},
    {"raw", {{"compression", "zstd"}, {"level", "0"}}, 2, false},
    {"vmdk", {{"subformat", "monolithicSparse"}, {"level", "9"},
              {"hwversion", "13"}}, 3, true},
    {"vmdk", {{"subformat", "streamOptimized"}, {"level", "13"}}, 2, false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t refused = cases_refused;
    agree(cases[i].format, cases[i].options, cases[i].n);
    assert_int_equal(cases_refused == refused, cases[i].ok);
  }
}

/* The options a template cannot give (they name files or fix ids) only
 * convert takes: its verdict and message are the spec check's, which the
 * writer does not repeat. */
static void test_convert_only_options(void **state) {
  (void)state;
  static const struct {
    const char *format;
    struct vab_option options[2];
    size_t n;
    bool ok;
  } cases[] = {
    {"qcow2", {{"backing_fmt", "raw"}}, 1, false},
    {"vmdk", {{"cid", "ffffffff"}}, 1, false},
    {"vmdk", {{"cid", "fffffffe"}}, 1, false},
    {"vmdk", {{"cid", "12345"}}, 1, false},
    {"vmdk", {{"cid", "0000abcd"}}, 1, true},
    {"vmdk", {{"extent_file", "a/b.vmdk"}}, 1, false},
    {"vmdk", {{"extent_file", "disk.vmdk"}, {"cid", "fffffffd"}}, 2, true},
    {"vhd", {{"subformat", "dynamic"}}, 1, false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct vab_format *f = vab_format_by_name(cases[i].format);
    assert_non_null(f);
    struct vab_option_problem p;
    bool check_ok =
        vab_format_check_options(f, cases[i].options, cases[i].n, &p) == 0;
    char why[512] = "";
    bool c_ok = convert(cases[i].format, cases[i].options, cases[i].n, why,
                        sizeof why);
    if (c_ok != cases[i].ok || check_ok != cases[i].ok)
      fail_msg("case %zu: check %d, convert %d (%s)", i, check_ok, c_ok, why);
    if (!c_ok)
      assert_string_equal(why, p.message);
  }
}

/* The case, spelled out: file:line:column of the level. */
static void test_zlib_level_20(void **state) {
  (void)state;
  struct vab_option o[] = {{"compression", "zlib"}, {"level", "20"}};
  char why[512];
  uint32_t line = 0, column = 0;
  assert_false(validate("qcow2", o, 2, why, sizeof why, &line, &column));
  assert_int_equal(line, 7);
  assert_int_equal(column, 12);
  assert_string_equal(why, "qcow2 level for zlib must be from 1 to 12, not 20");
  assert_false(convert("qcow2", o, 2, why, sizeof why));
  assert_string_equal(why, "qcow2 level for zlib must be from 1 to 12, not 20");
}

/* What vab_publish_dir() takes: oci_ref_parse(), and no digest. */
static bool publish_accepts(const char *ref) {
  struct vab_ctx *ctx = vab_ctx_new();
  assert_non_null(ctx);
  struct oci_ref parsed;
  bool ok = oci_ref_parse(ctx, ref, &parsed) == 0;
  if (ok) {
    ok = parsed.digest == NULL;
    oci_ref_release(&parsed);
  }
  vab_ctx_free(ctx);
  return ok;
}

static bool validate_ref(const char *ref) {
  char yaml[1024];
  snprintf(yaml, sizeof yaml, HEAD "publish: [{ref: \"%s\"}]\n", ref);
  struct vab_ctx *ctx = vab_ctx_new();
  assert_non_null(ctx);
  struct vab_load_opts opts = {.vocab = vab_template_vocab()};
  struct vab_template *t = NULL;
  int r = vab_template_load_data(ctx, "t.yaml", work, yaml, strlen(yaml),
                                 &opts, &t);
  if (r < 0) {
    const struct vab_diag *d = vab_diag_get(ctx, 0);
    assert_int_equal(d->line, 4);
    assert_int_equal(d->column, 17);
  }
  vab_template_free(t);
  vab_ctx_free(ctx);
  return r == 0;
}

static void test_refs(void **state) {
  (void)state;
  static const struct {
    const char *ref;
    bool ok;
  } cases[] = {
    {"[::1]:5000/web", true},
    {"reg.example/a__b", true},
    {"reg.example/a__b/c", true},
    {"reg.example:5000/appliances/web", true},
    {"localhost/web", true},
    {"127.0.0.1:5000/team/web", true},
    {"reg.example/web:1.0", true},
    {"reg.example/a.b-c_d", true},
    {"reg.example/a---b", true},
    {"reg.example/web@sha256:"
     "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
     false},  /* a valid reference, but a push names a tag */
    {"reg.example/web@sha256:abc", false},
    {"web", false},
    {"/web", false},
    {"reg.example/", false},
    {"Reg/Web", false},
    {"reg.example/Web", false},
    {"reg.example/a___b", false},
    {"reg.example/-a", false},
    {"reg.example/a-", false},
    {"reg.example/a//b", false},
    {"reg.example:99999/web", false},
    {"reg.example:/web", false},
    {"re g/web", false},
    {"reg.example/web:-x", false},
    {"[::1/web", false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    bool publish = publish_accepts(cases[i].ref);
    bool valid = validate_ref(cases[i].ref);
    if (publish != cases[i].ok || valid != cases[i].ok)
      fail_msg("%s: publish %d, validate %d, want %d", cases[i].ref, publish,
               valid, cases[i].ok);
  }
}

static struct vab_template *load_sysprep(struct vab_ctx *ctx,
                                         const char *sysprep) {
  char yaml[1024];
  snprintf(yaml, sizeof yaml, HEAD "%s", sysprep);
  struct vab_load_opts opts = {.vocab = vab_template_vocab()};
  struct vab_template *t = NULL;
  vab_template_load_data(ctx, "t.yaml", work, yaml, strlen(yaml), &opts, &t);
  return t;
}

/* The schema's operations are the run table's, each one runs, and the
 * default runs them all in table order. */
static void test_sysprep(void **state) {
  (void)state;
  const char *const *ops = vab_sysprep_operations();
  assert_ptr_equal(vab_template_vocab()->sysprep_operations, ops);
  struct vab_ctx *ctx = vab_ctx_new();
  assert_non_null(ctx);
  size_t n = 0;
  for (; ops[n] != NULL; n++) {
    char text[256];
    snprintf(text, sizeof text, "sysprep: {operations: [%s]}\n", ops[n]);
    struct vab_template *t = load_sysprep(ctx, text);
    assert_non_null(t);
    assert_int_equal(t->sysprep.n_operations, 1);
    struct vab_sysprep_plan plan;
    assert_int_equal(vab_sysprep_plan(ctx, &t->sysprep, &plan), 0);
    assert_string_equal(plan.names, ops[n]);
    snprintf(text, sizeof text, "echo 'sysprep: %s'\n", ops[n]);
    assert_true(plan.trim || strstr(plan.script, text) != NULL);
    assert_true(plan.trim == (strcmp(ops[n], "trim") == 0));
    vab_sysprep_plan_release(&plan);
    vab_template_free(t);
  }
  assert_true(n >= 9);
  struct vab_template *t = load_sysprep(ctx, "");
  assert_non_null(t);
  assert_int_equal(t->sysprep.n_operations, n);
  for (size_t i = 0; i < n; i++)
    assert_ptr_equal(t->sysprep.operations[i], ops[i]);
  vab_template_free(t);
  assert_null(load_sysprep(ctx, "sysprep: {operations: [wipe-disk]}\n"));
  vab_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_every_option),
    cmocka_unit_test(test_combinations),
    cmocka_unit_test(test_convert_only_options),
    cmocka_unit_test(test_zlib_level_20),
    cmocka_unit_test(test_refs),
    cmocka_unit_test(test_sysprep),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
