/* Shared by the template tests: load YAML text and check diagnostics. */
#ifndef VAB_TESTS_TEMPLATES_HELPERS_H
#define VAB_TESTS_TEMPLATES_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vab/vab.h"
#include "builder/vocab.h"

/* What NULL load options used to mean: the environment on, and the
 * vocabulary the CLI hands in. */
static inline const struct vab_load_opts *default_opts(void) {
  static struct vab_load_opts opts;
  opts.use_environment = true;
  opts.vocab = vab_template_vocab();
  return &opts;
}

/* Loads text as "t.yaml" in DATA_DIR; returns the template or NULL. */
static inline struct vab_template *load_text(struct vab_ctx *ctx,
                                             const char *text,
                                             const struct vab_load_opts *opts) {
  const struct vab_load_opts quiet = {.vocab = vab_template_vocab(),
                                     .use_environment = false};
  struct vab_template *t = NULL;
  int r = vab_template_load_data(ctx, "t.yaml", DATA_DIR, text, strlen(text),
                                 opts ? opts : &quiet, &t);
  assert_true((r == 0) == (t != NULL));
  return t;
}

/* Prints every diagnostic, so a failing test shows what it got. */
static inline void dump_diags(struct vab_ctx *ctx) {
  for (size_t i = 0; i < vab_diag_count(ctx); i++) {
    const struct vab_diag *d = vab_diag_get(ctx, i);
    fprintf(stderr, "  [%zu] %s:%u:%u: %s%s%s\n", i, d->file ? d->file : "-",
            d->line, d->column, d->message, d->hint ? " | hint: " : "",
            d->hint ? d->hint : "");
  }
}

/* Diagnostic i is at file:line:column with this message (and hint, unless
 * hint is NULL; "" means no hint at all). */
static inline void expect_diag(struct vab_ctx *ctx, size_t i,
                               enum vab_severity severity, const char *file,
                               unsigned line, unsigned column,
                               const char *message, const char *hint) {
  if (i >= vab_diag_count(ctx))
    dump_diags(ctx);
  assert_true(i < vab_diag_count(ctx));
  const struct vab_diag *d = vab_diag_get(ctx, i);
  if (strcmp(d->message, message) != 0 || d->line != line ||
      d->column != column)
    dump_diags(ctx);
  assert_int_equal(d->severity, severity);
  if (file == NULL) {
    assert_null(d->file);
  } else {
    assert_non_null(d->file);
    assert_string_equal(d->file, file);
  }
  assert_int_equal(d->line, line);
  assert_int_equal(d->column, column);
  assert_string_equal(d->message, message);
  if (hint != NULL && hint[0] == '\0')
    assert_null(d->hint);
  else if (hint != NULL) {
    assert_non_null(d->hint);
    assert_string_equal(d->hint, hint);
  }
}

#endif
