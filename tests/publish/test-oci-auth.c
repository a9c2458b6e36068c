/* publish/auth: WWW-Authenticate challenges, credential files, token
 * answers; publish/base64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "vab/vab.h"
#include "publish/auth.h"
#include "publish/base64.h"
#include "publish/publish.h"

static void test_basic(void **state) {
  (void)state;
  struct auth_challenges ch = {0};
  assert_int_equal(auth_parse_challenges("Basic realm=\"basic-realm\"", &ch), 0);
  assert_int_equal(ch.n, 1);
  assert_string_equal(ch.items[0].scheme, "basic");
  assert_string_equal(auth_challenge_param(&ch.items[0], "realm"), "basic-realm");
  auth_challenges_release(&ch);
}

static void test_bearer_scope_with_commas(void **state) {
  (void)state;
  struct auth_challenges ch = {0};
  const char *h = "Bearer realm=\"https://auth.example/token\",service="
                  "\"reg.example\",scope=\"repository:ns/app:pull,push "
                  "repository:ns/other:pull\",error=\"insufficient_scope\"";
  assert_int_equal(auth_parse_challenges(h, &ch), 0);
  assert_int_equal(ch.n, 1);
  const struct auth_challenge *b = auth_find_challenge(&ch, "Bearer");
  assert_non_null(b);
  assert_int_equal(b->n_params, 4);
  assert_string_equal(auth_challenge_param(b, "realm"),
                      "https://auth.example/token");
  assert_string_equal(auth_challenge_param(b, "SERVICE"), "reg.example");
  assert_string_equal(auth_challenge_param(b, "scope"),
                      "repository:ns/app:pull,push repository:ns/other:pull");
  assert_string_equal(auth_challenge_param(b, "error"), "insufficient_scope");
  auth_challenges_release(&ch);
}

static void test_several_challenges(void **state) {
  (void)state;
  struct auth_challenges ch = {0};
  /* Two challenges in one header, a token68, escapes and odd spacing. */
  const char *h = "Newauth realm=\"apps\", type=1, title=\"Login to \\\"apps\\\"\", "
                  "Basic realm=simple ,  Negotiate abc+/def==";
  assert_int_equal(auth_parse_challenges(h, &ch), 0);
  assert_int_equal(ch.n, 3);
  assert_string_equal(ch.items[0].scheme, "newauth");
  assert_int_equal(ch.items[0].n_params, 3);
  assert_string_equal(auth_challenge_param(&ch.items[0], "type"), "1");
  assert_string_equal(auth_challenge_param(&ch.items[0], "title"),
                      "Login to \"apps\"");
  assert_string_equal(ch.items[1].scheme, "basic");
  assert_string_equal(auth_challenge_param(&ch.items[1], "realm"), "simple");
  assert_string_equal(ch.items[2].scheme, "negotiate");
  assert_int_equal(ch.items[2].n_params, 0);
  /* A second header parsed into the same list. */
  assert_int_equal(auth_parse_challenges("Bearer realm=\"r\"", &ch), 0);
  assert_int_equal(ch.n, 4);
  auth_challenges_release(&ch);
}

static void test_malformed(void **state) {
  (void)state;
  const char *bad[] = {
    "Basic realm=\"unterminated",
    "Basic realm=\"x\" garbage",
    "=x",
    "Bearer realm=\"a\",,\"b\"",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct auth_challenges ch = {0};
    assert_int_equal(auth_parse_challenges(bad[i], &ch), -1);
    auth_challenges_release(&ch);
  }
  struct auth_challenges empty = {0};
  assert_int_equal(auth_parse_challenges("  ,  ", &empty), 0);
  assert_int_equal(empty.n, 0);
}

static void lookup(const char *json, const char *host, int want_r,
                   bool want_found, const char *user, const char *password) {
  struct vab_ctx *ctx = vab_ctx_new();
  struct registry_creds c;
  memset(&c, 0, sizeof c);
  bool found = true;
  assert_int_equal(auth_creds_from_json(ctx, "auth.json", json, strlen(json),
                                        host, &c, &found),
                   want_r);
  assert_int_equal(found, want_found);
  if (user != NULL) {
    assert_string_equal(c.user, user);
    assert_string_equal(c.password, password);
    assert_string_equal(c.source, "auth.json");
  } else {
    assert_null(c.user);
  }
  registry_creds_release(&c);
  vab_ctx_free(ctx);
}

static void test_auth_json(void **state) {
  (void)state;
  /* base64("vab:pa:ss") = dmFiOnBhOnNz */
  lookup("{\"auths\":{\"reg:5000\":{\"auth\":\"dmFiOnBhOnNz\"}}}", "reg:5000",
         0, true, "vab", "pa:ss");
  lookup("{\"auths\":{\"https://reg:5000/v1/\":{\"auth\":\"dmFiOnBhOnNz\"}}}",
         "reg:5000", 0, true, "vab", "pa:ss");
  lookup("{\"auths\":{\"reg:5001\":{\"auth\":\"dmFiOnBhOnNz\"}}}", "reg:5000",
         0, false, NULL, NULL);
  lookup("{\"auths\":{\"reg\":{}}}", "reg", 0, false, NULL, NULL);
  lookup("{\"credsStore\":\"desktop\"}", "reg", 0, false, NULL, NULL);
  lookup("{\"auths\":{\"reg\":{\"auth\":\"bm9jb2xvbg==\"}}}", "reg", -1, false,
         NULL, NULL);
  lookup("{\"auths\":{\"reg\":{\"auth\":\"***\"}}}", "reg", -1, false, NULL,
         NULL);
  lookup("{\"auths\":[]}", "reg", -1, false, NULL, NULL);
  lookup("{\"auths\":", "reg", -1, false, NULL, NULL);

  struct vab_ctx *ctx = vab_ctx_new();
  struct registry_creds c;
  bool found = false;
  const char *json = "{\"auths\":{\"reg\":{\"identitytoken\":\"refresh\"}}}";
  assert_int_equal(auth_creds_from_json(ctx, "f", json, strlen(json), "reg",
                                        &c, &found),
                   0);
  assert_true(found);
  assert_null(c.user);
  assert_string_equal(c.identity_token, "refresh");
  registry_creds_release(&c);
  json = "{\"auths\":{\"reg\":{\"auth\":\"bm9jb2xvbg==\"}}}";
  assert_int_equal(auth_creds_from_json(ctx, "/x/auth.json", json,
                                        strlen(json), "reg", &c, &found),
                   -1);
  assert_string_equal(vab_last_error(ctx)->message,
                      "credential file '/x/auth.json': the \"auth\" entry for "
                      "reg is not base64 of USER:PASSWORD");
  vab_ctx_free(ctx);
}

static void test_find_order(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_registry_opts opts = {0};
  struct registry_creds c;
  char dir[] = "/tmp/vab-auth-test-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/auth.json", dir);
  FILE *f = fopen(path, "w");
  fputs("{\"auths\":{\"reg\":{\"auth\":\"dmFiOnBhOnNz\"}}}", f);
  fclose(f);

  unsetenv("VAB_REGISTRY_USER");
  unsetenv("VAB_REGISTRY_PASSWORD");
  setenv("HOME", dir, 1);
  unsetenv("XDG_RUNTIME_DIR");
  unsetenv("XDG_CONFIG_HOME");
  unsetenv("DOCKER_CONFIG");
  unsetenv("REGISTRY_AUTH_FILE");
  assert_int_equal(auth_find_creds(ctx, &opts, "reg", &c), 0);
  assert_null(c.user);  /* anonymous */

  opts.authfile = path;
  assert_int_equal(auth_find_creds(ctx, &opts, "reg", &c), 0);
  assert_string_equal(c.user, "vab");
  assert_string_equal(c.source, path);
  registry_creds_release(&c);

  setenv("VAB_REGISTRY_USER", "env", 1);
  setenv("VAB_REGISTRY_PASSWORD", "envpw", 1);
  assert_int_equal(auth_find_creds(ctx, &opts, "reg", &c), 0);
  assert_string_equal(c.user, "env");
  assert_string_equal(c.password, "envpw");
  registry_creds_release(&c);

  opts.creds = "cli:pw:with:colons";
  assert_int_equal(auth_find_creds(ctx, &opts, "reg", &c), 0);
  assert_string_equal(c.user, "cli");
  assert_string_equal(c.password, "pw:with:colons");
  assert_string_equal(c.source, "--creds");
  registry_creds_release(&c);

  opts.creds = "nocolon";
  assert_int_equal(auth_find_creds(ctx, &opts, "reg", &c), -1);
  assert_string_equal(vab_last_error(ctx)->message,
                      "--creds wants USER:PASSWORD");
  opts.creds = NULL;
  unsetenv("VAB_REGISTRY_PASSWORD");
  assert_int_equal(auth_find_creds(ctx, &opts, "reg", &c), -1);
  assert_string_equal(vab_last_error(ctx)->message,
                      "VAB_REGISTRY_USER is set but VAB_REGISTRY_PASSWORD is not");
  unsetenv("VAB_REGISTRY_USER");

  /* $XDG_RUNTIME_DIR/containers/auth.json is found without --authfile. */
  opts.authfile = NULL;
  char sub[256];
  snprintf(sub, sizeof sub, "%s/containers", dir);
  assert_int_equal(mkdir(sub, 0700), 0);
  char moved[300];
  snprintf(moved, sizeof moved, "%s/auth.json", sub);
  assert_int_equal(rename(path, moved), 0);
  setenv("XDG_RUNTIME_DIR", dir, 1);
  assert_int_equal(auth_find_creds(ctx, &opts, "reg", &c), 0);
  assert_string_equal(c.user, "vab");
  assert_string_equal(c.source, moved);
  registry_creds_release(&c);
  unlink(moved);
  rmdir(sub);
  rmdir(dir);
  vab_ctx_free(ctx);
}

static void test_token_response(void **state) {
  (void)state;
  char *token = NULL;
  long expires = 0;
  const char *a = "{\"token\":\"abc\",\"expires_in\":300}";
  assert_int_equal(auth_parse_token_response(a, strlen(a), &token, &expires), 0);
  assert_string_equal(token, "abc");
  assert_int_equal(expires, 300);
  free(token);
  const char *b = "{\"access_token\":\"xyz\"}";
  assert_int_equal(auth_parse_token_response(b, strlen(b), &token, &expires), 0);
  assert_string_equal(token, "xyz");
  assert_int_equal(expires, 60);
  free(token);
  const char *c = "{\"token\":\"\"}";
  assert_int_equal(auth_parse_token_response(c, strlen(c), &token, &expires), -1);
  assert_null(token);
  assert_int_equal(auth_parse_token_response("nope", 4, &token, &expires), -1);
}

static void test_base64(void **state) {
  (void)state;
  const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                       "Zm9vYmFy"};
  for (size_t i = 0; i < 7; i++) {
    char *e = base64_encode(plain[i], strlen(plain[i]));
    assert_string_equal(e, enc[i]);
    free(e);
    uint8_t *d = NULL;
    size_t len = 0;
    assert_int_equal(base64_decode(enc[i], &d, &len), 0);
    assert_int_equal(len, strlen(plain[i]));
    assert_memory_equal(d, plain[i], len);
    free(d);
  }
  uint8_t *d = NULL;
  size_t len = 0;
  assert_int_equal(base64_decode("Zg=", &d, &len), -1);
  assert_int_equal(base64_decode("Z=g=", &d, &len), -1);
  assert_int_equal(base64_decode("Zm9v\n", &d, &len), -1);
  assert_int_equal(base64_decode("=Zm9", &d, &len), -1);
  /* Non-zero bits under the padding: "YEm=" would decode like "YEk=". */
  assert_int_equal(base64_decode("Zm9vYEm=", &d, &len), -1);
  assert_int_equal(base64_decode("Zh==", &d, &len), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_basic),
    cmocka_unit_test(test_bearer_scope_with_commas),
    cmocka_unit_test(test_several_challenges),
    cmocka_unit_test(test_malformed),
    cmocka_unit_test(test_auth_json),
    cmocka_unit_test(test_find_order),
    cmocka_unit_test(test_token_response),
    cmocka_unit_test(test_base64),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
