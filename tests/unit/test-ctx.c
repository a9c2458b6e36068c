/* The error context: codes, marks, caps, hints, cancellation, threads. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "vab/vab.h"

static void test_error_returns_minus_one_and_records(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  assert_int_equal(vab_error(ctx, VAB_E_IO, "cannot open '%s'", "x"), -1);
  assert_int_equal(vab_diag_count(ctx), 1);
  assert_int_equal(vab_error_count(ctx), 1);
  const struct vab_diag *d = vab_last_error(ctx);
  assert_non_null(d);
  assert_int_equal(d->code, VAB_E_IO);
  assert_string_equal(d->message, "cannot open 'x'");
  assert_null(d->file);
  vab_ctx_free(ctx);
}

static void test_marks_hints_and_errno(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_mark m = {"web.yaml", 3, 7};
  vab_error_at(ctx, VAB_E_SCHEMA, &m, "unknown key '%s'", "pakages");
  vab_diag_hint(ctx, "did you mean '%s'?", "packages");
  vab_diag_source_line(ctx, "  pakages: [nginx]\nnext", 18);
  vab_error_errno(ctx, VAB_E_IO, ENOENT, "cannot read '%s'", "y");
  vab_warn_at(ctx, NULL, "just a warning");
  assert_int_equal(vab_diag_count(ctx), 3);
  assert_int_equal(vab_error_count(ctx), 2);
  const struct vab_diag *d = vab_diag_get(ctx, 0);
  assert_string_equal(d->file, "web.yaml");
  assert_int_equal(d->line, 3);
  assert_int_equal(d->column, 7);
  assert_string_equal(d->hint, "did you mean 'packages'?");
  assert_string_equal(d->source_line, "  pakages: [nginx]");
  assert_int_equal(vab_diag_get(ctx, 1)->sys_errno, ENOENT);
  assert_int_equal(vab_diag_get(ctx, 2)->severity, VAB_SEV_WARNING);
  assert_ptr_equal(vab_last_error(ctx), vab_diag_get(ctx, 1));
  vab_diag_clear(ctx);
  assert_int_equal(vab_diag_count(ctx), 0);
  assert_null(vab_last_error(ctx));
  vab_ctx_free(ctx);
}

static void test_cap_counts_dropped(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  for (int i = 0; i < VAB_DIAG_MAX + 5; i++)
    vab_error(ctx, VAB_E_SCHEMA, "problem %d", i);
  assert_int_equal(vab_diag_count(ctx), VAB_DIAG_MAX);
  assert_int_equal(vab_diag_dropped(ctx), 5);
  assert_int_equal(vab_error_count(ctx), VAB_DIAG_MAX + 5);
  vab_ctx_free(ctx);
}

static int stop_at_half(void *opaque, enum vab_phase phase, const char *step,
                        uint64_t done, uint64_t total) {
  int *calls = opaque;
  (*calls)++;
  return done * 2 >= total;
}

static void test_progress_and_cancel(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  int calls = 0;
  vab_ctx_set_progress(ctx, stop_at_half, &calls);
  assert_int_equal(vab_progress(ctx, VAB_PHASE_CONVERT, "x", 1, 10), 0);
  assert_int_equal(vab_progress(ctx, VAB_PHASE_CONVERT, "x", 5, 10), -1);
  assert_int_equal(vab_last_error(ctx)->code, VAB_E_CANCELLED);
  assert_int_equal(calls, 2);
  vab_diag_clear(ctx);
  assert_int_equal(vab_check_cancel(ctx), 0);
  vab_ctx_cancel(ctx);
  assert_true(vab_cancelled(ctx));
  assert_int_equal(vab_check_cancel(ctx), -1);
  assert_int_equal(vab_last_error(ctx)->code, VAB_E_CANCELLED);
  vab_ctx_free(ctx);
}

static void test_every_code_has_a_name_and_text(void **state) {
  (void)state;
  for (int c = 0; c < VAB_E_LAST; c++) {
    assert_string_not_equal(vab_code_name((enum vab_code)c), "unknown");
    assert_string_not_equal(vab_strerror((enum vab_code)c), "unknown error");
  }
  assert_string_equal(vab_phase_name(VAB_PHASE_EXPORT), "export");
}

/* Worker threads record errors with hints, as the convert workers do. */
#define WORKERS 4
#define ERRORS_PER_WORKER 400

struct worker {
  struct vab_ctx *ctx;
  int id;
  atomic_int *running;
};

static void *record_errors(void *opaque) {
  struct worker *w = opaque;
  for (int i = 0; i < ERRORS_PER_WORKER; i++) {
    vab_error(w->ctx, VAB_E_IO, "worker %d error %d", w->id, i);
    vab_diag_hint(w->ctx, "hint from worker %d", w->id);
    vab_warn_at(w->ctx, NULL, "worker %d warning %d", w->id, i);
  }
  atomic_fetch_sub(w->running, 1);
  return NULL;
}

static void start_workers(struct vab_ctx *ctx, pthread_t *threads,
                          struct worker *workers, atomic_int *running) {
  atomic_store(running, WORKERS);
  for (int i = 0; i < WORKERS; i++) {
    workers[i] = (struct worker){ctx, i, running};
    assert_int_equal(
        pthread_create(&threads[i], NULL, record_errors, &workers[i]), 0);
  }
}

/* The main thread reads while the workers record: every accessor sees a
 * consistent context, and the counts add up at the end. */
static void test_threads_record_while_main_reads(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  pthread_t threads[WORKERS];
  struct worker workers[WORKERS];
  atomic_int running;
  start_workers(ctx, threads, workers, &running);
  size_t errors_seen = 0;
  while (atomic_load(&running) > 0) {
    size_t n = vab_diag_count(ctx);
    assert_true(n <= VAB_DIAG_MAX);
    const struct vab_diag *last = vab_last_error(ctx);
    if (last != NULL) {
      assert_int_equal(last->code, VAB_E_IO);
      assert_memory_equal(last->message, "worker ", 7);
    }
    if (n > 0) {
      const struct vab_diag *first = vab_diag_get(ctx, 0);
      assert_non_null(first);
      assert_memory_equal(first->message, "worker ", 7);
    }
    /* Nothing clears here: the counts only grow. */
    size_t errors = vab_error_count(ctx);
    assert_true(errors >= errors_seen);
    errors_seen = errors;
  }
  for (int i = 0; i < WORKERS; i++)
    assert_int_equal(pthread_join(threads[i], NULL), 0);
  size_t total = 2u * WORKERS * ERRORS_PER_WORKER;
  assert_int_equal(vab_error_count(ctx), WORKERS * ERRORS_PER_WORKER);
  assert_int_equal(vab_diag_count(ctx), VAB_DIAG_MAX);
  assert_int_equal(vab_diag_dropped(ctx), total - VAB_DIAG_MAX);
  /* Each kept diagnostic is whole; a hint lands on the most recent
   * diagnostic, which may be another worker's. */
  for (size_t i = 0; i < VAB_DIAG_MAX; i++) {
    const struct vab_diag *d = vab_diag_get(ctx, i);
    int id = -1, nth = -1;
    assert_true(sscanf(d->message, "worker %d error %d", &id, &nth) == 2 ||
                sscanf(d->message, "worker %d warning %d", &id, &nth) == 2);
    assert_in_range(id, 0, WORKERS - 1);
    assert_in_range(nth, 0, ERRORS_PER_WORKER - 1);
    if (d->hint != NULL)
      assert_memory_equal(d->hint, "hint from worker ", 17);
  }
  vab_ctx_free(ctx);
}

/* Clearing while workers record and hint: nothing is freed twice (the
 * ASan build catches it when the accessors take no lock). */
static void test_clear_while_threads_record(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  pthread_t threads[WORKERS];
  struct worker workers[WORKERS];
  atomic_int running;
  start_workers(ctx, threads, workers, &running);
  while (atomic_load(&running) > 0) {
    vab_diag_clear(ctx);
    const struct vab_diag *last = vab_last_error(ctx);
    if (last != NULL)
      assert_memory_equal(last->message, "worker ", 7);
    assert_true(vab_diag_count(ctx) <= VAB_DIAG_MAX);
  }
  for (int i = 0; i < WORKERS; i++)
    assert_int_equal(pthread_join(threads[i], NULL), 0);
  vab_diag_clear(ctx);
  assert_int_equal(vab_diag_count(ctx), 0);
  assert_int_equal(vab_error_count(ctx), 0);
  assert_null(vab_last_error(ctx));
  vab_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_error_returns_minus_one_and_records),
    cmocka_unit_test(test_marks_hints_and_errno),
    cmocka_unit_test(test_cap_counts_dropped),
    cmocka_unit_test(test_progress_and_cancel),
    cmocka_unit_test(test_every_code_has_a_name_and_text),
    cmocka_unit_test(test_threads_record_while_main_reads),
    cmocka_unit_test(test_clear_while_threads_record),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
