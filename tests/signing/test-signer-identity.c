/* signing/ vab_signer_identity(): what a signed OVA's cache entry is keyed
 * by.  The same key (and certificate) gives the same identity on every
 * load; another key, or the same key without its certificate, another. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "signing/signing.h"
#include "vab/error.h"

static void identity(struct vab_ctx *ctx, const char *name, bool with_cert,
                     char out[65]) {
  char key[300], crt[300];
  snprintf(key, sizeof key, "%s.key", name);
  snprintf(crt, sizeof crt, "%s.crt", name);
  struct vab_signer *s = NULL;
  assert_int_equal(vab_signer_load(ctx, key, with_cert ? crt : NULL, NULL, &s),
                   0);
  assert_int_equal(vab_signer_identity(ctx, s, out), 0);
  vab_signer_free(s);
  assert_int_equal(strlen(out), 64);
  assert_int_equal(strspn(out, "0123456789abcdef"), 64);
}

static void test_identity(void **state) {
  (void)state;
  char dir[] = "/tmp/vab-test-identity-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char a[200], b[200];
  snprintf(a, sizeof a, "%s/a", dir);
  snprintf(b, sizeof b, "%s/b", dir);
  struct vab_ctx *ctx = vab_ctx_new();
  assert_non_null(ctx);
  struct vab_keygen_opts opts = {.type = VAB_KEY_ECDSA_P256};
  assert_int_equal(vab_keygen(ctx, a, &opts), 0);
  assert_int_equal(vab_keygen(ctx, b, &opts), 0);
  char a1[65], a2[65], a_bare[65], b1[65];
  identity(ctx, a, true, a1);
  identity(ctx, a, true, a2);
  identity(ctx, a, false, a_bare);
  identity(ctx, b, true, b1);
  assert_string_equal(a1, a2);
  assert_string_not_equal(a1, b1);
  assert_string_not_equal(a1, a_bare);
  vab_ctx_free(ctx);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_identity)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
