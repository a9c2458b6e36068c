/* The boot test's http and tcp probes (builder/probe.c) against a tiny
 * server on 127.0.0.1 (tests/lib/tcp-server.h): no VM.  Timeouts are
 * short, so a probe that waits too long fails the test by taking
 * seconds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "builder/probe.h"
#include "ctx-fixture.h"
#include "tcp-server.h"
#include "common/clock.h"
#include "vab/error.h"

#define ATTEMPT_MS 300

static void http_attempt(struct vab_ctx *ctx, uint16_t port,
                         const char *want_text, struct probe_outcome *o) {
  struct probe_http_request req = {
      .port = port, .path = "index.html", .want_status = 200,
      .want_text = want_text, .max_response = 65536,
      .attempt_ms = ATTEMPT_MS,
  };
  probe_http(ctx, &req, now_seconds() + ATTEMPT_MS / 1000.0, o);
}

static void test_http_200(void **state) {
  struct vab_ctx *ctx = *state;
  struct test_server s;
  test_server_start(&s,
               "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"
               "<h1>Welcome to vab</h1>\n",
               true);
  struct probe_outcome o;
  http_attempt(ctx, s.port, "Welcome", &o);
  test_server_stop(&s);
  assert_true(o.passed);
  assert_true(o.answered);
  assert_int_equal(o.http_status, 200);
  /* The request the server got: HTTP/1.0, the path made absolute. */
  assert_memory_equal(s.request, "GET /index.html HTTP/1.0\r\n", 26);
  char host[64];
  snprintf(host, sizeof host, "\r\nHost: 127.0.0.1:%u\r\n", s.port);
  assert_non_null(strstr(s.request, host));
}

static void test_http_500(void **state) {
  struct vab_ctx *ctx = *state;
  struct test_server s;
  test_server_start(&s, "HTTP/1.0 500 Internal Server Error\r\n\r\noops", true);
  struct probe_outcome o;
  http_attempt(ctx, s.port, NULL, &o);
  test_server_stop(&s);
  assert_false(o.passed);
  assert_false(o.timed_out);
  assert_true(o.answered);
  assert_int_equal(o.http_status, 500);
  assert_string_equal(o.seen, "status 500, body 'oops'");
}

static void test_http_wrong_body(void **state) {
  struct vab_ctx *ctx = *state;
  struct test_server s;
  test_server_start(&s, "HTTP/1.0 200 OK\r\n\r\nIt works!\n", true);
  struct probe_outcome o;
  http_attempt(ctx, s.port, "Welcome", &o);
  test_server_stop(&s);
  assert_false(o.passed);
  assert_int_equal(o.http_status, 200);
  assert_string_equal(o.seen, "status 200, body 'It works! '");
}

static void test_http_not_http(void **state) {
  struct vab_ctx *ctx = *state;
  struct test_server s;
  test_server_start(&s, "SSH-2.0-OpenSSH_9.2\r\n", true);
  struct probe_outcome o;
  http_attempt(ctx, s.port, NULL, &o);
  test_server_stop(&s);
  assert_false(o.passed);
  assert_false(o.answered);
  assert_string_equal(o.seen,
                      "a response that is not HTTP: 'SSH-2.0-OpenSSH_9.2  '");
}

static void test_http_refused(void **state) {
  struct vab_ctx *ctx = *state;
  struct probe_outcome o;
  http_attempt(ctx, test_closed_port(), NULL, &o);
  assert_false(o.passed);
  assert_false(o.timed_out);
  assert_string_equal(o.seen, "connection failed: Connection refused");
}

static void test_http_silent_server_times_out(void **state) {
  struct vab_ctx *ctx = *state;
  struct test_server s;
  test_server_start(&s, NULL, true);
  struct probe_outcome o;
  double start = now_seconds();
  http_attempt(ctx, s.port, NULL, &o);
  double took = now_seconds() - start;
  test_server_stop(&s);
  assert_false(o.passed);
  assert_true(o.timed_out);
  assert_false(o.answered);
  assert_string_equal(o.seen, "no response within the attempt's 0.3 s");
  assert_true(took >= 0.25 && took < 2.0);
}

static void test_http_closed_without_response(void **state) {
  struct vab_ctx *ctx = *state;
  struct test_server s;
  test_server_start(&s, "", true);
  struct probe_outcome o;
  http_attempt(ctx, s.port, NULL, &o);
  test_server_stop(&s);
  assert_false(o.passed);
  assert_false(o.timed_out);
  assert_string_equal(o.seen, "connection closed without a response "
                              "(nothing listening yet?)");
}

static void test_tcp_banner(void **state) {
  struct vab_ctx *ctx = *state;
  struct test_server s;
  test_server_start(&s, "SSH-2.0-OpenSSH_9.2\r\n", false);
  struct probe_outcome o;
  probe_tcp(ctx, s.port, 22, ATTEMPT_MS, now_seconds() + 0.3, &o);
  test_server_stop(&s);
  assert_true(o.passed);
}

static void test_tcp_closed_without_data(void **state) {
  struct vab_ctx *ctx = *state;
  struct test_server s;
  test_server_start(&s, "", false);
  struct probe_outcome o;
  probe_tcp(ctx, s.port, 22, ATTEMPT_MS, now_seconds() + 0.3, &o);
  test_server_stop(&s);
  assert_false(o.passed);
  assert_false(o.timed_out);
  assert_string_equal(o.seen, "connection closed by the guest without data "
                              "(nothing listening on guest port 22?)");
}

static void test_tcp_silent_server_times_out(void **state) {
  struct vab_ctx *ctx = *state;
  struct test_server s;
  test_server_start(&s, NULL, false);
  struct probe_outcome o;
  double start = now_seconds();
  probe_tcp(ctx, s.port, 22, ATTEMPT_MS, now_seconds() + 0.3, &o);
  double took = now_seconds() - start;
  test_server_stop(&s);
  assert_false(o.passed);
  assert_true(o.timed_out);
  assert_non_null(strstr(o.seen, "connected, but no data within 0.3 s"));
  assert_true(took >= 0.25 && took < 2.0);
}

static void test_tcp_refused(void **state) {
  struct vab_ctx *ctx = *state;
  struct probe_outcome o;
  probe_tcp(ctx, test_closed_port(), 22, ATTEMPT_MS, now_seconds() + 0.3, &o);
  assert_false(o.passed);
  assert_string_equal(o.seen, "connection failed: Connection refused");
}

/* A cancelled build stops waiting at once. */
static void test_cancel_ends_the_wait(void **state) {
  struct vab_ctx *ctx = *state;
  struct test_server s;
  test_server_start(&s, NULL, false);
  vab_ctx_cancel(ctx);
  struct probe_outcome o;
  double start = now_seconds();
  probe_tcp(ctx, s.port, 22, 5000, now_seconds() + 5.0, &o);
  double took = now_seconds() - start;
  test_server_stop(&s);
  assert_false(o.passed);
  assert_true(took < 1.0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    TEST_WITH_CTX(test_http_200),
    TEST_WITH_CTX(test_http_500),
    TEST_WITH_CTX(test_http_wrong_body),
    TEST_WITH_CTX(test_http_not_http),
    TEST_WITH_CTX(test_http_refused),
    TEST_WITH_CTX(test_http_silent_server_times_out),
    TEST_WITH_CTX(test_http_closed_without_response),
    TEST_WITH_CTX(test_tcp_banner),
    TEST_WITH_CTX(test_tcp_closed_without_data),
    TEST_WITH_CTX(test_tcp_silent_server_times_out),
    TEST_WITH_CTX(test_tcp_refused),
    TEST_WITH_CTX(test_cancel_ends_the_wait),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
