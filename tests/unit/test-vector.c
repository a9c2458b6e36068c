/* common/vector.h: append, reserve, doubling growth, overflow refusal. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "common/vector.h"

DEFINE_VECTOR_TYPE(int_vector, int);

struct pair {
  int a;
  char b;
};
DEFINE_VECTOR_TYPE(pair_vector, struct pair);

static void test_append(void **state) {
  (void)state;
  struct int_vector v = VECTOR_INIT;
  size_t reallocs = 0, last_cap = 0;
  for (int i = 0; i < 10000; i++) {
    assert_int_equal(int_vector_append(&v, i), 0);
    if (v.cap != last_cap) {
      /* Each growth at least doubles: O(log n) reallocations. */
      assert_true(last_cap == 0 || v.cap >= 2 * last_cap);
      last_cap = v.cap;
      reallocs++;
    }
  }
  assert_int_equal(v.len, 10000);
  assert_true(v.cap >= v.len);
  assert_true(reallocs <= 12);
  for (int i = 0; i < 10000; i++)
    assert_int_equal(v.ptr[i], i);
  int_vector_reset(&v);
  assert_null(v.ptr);
  assert_int_equal(v.len, 0);
  assert_int_equal(v.cap, 0);
}

static void test_reserve(void **state) {
  (void)state;
  struct pair_vector v = VECTOR_INIT;
  assert_int_equal(pair_vector_reserve(&v, 0), 0);
  assert_null(v.ptr);
  assert_int_equal(pair_vector_reserve(&v, 100), 0);
  assert_true(v.cap >= 100);
  struct pair *before = v.ptr;
  for (int i = 0; i < 100; i++)
    assert_int_equal(pair_vector_append(&v, (struct pair){i, 'x'}), 0);
  assert_ptr_equal(v.ptr, before);  /* no reallocation within the room */
  assert_int_equal(v.ptr[99].a, 99);
  assert_int_equal(v.ptr[99].b, 'x');
  pair_vector_reset(&v);
}

static void test_overflow(void **state) {
  (void)state;
  struct pair_vector v = VECTOR_INIT;
  assert_int_equal(pair_vector_append(&v, (struct pair){1, 'a'}), 0);
  struct pair *ptr = v.ptr;
  size_t cap = v.cap;
  errno = 0;
  assert_int_equal(pair_vector_reserve(&v, SIZE_MAX), -1);
  assert_int_equal(errno, ENOMEM);
  errno = 0;
  assert_int_equal(pair_vector_reserve(&v, SIZE_MAX / sizeof(struct pair)),
                   -1);
  assert_int_equal(errno, ENOMEM);
  /* Nothing changed. */
  assert_ptr_equal(v.ptr, ptr);
  assert_int_equal(v.cap, cap);
  assert_int_equal(v.len, 1);
  assert_int_equal(v.ptr[0].a, 1);
  pair_vector_reset(&v);
}

static void test_grow_direct(void **state) {
  (void)state;
  /* The function form, for arrays whose fields an API names. */
  long *items = NULL;
  size_t n = 0, cap = 0;
  for (long i = 0; i < 50; i++) {
    long *p = vector_grow(items, &cap, n, 1, sizeof *items);
    assert_non_null(p);
    items = p;
    items[n++] = i;
  }
  assert_true(cap >= 50 && cap < 100);
  assert_ptr_equal(vector_grow(items, &cap, n, cap - n, sizeof *items),
                   items);
  errno = 0;
  assert_null(vector_grow(items, &cap, n, 0, sizeof *items));
  assert_int_equal(errno, ENOMEM);
  assert_int_equal(items[49], 49);
  free(items);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_append),
      cmocka_unit_test(test_reserve),
      cmocka_unit_test(test_overflow),
      cmocka_unit_test(test_grow_direct),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
