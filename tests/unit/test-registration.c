/* Every registered format and step type has the callbacks its
 * capabilities need, and every option table is well formed, so that the
 * code that calls them needs no run-time "vab bug" guards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "vab/format.h"
#include "vab/provisioner.h"
#include "vab/step.h"
#include "builder/vocab.h"

static size_t list_length(const char *const *list) {
  size_t n = 0;
  while (list[n] != NULL)
    n++;
  return n;
}

static int list_has(const char *const *list, const char *word) {
  for (size_t i = 0; list != NULL && list[i] != NULL; i++)
    if (strcmp(list[i], word) == 0)
      return 1;
  return 0;
}

/* One table of option specs (owner names it in failures). */
static void check_option_table(const char *owner,
                               const struct vab_option_spec *table) {
  for (size_t i = 0; table[i].key != NULL; i++) {
    const struct vab_option_spec *s = &table[i];
    print_message("  %s: option %s\n", owner, s->key);
    assert_non_null(s->help);
    for (size_t j = 0; j < i; j++)
      assert_string_not_equal(table[j].key, s->key);
    switch (s->kind) {
    case VAB_OPTION_ENUM:
      assert_non_null(s->values);
      assert_true(list_length(s->values) > 0);
      for (size_t v = 0; s->values[v] != NULL; v++)
        for (size_t w = 0; w < v; w++)
          assert_string_not_equal(s->values[w], s->values[v]);
      if (s->default_value != NULL)
        assert_true(list_has(s->values, s->default_value));
      break;
    case VAB_OPTION_INT:
    case VAB_OPTION_SIZE:
      assert_null(s->values);
      assert_true(s->min <= s->max);
      break;
    case VAB_OPTION_BOOL:
    case VAB_OPTION_STRING:
      assert_null(s->values);
      break;
    default:
      fail_msg("%s: option %s has an unknown kind %d", owner, s->key,
               (int)s->kind);
    }
    if (s->flags & VAB_OPTION_POWER_OF_TWO)
      assert_int_equal(s->kind, VAB_OPTION_SIZE);
    if (s->flags & VAB_OPTION_CANONICAL)
      assert_non_null(s->default_value);
    /* The default passes the owner's own check: min <= default <= max,
     * a power of two where asked, a boolean that parses. */
    if (s->default_value != NULL) {
      struct vab_option_problem problem;
      memset(&problem, 0, sizeof problem);
      if (vab_option_check_value(owner, s, s->default_value, &problem) < 0)
        fail_msg("%s: option %s: default '%s' refused: %s", owner, s->key,
                 s->default_value, problem.message);
    }
  }
}

static void test_formats(void **state) {
  (void)state;
  size_t n = vab_format_count();
  assert_true(n > 0);
  assert_null(vab_format_at(n));
  assert_true(vab_format_by_name("raw")->caps & VAB_FMT_READ);
  for (size_t i = 0; i < n; i++) {
    const struct vab_format *f = vab_format_at(i);
    assert_non_null(f);
    assert_non_null(f->name);
    print_message("format %s\n", f->name);
    assert_ptr_equal(vab_format_by_name(f->name), f);
    assert_non_null(f->extension);
    assert_non_null(f->description);
    assert_true(f->caps & (VAB_FMT_READ | VAB_FMT_WRITE));
    if (f->caps & VAB_FMT_READ) {
      /* raw has no magic: it is what vab_image_open() falls back to. */
      if (strcmp(f->name, "raw") != 0)
        assert_true(f->probe != NULL || f->probe_tail != NULL);
      assert_non_null(f->reader_open);
      assert_non_null(f->block_status);
      assert_non_null(f->pread);
      /* check and reader_close are optional (raw has neither metadata
       * nor state to release). */
    } else {
      assert_null(f->reader_open);
      assert_null(f->probe);
      assert_null(f->probe_tail);
    }
    if (f->caps & VAB_FMT_WRITE) {
      assert_non_null(f->free);
      if (f->caps & VAB_FMT_EXTERNAL) {
        assert_non_null(f->convert_file);
      } else {
        assert_non_null(f->open);
        assert_non_null(f->put);
        assert_non_null(f->close);
      }
    } else {
      assert_false(f->caps & (VAB_FMT_STREAM | VAB_FMT_EXTERNAL));
      assert_null(f->open);
    }
    /* The core hands every option it does not own to set_option(). */
    if (f->options != NULL && f->options[0].key != NULL) {
      assert_true(f->caps & VAB_FMT_WRITE);
      assert_non_null(f->set_option);
      check_option_table(f->name, f->options);
    }
    if (f->check_options != NULL)
      assert_non_null(f->options);
  }
}

static void test_step_types(void **state) {
  (void)state;
  const struct vab_step_type *const *types = vab_step_types();
  assert_non_null(types);
  size_t n = 0;
  for (; types[n] != NULL; n++) {
    const struct vab_step_type *t = types[n];
    assert_non_null(t->name);
    print_message("step type %s\n", t->name);
    for (size_t j = 0; j < n; j++)
      assert_string_not_equal(types[j]->name, t->name);
    assert_non_null(t->summary);
    assert_non_null(t->keys);
    assert_false(list_has(t->keys, "type"));
    for (size_t k = 0; t->keys[k] != NULL; k++)
      for (size_t j = 0; j < k; j++)
        assert_string_not_equal(t->keys[j], t->keys[k]);
    for (size_t k = 0; t->path_keys != NULL && t->path_keys[k] != NULL; k++)
      assert_true(list_has(t->keys, t->path_keys[k]));
    assert_false(t->flags & ~(unsigned)(VAB_STEP_NEEDS_NETWORK |
                                        VAB_STEP_MAY_BOOT | VAB_STEP_BOOTED));
    /* A step may boot or always boots, not both; the loader owns the
     * keys that say so. */
    assert_false((t->flags & VAB_STEP_MAY_BOOT) && (t->flags & VAB_STEP_BOOTED));
    assert_false(list_has(t->keys, "booted"));
    assert_false(list_has(t->keys, "timeout"));
    /* The loader calls config, check and free unconditionally; inputs
     * is optional. */
    assert_non_null(t->config);
    assert_non_null(t->check);
    assert_non_null(t->free);
    /* Its run half, by the same name. */
    const struct vab_provisioner *p = vab_provisioner_by_name(t->name);
    if (p == NULL)
      fail_msg("step type '%s' has no run half", t->name);
    assert_string_equal(p->name, t->name);
    assert_non_null(p->run);
  }
  assert_true(n > 0);
  /* And the reverse: no run half without a schema half. */
  assert_int_equal(vab_provisioner_count(), n);
  assert_null(vab_provisioner_at(n));
  for (size_t i = 0; i < vab_provisioner_count(); i++) {
    const struct vab_provisioner *p = vab_provisioner_at(i);
    assert_non_null(p);
    size_t j = 0;
    while (types[j] != NULL && strcmp(types[j]->name, p->name) != 0)
      j++;
    if (types[j] == NULL)
      fail_msg("run half '%s' has no step type", p->name);
  }
}

/* What the template loader gets: the same tables, and every output
 * format's option table well formed too. */
static void test_vocab(void **state) {
  (void)state;
  const struct vab_template_vocab *v = vab_template_vocab();
  assert_ptr_equal(v->step_types, vab_step_types());
  assert_non_null(v->output_options);
  assert_non_null(v->check_value);
  assert_non_null(v->check_output);
  assert_non_null(v->check_ref);
  assert_non_null(v->sysprep_operations);
  assert_true(list_length(v->sysprep_operations) > 0);
  assert_non_null(v->output_formats);
  for (size_t i = 0; v->output_formats[i] != NULL; i++) {
    const char *format = v->output_formats[i];
    const struct vab_option_spec *table = v->output_options(format);
    if (table == NULL)
      fail_msg("output format '%s' has no option table", format);
    check_option_table(format, table);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_formats),
      cmocka_unit_test(test_step_types),
      cmocka_unit_test(test_vocab),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
