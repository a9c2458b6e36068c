/* publish/ref: registry references and their grammar. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vab/vab.h"
#include "publish/ref.h"

static void parses(const char *text, const char *host, const char *repo,
                   const char *tag, const char *digest) {
  struct vab_ctx *ctx = vab_ctx_new();
  struct oci_ref ref;
  assert_int_equal(oci_ref_parse(ctx, text, &ref), 0);
  assert_string_equal(ref.host, host);
  assert_string_equal(ref.repo, repo);
  if (tag == NULL)
    assert_null(ref.tag);
  else
    assert_string_equal(ref.tag, tag);
  if (digest == NULL)
    assert_null(ref.digest);
  else
    assert_string_equal(ref.digest, digest);
  oci_ref_release(&ref);
  assert_int_equal(vab_diag_count(ctx), 0);
  vab_ctx_free(ctx);
}

static void refused(const char *text, const char *message) {
  struct vab_ctx *ctx = vab_ctx_new();
  struct oci_ref ref;
  assert_int_equal(oci_ref_parse(ctx, text, &ref), -1);
  assert_null(ref.host);
  const struct vab_diag *d = vab_last_error(ctx);
  assert_non_null(d);
  assert_int_equal(d->code, VAB_E_USAGE);
  assert_string_equal(d->message, message);
  vab_ctx_free(ctx);
}

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_valid(void **state) {
  (void)state;
  parses("reg.example/web", "reg.example", "web", NULL, NULL);
  parses("127.0.0.1:5000/team/web:1.0", "127.0.0.1:5000", "team/web", "1.0",
         NULL);
  parses("localhost:5000/a/b/c:v1.2-rc_3", "localhost:5000", "a/b/c",
         "v1.2-rc_3", NULL);
  parses("reg.example/web@sha256:" D64, "reg.example", "web", NULL,
         "sha256:" D64);
  parses("reg.example/web:1@sha256:" D64, "reg.example", "web", "1",
         "sha256:" D64);
  parses("[::1]:5000/web:x", "[::1]:5000", "web", "x", NULL);
  parses("reg/a__b.c-d---e/f:_t", "reg", "a__b.c-d---e/f", "_t", NULL);
}

static void test_invalid(void **state) {
  (void)state;
  refused("web:1.0", "reference 'web:1.0' has no registry host; write "
                     "HOST[:PORT]/REPO[:TAG]");
  refused("/web", "reference '/web' has no registry host; write "
                  "HOST[:PORT]/REPO[:TAG]");
  refused("reg:99999/web", "reference 'reg:99999/web': 'reg:99999' is not a "
                           "registry host[:port]");
  refused("re g/web", "reference 're g/web': 're g' is not a registry "
                      "host[:port]");
  refused("reg/Web", "reference 'reg/Web': repository 'Web' is not valid "
                     "(lowercase letters, digits and . _ - separators, '/' "
                     "between parts)");
  refused("reg/a//b", "reference 'reg/a//b': repository 'a//b' is not valid "
                      "(lowercase letters, digits and . _ - separators, '/' "
                      "between parts)");
  refused("reg/a..b", "reference 'reg/a..b': repository 'a..b' is not valid "
                      "(lowercase letters, digits and . _ - separators, '/' "
                      "between parts)");
  refused("reg/a___b", "reference 'reg/a___b': repository 'a___b' is not "
                       "valid (lowercase letters, digits and . _ - "
                       "separators, '/' between parts)");
  refused("reg/web:.x", "reference 'reg/web:.x': tag '.x' is not valid (at "
                        "most 128 of A-Z a-z 0-9 . _ -, not starting with . "
                        "or -)");
  refused("reg/web:", "reference 'reg/web:': tag '' is not valid (at most "
                      "128 of A-Z a-z 0-9 . _ -, not starting with . or -)");
  refused("reg/web@sha256:abc", "reference 'reg/web@sha256:abc': digest "
                                "'sha256:abc' is not sha256:<64 hex digits>");
  refused("reg/web@md5:" D64, "reference 'reg/web@md5:" D64 "': digest 'md5:"
                              D64 "' is not sha256:<64 hex digits>");
}

static void test_tag_length(void **state) {
  (void)state;
  char tag[130];
  memset(tag, 'a', 128);
  tag[128] = '\0';
  assert_true(oci_tag_valid(tag));
  tag[128] = 'a';
  tag[129] = '\0';
  assert_false(oci_tag_valid(tag));
}

static void test_loopback(void **state) {
  (void)state;
  assert_true(oci_host_is_loopback("localhost"));
  assert_true(oci_host_is_loopback("localhost:5000"));
  assert_true(oci_host_is_loopback("127.0.0.1:5000"));
  assert_true(oci_host_is_loopback("127.1.2.3"));
  assert_true(oci_host_is_loopback("[::1]:5000"));
  assert_false(oci_host_is_loopback("127.evil.example"));
  assert_false(oci_host_is_loopback("localhost.example"));
  assert_false(oci_host_is_loopback("10.0.0.1"));
  assert_false(oci_host_is_loopback("[::2]:5000"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_valid),
    cmocka_unit_test(test_invalid),
    cmocka_unit_test(test_tag_length),
    cmocka_unit_test(test_loopback),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
