/* publish/redact: credentials masked in text from a registry, control
 * characters replaced, length capped; the error body parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "publish/redact.h"

/* What vab keeps for user vab, password "s3cr:et/x": user:password, its
 * base64, the password, URL-encoded, and a bearer token. */
static const char *const secrets[] = {
    "vab:s3cr:et/x", "dmFiOnMzY3I6ZXQveA==", "s3cr:et/x", "s3cr%3Aet%2Fx",
    "tok-12345", NULL, "",
};
#define N_SECRETS (sizeof secrets / sizeof secrets[0])

static void redact(const char *in, char *out, size_t len) {
  redact_text(in, strlen(in), secrets, N_SECRETS, out, len);
}

static void test_every_form_masked(void **state) {
  (void)state;
  char out[512];
  redact("Authorization: Basic dmFiOnMzY3I6ZXQveA== from vab:s3cr:et/x, "
         "password s3cr:et/x or s3cr%3Aet%2Fx, Bearer tok-12345",
         out, sizeof out);
  assert_string_equal(out, "Authorization: Basic [redacted] from [redacted], "
                           "password [redacted] or [redacted], Bearer "
                           "[redacted]");
}

static void test_longest_match_wins(void **state) {
  (void)state;
  char out[128];
  /* "vab:s3cr:et/x" contains the password: one mask, not "vab:[redacted]". */
  redact("vab:s3cr:et/x", out, sizeof out);
  assert_string_equal(out, "[redacted]");
  redact("xs3cr:et/xs3cr:et/x", out, sizeof out);
  assert_string_equal(out, "x[redacted][redacted]");
}

static void test_control_characters(void **state) {
  (void)state;
  char out[128];
  redact("\x1b[31mred\x1b[0m\r\n\a\x7f\xc3\xa9 ok", out, sizeof out);
  assert_string_equal(out, "?[31mred?[0m?????? ok");
}

static void test_cap_never_shows_part_of_a_secret(void **state) {
  (void)state;
  char out[24];
  /* 20 characters then the password: the cut falls inside it, and must
   * show neither its first bytes nor half a mask. */
  redact("01234567890123456789s3cr:et/x", out, sizeof out);
  assert_string_equal(out, "01234567890123456789...");
  redact("0123456789012s3cr:et/x tail", out, sizeof out);
  assert_string_equal(out, "0123456789012...");
  assert_int_equal(strlen(out), 16);
  redact("0123456789 s3cr:et/x tail", out, sizeof out);
  assert_string_equal(out, "0123456789 ...");  /* the mask would be cut */
  redact("012345678 s3cr:et/x tail", out, sizeof out);
  assert_string_equal(out, "012345678 [redacted]...");
  assert_int_equal(strlen(out), sizeof out - 1);
  /* Tiny buffers stay NUL-terminated. */
  char tiny[3];
  redact("abcdef", tiny, sizeof tiny);
  assert_string_equal(tiny, "..");
  char one[1];
  redact("abcdef", one, sizeof one);
  assert_string_equal(one, "");
}

static void test_no_secrets(void **state) {
  (void)state;
  char out[64];
  redact_text("plain text", 10, NULL, 0, out, sizeof out);
  assert_string_equal(out, "plain text");
  /* Input with a NUL in it: the length counts, the NUL is replaced. */
  redact_text("a\0b", 3, secrets, N_SECRETS, out, sizeof out);
  assert_string_equal(out, "a?b");
}

static void test_error_body_json(void **state) {
  (void)state;
  char out[300];
  const char *body = "{\"errors\":[{\"code\":\"DENIED\",\"message\":\"you "
                     "sent Basic dmFiOnMzY3I6ZXQveA==\\u001b[2J, i.e. "
                     "s3cr:et/x\"}]}";
  redact_error_body(body, strlen(body), secrets, N_SECRETS, out, sizeof out);
  assert_string_equal(out, " (DENIED: you sent Basic [redacted]?[2J, i.e. "
                           "[redacted])");
  /* A JSON escape cannot hide the password: it is decoded first. */
  body = "{\"errors\":[{\"code\":\"X\",\"message\":\"s3cr\\u003aet\\/x\"}]}";
  redact_error_body(body, strlen(body), secrets, N_SECRETS, out, sizeof out);
  assert_string_equal(out, " (X: [redacted])");
  body = "{\"errors\":[{\"message\":\"m\"}]}";
  redact_error_body(body, strlen(body), secrets, N_SECRETS, out, sizeof out);
  assert_string_equal(out, " (error: m)");
}

static void test_error_body_text(void **state) {
  (void)state;
  char out[300];
  const char *body = "404 page not found tok-12345\r\nsecond line";
  redact_error_body(body, strlen(body), secrets, N_SECRETS, out, sizeof out);
  assert_string_equal(out, " (404 page not found [redacted]?)");
  redact_error_body("", 0, secrets, N_SECRETS, out, sizeof out);
  assert_string_equal(out, "");
  /* A long body is capped, and the brackets stay. */
  char big[5000];
  memset(big, 'A', sizeof big);
  memcpy(big + 4000, "s3cr:et/x", 9);
  char small[40];
  redact_error_body(big, sizeof big, secrets, N_SECRETS, small, sizeof small);
  assert_int_equal(strlen(small), sizeof small - 1);
  assert_memory_equal(small, " (AAAA", 6);
  assert_string_equal(small + strlen(small) - 4, "...)");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_every_form_masked),
    cmocka_unit_test(test_longest_match_wins),
    cmocka_unit_test(test_control_characters),
    cmocka_unit_test(test_cap_never_shows_part_of_a_secret),
    cmocka_unit_test(test_no_secrets),
    cmocka_unit_test(test_error_body_json),
    cmocka_unit_test(test_error_body_text),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
