/* The qcow2 metadata check (formats/qcow2/qcow2-check.c) reports what it
 * finds as findings, and leaves the caller's diagnostics alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "vab/error.h"
#include "vab/format.h"

#define CS 512u

static void put_be(uint8_t *p, uint64_t v, unsigned bytes) {
  for (unsigned i = 0; i < bytes; i++)
    p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

/* A v3 image of 512-byte clusters: header, L1, refcount table, refcount
 * block, one L2 table whose first entry has reserved bits set and whose
 * second points past the end of the file. */
static void write_image(const char *path) {
  uint8_t img[5 * CS];
  memset(img, 0, sizeof img);
  put_be(img + 0, 0x514649fbu, 4);      /* magic */
  put_be(img + 4, 3, 4);                /* version */
  put_be(img + 20, 9, 4);               /* cluster_bits */
  put_be(img + 24, 64 * CS, 8);         /* size: one L2 table */
  put_be(img + 36, 1, 4);               /* l1_size */
  put_be(img + 40, 1 * CS, 8);          /* l1_offset */
  put_be(img + 48, 2 * CS, 8);          /* refcount_table_offset */
  put_be(img + 56, 1, 4);               /* refcount_table_clusters */
  put_be(img + 96, 4, 4);               /* refcount_order */
  put_be(img + 100, 112, 4);            /* header_length */
  put_be(img + CS, 4 * CS | (1ull << 63), 8);
  put_be(img + 2 * CS, 3 * CS, 8);
  for (unsigned c = 0; c < 5; c++)
    put_be(img + 3 * CS + 2 * c, 1, 2);
  put_be(img + 4 * CS, 0x100000ull | 2 | (1ull << 63), 8);
  put_be(img + 4 * CS + 8, 64 * CS | (1ull << 63), 8);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(img, 1, sizeof img, f), sizeof img);
  assert_int_equal(fclose(f), 0);
}

static void test_check_keeps_diagnostics(void **state) {
  (void)state;
  char path[] = "/tmp/vab-test-qcow2-check-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  write_image(path);

  struct vab_ctx *ctx = vab_ctx_new();
  assert_non_null(ctx);
  struct vab_reader *r = NULL;
  assert_int_equal(vab_image_open(ctx, path, "qcow2", 0, &r), 0);
  vab_warn_at(ctx, NULL, "recorded before the check");
  assert_int_equal(vab_error(ctx, VAB_E_IO, "an earlier error"), -1);
  assert_int_equal(vab_diag_count(ctx), 2);

  struct vab_check_result res;
  assert_int_equal(r->format->check(r, &res), 0);
  assert_true(res.errors >= 2);
  assert_int_equal(res.checked, 2);

  assert_int_equal(vab_diag_count(ctx), 2);
  assert_int_equal(vab_error_count(ctx), 1);
  assert_string_equal(vab_diag_get(ctx, 0)->message,
                      "recorded before the check");
  assert_string_equal(vab_last_error(ctx)->message, "an earlier error");

  vab_image_close(r);
  vab_ctx_free(ctx);
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_check_keeps_diagnostics),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
