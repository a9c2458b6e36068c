/* Test helper: cmocka setup and teardown that give each test a fresh
 * struct vab_ctx in *state. */
#ifndef VAB_TESTS_CTX_FIXTURE_H
#define VAB_TESTS_CTX_FIXTURE_H

int test_ctx_setup(void **state);
int test_ctx_teardown(void **state);

/* A cmocka test entry with them. */
#define TEST_WITH_CTX(f) \
  cmocka_unit_test_setup_teardown(f, test_ctx_setup, test_ctx_teardown)

#endif
