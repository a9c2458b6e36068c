/* A fresh vab context per test (ctx-fixture.h). */
#include "ctx-fixture.h"

#include <stddef.h>

#include "vab/error.h"

int test_ctx_setup(void **state) {
  *state = vab_ctx_new();
  return *state == NULL ? -1 : 0;
}

int test_ctx_teardown(void **state) {
  vab_ctx_free(*state);
  return 0;
}
