/* signing/manifest: canonical JSON, round trip, hostile manifests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vab/vab.h"
#include "signing/manifest.h"

static const char sha_a[] =
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

static void test_round_trip(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_manifest_artifact arts[2] = {
    {"web-1.0.qcow2", "qcow2", NULL, 123, ""},
    {"web-1.0-vmware.ova", "ova", "vmware", 9000000000ULL, ""},
  };
  memcpy(arts[0].sha256, sha_a, 65);
  memcpy(arts[1].sha256, sha_a, 65);
  struct vab_manifest m = {"web", "1.0", "sha256:abc", "0.1.0", 1700000000,
                           arts, 2};
  char *text = vab_manifest_to_json(ctx, &m);
  assert_non_null(text);
  assert_non_null(strstr(text, "\"build_time\": \"2023-11-14T22:13:20Z\""));
  assert_non_null(strstr(text, "\"target\": null"));
  struct vab_manifest back;
  assert_int_equal(vab_manifest_parse(ctx, "m.json", text, strlen(text), &back), 0);
  assert_string_equal(back.name, "web");
  assert_int_equal(back.build_time, 1700000000);
  assert_int_equal(back.n_artifacts, 2);
  assert_null(back.artifacts[0].target);
  assert_string_equal(back.artifacts[1].target, "vmware");
  assert_int_equal(back.artifacts[1].size, 9000000000ULL);
  char *again = vab_manifest_to_json(ctx, &back);
  assert_string_equal(text, again);
  free(text);
  free(again);
  vab_manifest_release(&back);
  vab_ctx_free(ctx);
}

static void expect_refused(const char *artifact_json, const char *message) {
  struct vab_ctx *ctx = vab_ctx_new();
  char text[1024];
  snprintf(text, sizeof text,
           "{\"schema\":\"vab.manifest/v1\",\"name\":\"w\",\"version\":\"1\","
           "\"vab_version\":\"0\",\"template_digest\":\"sha256:x\","
           "\"build_time\":\"2024-01-01T00:00:00Z\",\"artifacts\":[%s]}",
           artifact_json);
  struct vab_manifest m;
  assert_int_equal(vab_manifest_parse(ctx, "m.json", text, strlen(text), &m), -1);
  const struct vab_diag *d = vab_last_error(ctx);
  assert_non_null(d);
  if (strstr(d->message, message) == NULL)
    fail_msg("got '%s', wanted '%s'", d->message, message);
  vab_ctx_free(ctx);
}

static void test_hostile_artifacts(void **state) {
  (void)state;
  char ok[256];
  snprintf(ok, sizeof ok,
           "{\"name\":\"a.raw\",\"format\":\"raw\",\"size\":1,\"sha256\":\"%s\"}",
           sha_a);
  char two[600];
  snprintf(two, sizeof two, "%s,%s", ok, ok);
  expect_refused(two, "artifact 'a.raw' is listed twice");
  expect_refused("{\"name\":\"../x\",\"format\":\"raw\",\"size\":1}",
                 "artifact name '../x' is not a plain file name");
  expect_refused("{\"name\":\"a/b\",\"format\":\"raw\",\"size\":1}",
                 "is not a plain file name");
  expect_refused("{\"name\":\"a\",\"format\":\"raw\",\"size\":-1}",
                 "artifact 'a' has no valid \"size\"");
  expect_refused("{\"name\":\"a\",\"format\":\"raw\",\"size\":1,\"sha256\":\"XYZ\"}",
                 "artifact 'a' has no valid \"sha256\"");
  expect_refused("7", "artifact 1 is not an object");
}

static void test_not_a_manifest(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_manifest m;
  const char *t = "{\"schema\":\"other\"}";
  assert_int_equal(vab_manifest_parse(ctx, "m.json", t, strlen(t), &m), -1);
  assert_string_equal(vab_last_error(ctx)->message,
                      "'m.json' is not a vab build manifest (schema "
                      "vab.manifest/v1 expected)");
  t = "{\"schema\":";
  assert_int_equal(vab_manifest_parse(ctx, "m.json", t, strlen(t), &m), -1);
  assert_string_equal(vab_last_error(ctx)->message,
                      "manifest 'm.json' is not valid JSON: unexpected end of "
                      "input at byte 10");
  vab_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_round_trip),
    cmocka_unit_test(test_hostile_artifacts),
    cmocka_unit_test(test_not_a_manifest),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
