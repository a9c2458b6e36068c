/* publish/oci, containerdisk, cosign: layer titles, manifests out and in,
 * the containerDisk tar headers and the cosign payload. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vab/vab.h"
#include "publish/containerdisk.h"
#include "publish/cosign.h"
#include "publish/oci.h"

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_titles(void **state) {
  (void)state;
  assert_true(oci_title_valid("web-1.0.qcow2"));
  assert_true(oci_title_valid("web 1.0 (final).ova"));
  assert_true(oci_title_valid("a..b"));
  const char *bad[] = {"", ".", "..", "../x", "/x", "a/b", "a\\b", ".hidden",
                       "x/..", "tab\there", "new\nline"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_false(oci_title_valid(bad[i]));
  char longname[300];
  memset(longname, 'a', 256);
  longname[256] = '\0';
  assert_false(oci_title_valid(longname));
  longname[255] = '\0';
  assert_true(oci_title_valid(longname));
}

static void test_media_types(void **state) {
  (void)state;
  assert_string_equal(oci_media_type_for_format("qcow2"),
                      "application/vnd.vab.disk.qcow2");
  assert_string_equal(oci_media_type_for_format("ova"), "application/vnd.vab.ova");
  assert_string_equal(oci_media_type_for_format("iso"), "application/vnd.vab.file");
}

static void test_build_and_parse(void **state) {
  (void)state;
  struct oci_manifest m = {0};
  m.artifact_type = strdup(VAB_ARTIFACT_TYPE);
  assert_int_equal(oci_set_config(&m.config, OCI_EMPTY_TYPE, OCI_EMPTY_DIGEST, 2), 0);
  struct oci_descriptor *d =
      oci_add_layer(&m, "application/vnd.vab.disk.qcow2", "sha256:" D64, 42);
  assert_non_null(d);
  assert_int_equal(oci_annotate(&d->annotations, OCI_TITLE,
                                "a \"q\".qcow2"), 0);
  assert_int_equal(oci_annotate(&m.annotations,
                                "org.opencontainers.image.version", "1.0"), 0);
  char *json = oci_manifest_to_json(&m);
  assert_string_equal(json,
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
    "\"artifactType\":\"application/vnd.vab.appliance.v1\","
    "\"config\":{\"mediaType\":\"application/vnd.oci.empty.v1+json\",\"digest\":"
    "\"" OCI_EMPTY_DIGEST "\",\"size\":2},"
    "\"layers\":[{\"mediaType\":\"application/vnd.vab.disk.qcow2\",\"digest\":"
    "\"sha256:" D64 "\",\"size\":42,\"annotations\":{\"org.opencontainers.image.title\":"
    "\"a \\\"q\\\".qcow2\"}}],"
    "\"annotations\":{\"org.opencontainers.image.version\":\"1.0\"}}");
  struct vab_ctx *ctx = vab_ctx_new();
  struct oci_manifest back;
  assert_int_equal(oci_manifest_parse(ctx, "ref", json, strlen(json), &back), 0);
  assert_string_equal(back.artifact_type, VAB_ARTIFACT_TYPE);
  assert_int_equal(back.n_layers, 1);
  assert_int_equal(back.layers[0].size, 42);
  assert_string_equal(oci_annotation_get(&back.layers[0], OCI_TITLE), "a \"q\".qcow2");
  char *again = oci_manifest_to_json(&back);
  assert_string_equal(again, json);
  free(again);
  oci_manifest_release(&back);
  oci_manifest_release(&m);
  free(json);
  vab_ctx_free(ctx);
}

static void refused(const char *json, const char *message) {
  struct vab_ctx *ctx = vab_ctx_new();
  struct oci_manifest m;
  assert_int_equal(oci_manifest_parse(ctx, "r", json, strlen(json), &m), -1);
  assert_string_equal(vab_last_error(ctx)->message, message);
  vab_ctx_free(ctx);
}

#define CFG "\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:" D64 "\",\"size\":2}"

static void test_refused(void **state) {
  (void)state;
  refused("[]", "r: not an OCI manifest (schemaVersion 2)");
  refused("{\"schemaVersion\":1}", "r: not an OCI manifest (schemaVersion 2)");
  refused("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
          "\"manifests\":[]}",
          "r is an image index, not a vab appliance artifact");
  refused("{\"schemaVersion\":2,\"mediaType\":\"text/plain\"}",
          "r: unknown manifest type 'text/plain'");
  refused("{\"schemaVersion\":2,\"layers\":[]}", "r: the config is not a descriptor object");
  refused("{\"schemaVersion\":2," CFG "}", "r: \"layers\" is not a list");
  refused("{\"schemaVersion\":2," CFG ",\"layers\":[{\"mediaType\":\"x\",\"digest\":"
          "\"sha256:abc\",\"size\":1}]}",
          "r: layer 1 has no sha256 \"digest\" vab can check");
  refused("{\"schemaVersion\":2," CFG ",\"layers\":[{\"mediaType\":\"x\",\"digest\":"
          "\"sha256:" D64 "\",\"size\":-1}]}",
          "r: layer 1 has no valid \"size\"");
  refused("{\"schemaVersion\":2," CFG ",\"layers\":[{\"mediaType\":\"x\",\"digest\":"
          "\"sha256:" D64 "\",\"size\":1,\"annotations\":{\"a\":1}}]}",
          "r: annotation \"a\" is not a string");
  refused("{\"schemaVersion\":2,", "r: manifest is not valid JSON: expected a string at byte 19");
}

static void test_containerdisk_tar(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  uint8_t *head = NULL, *tail = NULL;
  size_t head_len = 0, tail_len = 0;
  assert_int_equal(containerdisk_tar(ctx, "web.qcow2", 1000, 1700000000, &head,
                                     &head_len, &tail, &tail_len), 0);
  assert_int_equal(head_len, 1024);
  assert_int_equal(tail_len, 24 + 1024);  /* pad 1000 to 1024, then 2 blocks */
  assert_string_equal((char *)head, "disk/");
  assert_int_equal(head[156], '5');
  assert_string_equal((char *)head + 512, "disk/web.qcow2");
  assert_string_equal((char *)head + 512 + 100, "0000444");
  assert_string_equal((char *)head + 512 + 108, "0000153");  /* 107 */
  assert_string_equal((char *)head + 512 + 116, "0000153");
  assert_string_equal((char *)head + 512 + 124, "00000001750");  /* 1000 */
  assert_memory_equal(head + 512 + 257, "ustar\0" "00", 8);
  /* The checksum: the sum of the header's bytes, its own field as spaces. */
  for (int block = 0; block < 2; block++) {
    const uint8_t *h = head + 512 * block;
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
      sum += (i >= 148 && i < 156) ? ' ' : h[i];
    char want[8];
    snprintf(want, sizeof want, "%06o", sum);
    assert_string_equal((const char *)h + 148, want);
  }
  for (size_t i = 0; i < tail_len; i++)
    assert_int_equal(tail[i], 0);
  free(head);
  free(tail);
  /* 8 GiB and more: a PAX size record. */
  assert_int_equal(containerdisk_tar(ctx, "big.qcow2", 10ull << 30, 0, &head,
                                     &head_len, &tail, &tail_len), 0);
  assert_int_equal(head_len, 4 * 512);
  assert_int_equal(head[512 + 156], 'x');
  assert_string_equal((char *)head + 1024, "20 size=10737418240\n");
  assert_int_equal(tail_len, 1024);
  free(head);
  free(tail);
  /* A name ustar cannot hold: a PAX record "130 path=disk/NAME\n". */
  char name[116];
  memset(name, 'n', 109);
  memcpy(name + 109, ".qcow2", 7);
  assert_int_equal(containerdisk_tar(ctx, name, 512, 0, &head, &head_len,
                                     &tail, &tail_len), 0);
  assert_int_equal(head_len, 4 * 512);
  char want[200];
  snprintf(want, sizeof want, "130 path=disk/%s\n", name);
  assert_string_equal((char *)head + 1024, want);
  assert_int_equal(tail_len, 1024);
  free(head);
  free(tail);
  vab_ctx_free(ctx);
}

static void test_cosign(void **state) {
  (void)state;
  char *p = cosign_payload("reg:5000/team/web", "sha256:" D64);
  assert_string_equal(p,
    "{\"critical\":{\"identity\":{\"docker-reference\":\"reg:5000/team/web\"},"
    "\"image\":{\"docker-manifest-digest\":\"sha256:" D64 "\"},"
    "\"type\":\"cosign container image signature\"},\"optional\":null}");
  free(p);
  char tag[80];
  cosign_tag("sha256:" D64, tag);
  assert_string_equal(tag, "sha256-" D64 ".sig");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_titles),
    cmocka_unit_test(test_media_types),
    cmocka_unit_test(test_build_and_parse),
    cmocka_unit_test(test_refused),
    cmocka_unit_test(test_containerdisk_tar),
    cmocka_unit_test(test_cosign),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
