/* signing/digest: SHA-256 against the FIPS 180-2 vectors and sha256sum. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "signing/digest.h"

static void hash_string(const char *text, char hex[65]) {
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_sha256 *h = vab_sha256_new(ctx);
  assert_non_null(h);
  assert_int_equal(vab_sha256_update(h, text, strlen(text)), 0);
  uint8_t out[32];
  assert_int_equal(vab_sha256_final(h, out), 0);
  vab_hex(out, 32, hex);
  vab_ctx_free(ctx);
}

static void test_known_vectors(void **state) {
  (void)state;
  char hex[65];
  hash_string("", hex);
  assert_string_equal(
      hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  hash_string("abc", hex);
  assert_string_equal(
      hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  hash_string("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", hex);
  assert_string_equal(
      hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

/* Many small updates give the same digest as one big one. */
static void test_split_updates(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_sha256 *h = vab_sha256_new(ctx);
  for (int i = 0; i < 1000; i++)
    assert_int_equal(vab_sha256_update(h, "a", 1), 0);
  assert_int_equal(vab_sha256_update(h, NULL, 0), 0);
  uint8_t out[32];
  char hex[65];
  assert_int_equal(vab_sha256_final(h, out), 0);
  vab_hex(out, 32, hex);
  /* printf 'a%.0s' {1..1000} | sha256sum */
  assert_string_equal(
      hex, "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
  vab_ctx_free(ctx);
}

/* A file larger than the read buffer, compared with sha256sum's answer. */
static void test_file_matches_sha256sum(void **state) {
  (void)state;
  char path[] = "/tmp/vab-test-digest-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  uint8_t block[4096];
  for (int i = 0; i < 300; i++) {
    for (size_t j = 0; j < sizeof block; j++)
      block[j] = (uint8_t)(i * 31 + j * 7);
    assert_int_equal(write(fd, block, sizeof block), (ssize_t)sizeof block);
  }
  close(fd);

  struct vab_ctx *ctx = vab_ctx_new();
  uint8_t out[32];
  char hex[65];
  assert_int_equal(vab_sha256_file(ctx, path, out), 0);
  vab_hex(out, 32, hex);

  char cmd[256];
  snprintf(cmd, sizeof cmd, "sha256sum %s", path);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  char expected[65] = "";
  assert_int_equal(fscanf(p, "%64s", expected), 1);
  pclose(p);
  unlink(path);
  assert_string_equal(hex, expected);
  vab_ctx_free(ctx);
}

static void test_missing_file(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  uint8_t out[32];
  assert_int_equal(vab_sha256_file(ctx, "/nonexistent/vab-file", out), -1);
  const struct vab_diag *d = vab_last_error(ctx);
  assert_non_null(d);
  assert_int_equal(d->code, VAB_E_IO);
  assert_int_equal(d->sys_errno, ENOENT);
  assert_string_equal(d->message, "cannot open '/nonexistent/vab-file'");
  vab_ctx_free(ctx);
}

/* A buffer's digest as registries and step keys write it: "sha256:HEX". */
static void test_buffer_digest(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  char digest[VAB_SHA256_DIGEST_SIZE];
  assert_int_equal(vab_sha256_buffer(ctx, "abc", 3, digest), 0);
  assert_string_equal(digest, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a3"
                              "96177a9cb410ff61f20015ad");
  assert_int_equal(vab_sha256_buffer(ctx, NULL, 0, digest), 0);
  assert_string_equal(digest, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4"
                              "649b934ca495991b7852b855");
  vab_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_known_vectors),
      cmocka_unit_test(test_split_updates),
      cmocka_unit_test(test_file_matches_sha256sum),
      cmocka_unit_test(test_missing_file),
      cmocka_unit_test(test_buffer_digest),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
