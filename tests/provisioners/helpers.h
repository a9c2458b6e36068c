/* Shared by the provisioner run tests: load a template whose steps are
 * given as YAML, run one step's run half against a fake guest, and look at
 * what it did. */
#ifndef VAB_TESTS_PROVISIONERS_HELPERS_H
#define VAB_TESTS_PROVISIONERS_HELPERS_H

#include "tests/templates/helpers.h"
#include "tests/provisioners/fake-guest.h"

/* Three lines, so that the first step's "type" is at line 5, column 5. */
#define STEPS_HEAD                                                   \
  "vab: 1\nname: web\nsource: {bootstrap: {suite: bookworm}}\n"     \
  "provisioners:\n"

struct fixture {
  struct vab_ctx *ctx;
  struct fake_guest *fake;
  struct vab_template *t;
};

static inline int fixture_setup(void **state) {
  struct fixture *fx = calloc(1, sizeof *fx);
  if (fx == NULL)
    return -1;
  fx->ctx = vab_ctx_new();
  fx->fake = fx->ctx != NULL ? fake_guest_new(fx->ctx) : NULL;
  *state = fx;
  return fx->fake != NULL ? 0 : -1;
}

static inline int fixture_teardown(void **state) {
  struct fixture *fx = *state;
  vab_template_free(fx->t);
  fake_guest_free(fx->fake);
  vab_ctx_free(fx->ctx);
  free(fx);
  return 0;
}

#define FIXTURE_TEST(fn) \
  cmocka_unit_test_setup_teardown(fn, fixture_setup, fixture_teardown)

/* Loads STEPS_HEAD followed by steps (the list items, indented by two);
 * the template must be valid, as `vab validate` would find it. */
static inline void load_steps(struct fixture *fx, const char *steps) {
  size_t len = strlen(STEPS_HEAD) + strlen(steps) + 1;
  char *text = malloc(len);
  assert_non_null(text);
  snprintf(text, len, "%s%s", STEPS_HEAD, steps);
  fx->t = load_text(fx->ctx, text, NULL);
  if (fx->t == NULL)
    dump_diags(fx->ctx);
  free(text);
  assert_non_null(fx->t);
  assert_int_equal(vab_error_count(fx->ctx), 0);
}

/* The run half of step i, against the fake guest.  The one place that
 * knows how a step reaches its run function. */
static inline int run_step(struct fixture *fx, size_t i) {
  assert_true(i < fx->t->n_steps);
  const struct vab_step *step = &fx->t->steps[i];
  const struct vab_provisioner *run_half = vab_provisioner_by_name(step->type);
  assert_non_null(run_half);
  return run_half->run(fx->ctx, step->config, fake_guest_handle(fx->fake));
}

/* The text of script nth (0-based). */
static inline const char *script_text(const struct fixture *fx, size_t nth) {
  const struct fake_call *c = fake_guest_find(fx->fake, "script", nth);
  assert_non_null(c);
  return c->arg;
}

/* Call i is op on path (path NULL: not checked). */
static inline const struct fake_call *expect_call(const struct fixture *fx,
                                                  size_t i, const char *op,
                                                  const char *path) {
  const struct fake_call *c = fake_guest_call(fx->fake, i);
  if (c == NULL || strcmp(c->op, op) != 0 ||
      (path != NULL && (c->path == NULL || strcmp(c->path, path) != 0))) {
    for (size_t k = 0; k < fake_guest_call_count(fx->fake); k++) {
      const struct fake_call *d = fake_guest_call(fx->fake, k);
      fprintf(stderr, "  call %zu: %s %s\n", k, d->op,
              d->path != NULL ? d->path : "-");
    }
  }
  assert_non_null(c);
  assert_string_equal(c->op, op);
  if (path != NULL) {
    assert_non_null(c->path);
    assert_string_equal(c->path, path);
  }
  return c;
}

static inline void assert_contains(const char *text, const char *needle) {
  if (strstr(text, needle) == NULL)
    fprintf(stderr, "expected to find:\n%s\nin:\n%s\n", needle, text);
  assert_non_null(strstr(text, needle));
}

static inline void assert_lacks(const char *text, const char *needle) {
  if (strstr(text, needle) != NULL)
    fprintf(stderr, "did not expect:\n%s\nin:\n%s\n", needle, text);
  assert_null(strstr(text, needle));
}

/* The run failed with exactly one error, code at line:column, message;
 * hint as in expect_diag() (NULL: not checked, "": none). */
static inline void expect_run_error(struct fixture *fx, enum vab_code code,
                                    unsigned line, unsigned column,
                                    const char *message, const char *hint) {
  const struct vab_diag *d = vab_last_error(fx->ctx);
  assert_non_null(d);
  assert_int_equal(d->code, code);
  expect_diag(fx->ctx, vab_diag_count(fx->ctx) - 1, VAB_SEV_ERROR, "t.yaml",
              line, column, message, hint);
}

#endif
