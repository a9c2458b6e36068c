/* The loader: YAML events to a node tree with marks, and hostile input. */
#include <time.h>

#include "helpers.h"

#define MINI "vab: 1\nname: web\nsource: {bootstrap: {suite: bookworm}}\n"

static void test_marks_on_keys_and_values(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_template *t = load_text(ctx,
      "vab: 1\n"
      "name:   web\n"
      "source:\n"
      "  bootstrap:\n"
      "    suite: \"bookworm\"\n", NULL);
  assert_non_null(t);
  const struct vab_mark *km = vab_node_key_mark(t->root, "name");
  assert_string_equal(km->file, "t.yaml");
  assert_int_equal(km->line, 2);
  assert_int_equal(km->column, 1);
  const struct vab_node *name = vab_node_get(t->root, "name");
  assert_int_equal(name->kind, VAB_NODE_SCALAR);
  assert_string_equal(name->scalar, "web");
  assert_int_equal(name->mark.line, 2);
  assert_int_equal(name->mark.column, 9);
  const struct vab_node *bs =
      vab_node_get(vab_node_get(t->root, "source"), "bootstrap");
  const struct vab_node *suite = vab_node_get(bs, "suite");
  assert_true(suite->quoted);
  assert_int_equal(suite->mark.line, 5);
  assert_int_equal(suite->mark.column, 12);
  assert_int_equal(t->source.kind, VAB_SOURCE_BOOTSTRAP);
  assert_int_equal(t->source.mark.line, 4);
  assert_int_equal(t->source.mark.column, 3);
  assert_null(vab_node_get(t->root, "absent"));
  assert_ptr_equal(vab_node_key_mark(t->root, "absent"), &t->root->mark);
  vab_template_free(t);
  vab_ctx_free(ctx);
}

static void test_duplicate_key_points_at_both(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  assert_null(load_text(ctx, MINI "disk: {size: 4G}\nname: other\n", NULL));
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 5, 1, "duplicate key 'name'",
              "");
  expect_diag(ctx, 1, VAB_SEV_NOTE, "t.yaml", 2, 1,
              "'name' was first set here", "");
  assert_int_equal(vab_diag_get(ctx, 0)->code, VAB_E_YAML);
  assert_string_equal(vab_diag_get(ctx, 0)->source_line, "name: other");
  assert_int_equal(vab_error_count(ctx), 1);
  vab_ctx_free(ctx);
}

static void test_tab_indentation(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  assert_null(load_text(ctx, "vab: 1\nsource:\n\tbootstrap: {}\n", NULL));
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 3, 1,
              "tab character: YAML does not allow tabs for indentation",
              "indent with spaces");
  assert_string_equal(vab_diag_get(ctx, 0)->source_line, "\tbootstrap: {}");
  vab_ctx_free(ctx);
}

static void test_syntax_error_is_located(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  assert_null(load_text(ctx, "vab: 1\nname: [web\n", NULL));
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 3, 1,
              "malformed YAML: did not find expected ',' or ']' while "
              "parsing a flow sequence (line 2)",
              "");
  vab_ctx_free(ctx);
}

static double seconds_since(const struct timespec *start) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - start->tv_sec) +
         (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void test_alias_bomb_is_capped(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  assert_null(load_text(ctx,
      "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
      "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
      "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
      "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
      "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
      "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
      "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n", NULL));
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 5, 36,
              "template too large: more than 100000 values (aliases count "
              "each time they are used)",
              "");
  assert_true(seconds_since(&start) < 1.0);
  vab_ctx_free(ctx);
}

static void test_small_aliases_work(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_template *t = load_text(ctx, MINI
      "tests:\n"
      "  - boot: &b {tcp: {port: 22}}\n"
      "  - boot: *b\n", NULL);
  assert_non_null(t);
  assert_int_equal(t->n_tests, 2);
  assert_int_equal(t->tests[1].tcp_port, 22);
  vab_template_free(t);
  vab_ctx_free(ctx);
}

static void test_unknown_alias(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  assert_null(load_text(ctx, MINI "description: *nothing\n", NULL));
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 4, 14,
              "alias '*nothing' refers to no anchor defined before it", "");
  vab_ctx_free(ctx);
}

static void test_deep_nesting_is_capped(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  size_t depth = 100000;
  char *text = malloc(depth + 8);
  memcpy(text, "a: ", 3);
  memset(text + 3, '[', depth);
  text[3 + depth] = '\0';
  assert_null(load_text(ctx, text, NULL));
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 1, 67,
              "nested too deeply: more than 64 levels", "");
  free(text);
  vab_ctx_free(ctx);
}

static void test_huge_input_is_refused(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  size_t size = (4u << 20) + 1;
  char *text = malloc(size + 1);
  memset(text, '#', size);
  text[size] = '\0';
  assert_null(load_text(ctx, text, NULL));
  expect_diag(ctx, 0, VAB_SEV_ERROR, NULL, 0, 0,
              "'t.yaml' is too large for a template: 4194305 bytes, at most "
              "4194304 (4 MiB)",
              "");
  free(text);
  vab_ctx_free(ctx);
}

static void test_invalid_utf8_is_located(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  assert_null(load_text(ctx, "vab: 1\nname: caf\xe9\n", NULL));
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 2, 10,
              "not valid UTF-8 (incomplete UTF-8 octet sequence): a template "
              "must be UTF-8 text",
              "");
  /* The shown line replaces the bad byte, so it prints and JSON-encodes. */
  assert_string_equal(vab_diag_get(ctx, 0)->source_line, "name: caf?");
  vab_ctx_free(ctx);
}

static void test_binary_garbage(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  static const char garbage[] = "\x7f" "ELF\x02\x01\x01\x00\x00";
  struct vab_template *t = NULL;
  assert_int_equal(vab_template_load_data(ctx, "t.yaml", DATA_DIR, garbage,
                                          sizeof garbage - 1, default_opts(), &t),
                   -1);
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 1, 1,
              "control character 0x7f: a template must be UTF-8 text, not "
              "binary data",
              "");
  vab_ctx_free(ctx);
}

static void test_empty_and_not_a_mapping(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  assert_null(load_text(ctx, "", NULL));
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 1, 1,
              "'t.yaml' is empty: a template is a mapping with at least "
              "'vab: 1' and 'name'",
              "");
  vab_diag_clear(ctx);
  assert_null(load_text(ctx, "# only a comment\n", NULL));
  assert_int_equal(vab_error_count(ctx), 1);
  vab_diag_clear(ctx);
  assert_null(load_text(ctx, "- vab\n- 1\n", NULL));
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 1, 1,
              "a template must be a mapping of keys such as 'vab' and "
              "'name', not a list",
              "");
  vab_diag_clear(ctx);
  assert_null(load_text(ctx, MINI "---\nvab: 1\n", NULL));
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 4, 1,
              "a second YAML document: a template is one document", "");
  vab_ctx_free(ctx);
}

static void test_paths_that_are_not_templates(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_template *t = NULL;
  assert_int_equal(vab_template_load(ctx, DATA_DIR, default_opts(), &t), -1);
  assert_null(t);
  expect_diag(ctx, 0, VAB_SEV_ERROR, NULL, 0, 0,
              "'" DATA_DIR "' is a directory, not a template file", "");
  vab_diag_clear(ctx);
  assert_int_equal(vab_template_load(ctx, DATA_DIR "/no-such.yaml", default_opts(), &t),
                   -1);
  expect_diag(ctx, 0, VAB_SEV_ERROR, NULL, 0, 0,
              "cannot open template '" DATA_DIR "/no-such.yaml'", "");
  assert_int_equal(vab_diag_get(ctx, 0)->sys_errno, 2);
  vab_diag_clear(ctx);
  assert_int_equal(vab_template_load(ctx, "/dev/null", default_opts(), &t), -1);
  expect_diag(ctx, 0, VAB_SEV_ERROR, NULL, 0, 0,
              "'/dev/null' is not a regular file, so it cannot be a template",
              "");
  vab_ctx_free(ctx);
}

static void test_key_must_be_scalar(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  assert_null(load_text(ctx, "? [a, b]\n: c\n", NULL));
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 1, 3,
              "a key must be a plain string, not a list, mapping or alias",
              "");
  vab_ctx_free(ctx);
}

static void test_nul_in_keys_and_values(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  assert_null(load_text(ctx, MINI "description: \"a\\0b\"\n", NULL));
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 4, 14,
              "a value contains a NUL character", "");
  vab_diag_clear(ctx);
  assert_null(load_text(ctx, MINI "\"a\\0b\": x\n", NULL));
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 4, 1,
              "a key contains a NUL character", "");
  vab_ctx_free(ctx);
}

static void test_loads_example_files(void **state) {
  (void)state;
  static const char *const examples[] = {"web.yaml", "minimal.yaml",
                                         "base.yaml", "web-extended.yaml",
                                         "booted.yaml"};
  for (size_t i = 0; i < sizeof examples / sizeof examples[0]; i++) {
    struct vab_ctx *ctx = vab_ctx_new();
    char path[512];
    snprintf(path, sizeof path, "%s/%s", EXAMPLES_DIR, examples[i]);
    struct vab_template *t = NULL;
    if (vab_template_load(ctx, path, default_opts(), &t) != 0)
      dump_diags(ctx);
    assert_non_null(t);
    assert_int_equal(vab_error_count(ctx), 0);
    vab_template_free(t);
    vab_ctx_free(ctx);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_marks_on_keys_and_values),
    cmocka_unit_test(test_duplicate_key_points_at_both),
    cmocka_unit_test(test_tab_indentation),
    cmocka_unit_test(test_syntax_error_is_located),
    cmocka_unit_test(test_alias_bomb_is_capped),
    cmocka_unit_test(test_small_aliases_work),
    cmocka_unit_test(test_unknown_alias),
    cmocka_unit_test(test_deep_nesting_is_capped),
    cmocka_unit_test(test_huge_input_is_refused),
    cmocka_unit_test(test_invalid_utf8_is_located),
    cmocka_unit_test(test_binary_garbage),
    cmocka_unit_test(test_empty_and_not_a_mapping),
    cmocka_unit_test(test_paths_that_are_not_templates),
    cmocka_unit_test(test_key_must_be_scalar),
    cmocka_unit_test(test_nul_in_keys_and_values),
    cmocka_unit_test(test_loads_example_files),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
