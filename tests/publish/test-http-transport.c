/* The HTTP transport (publish/transport.c) against a one-shot server on
 * 127.0.0.1 (tests/lib/tcp-server.h): bodies read through the callback,
 * answers parsed, failures classified, libcurl set up once whatever the
 * threads; and the URL helpers. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "publish/transport.h"
#include "ctx-fixture.h"
#include "tcp-server.h"
#include "vab/error.h"

#define BODY_LEN 20000u

static struct http_transport *transport(struct vab_ctx *ctx) {
  struct http_transport_opts opts = {
      .label = "registry test", .limits = {5, 10, 1, 10}};
  struct http_transport *t = NULL;
  assert_int_equal(http_transport_new(ctx, &opts, &t), 0);
  return t;
}

/* The body the callback serves: byte i is a function of i. */
static uint8_t body_byte(uint64_t i) { return (uint8_t)(i * 7 + i / 251); }

struct body_reader {
  uint64_t calls;
  uint64_t next;       /* the offset the transport should ask for next */
  bool in_order;
};

static ssize_t read_body(void *opaque, uint64_t offset, void *buf,
                         size_t len) {
  struct body_reader *r = opaque;
  r->calls++;
  if (offset != r->next)
    r->in_order = false;
  /* Short reads: the transport must come back for the rest. */
  if (len > 3000)
    len = 3000;
  uint8_t *out = buf;
  for (size_t i = 0; i < len; i++)
    out[i] = body_byte(offset + i);
  r->next = offset + len;
  return (ssize_t)len;
}

static void test_put_streams_the_callback_body(void **state) {
  struct vab_ctx *ctx = *state;
  struct test_server s;
  test_server_start(&s, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n"
                        "Docker-Content-Digest: sha256:abc\r\n"
                        "Location: /v2/x/blobs/sha256:abc\r\n"
                        "Connection: close\r\n\r\n",
                    true);
  struct http_transport *t = transport(ctx);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%u/v2/x/blobs/uploads/1",
           s.port);
  struct body_reader reader = {.in_order = true};
  struct http_request req = {
      .method = "PUT", .url = url, .content_type = "application/octet-stream",
      .read_body = read_body, .read_opaque = &reader, .read_len = BODY_LEN,
      .count_bytes = true};
  struct http_response resp = {0};
  bool cancelled = true;
  assert_int_equal(http_perform(t, &req, url, "Bearer t0ken", &resp,
                                &cancelled),
                   HTTP_ANSWERED);
  test_server_stop(&s);
  assert_false(cancelled);
  assert_int_equal(resp.status, 201);
  assert_string_equal(resp.docker_digest, "sha256:abc");
  char want_location[128];
  snprintf(want_location, sizeof want_location,
           "http://127.0.0.1:%u/v2/x/blobs/sha256:abc", s.port);
  assert_string_equal(resp.location, want_location);
  assert_true(reader.in_order);
  assert_true(reader.calls >= BODY_LEN / 3000);
  assert_int_equal(http_transport_bytes_sent(t), BODY_LEN);

  /* What the server got: the headers, then exactly the callback's bytes. */
  assert_memory_equal(s.request, "PUT /v2/x/blobs/uploads/1 HTTP/1.1\r\n", 36);
  assert_non_null(strstr(s.request, "\r\nAuthorization: Bearer t0ken\r\n"));
  assert_non_null(
      strstr(s.request, "\r\nContent-Type: application/octet-stream\r\n"));
  const char *body = strstr(s.request, "\r\n\r\n");
  assert_non_null(body);
  body += 4;
  assert_int_equal(s.request_len - (size_t)(body - s.request), BODY_LEN);
  for (uint64_t i = 0; i < BODY_LEN; i++)
    if ((uint8_t)body[i] != body_byte(i))
      fail_msg("body byte %llu differs", (unsigned long long)i);
  http_response_release(&resp);
  http_transport_free(t);
}

static void test_get_keeps_a_memory_body(void **state) {
  struct vab_ctx *ctx = *state;
  struct test_server s;
  test_server_start(&s, "HTTP/1.1 404 Not Found\r\nContent-Length: 25\r\n"
                        "Content-Type: application/json\r\n"
                        "WWW-Authenticate: Bearer realm=\"x\"\r\n"
                        "Connection: close\r\n\r\n"
                        "{\"errors\":[{\"code\":\"X\"}]}",
                    true);
  struct http_transport *t = transport(ctx);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%u/v2/", s.port);
  struct http_request req = {.method = "GET", .url = url,
                             .accept = "application/json"};
  struct http_response resp = {0};
  bool cancelled;
  assert_int_equal(http_perform(t, &req, url, NULL, &resp, &cancelled),
                   HTTP_ANSWERED);
  test_server_stop(&s);
  assert_int_equal(resp.status, 404);
  assert_string_equal(resp.content_type, "application/json");
  assert_string_equal(resp.www_authenticate.data, "Bearer realm=\"x\"");
  assert_int_equal(resp.body.len, 25);
  assert_memory_equal(resp.body.data, "{\"errors\":[{\"code\":\"X\"}]}", 25);
  assert_null(strstr(s.request, "Authorization:"));
  assert_non_null(strstr(s.request, "\r\nAccept: application/json\r\n"));
  assert_int_equal(http_transport_bytes_sent(t), 0);
  http_response_release(&resp);
  http_transport_free(t);
}

static void test_refused_is_retryable(void **state) {
  struct vab_ctx *ctx = *state;
  struct http_transport *t = transport(ctx);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%u/v2/", test_closed_port());
  struct http_request req = {.method = "GET", .url = url};
  struct http_response resp = {0};
  bool cancelled;
  assert_int_equal(http_perform(t, &req, url, NULL, &resp, &cancelled),
                   HTTP_RETRYABLE);
  assert_false(resp.timed_out);
  assert_true(resp.transport_error[0] != '\0');
  assert_true(http_transport_last_error(t)[0] != '\0');
  assert_int_equal(vab_diag_count(ctx), 0);  /* the caller reports */
  http_response_release(&resp);
  http_transport_free(t);
}

static void *init_in_thread(void *opaque) {
  return (void *)(intptr_t)http_global_init(opaque);
}

/* Threads that set libcurl up at once all succeed (pthread_once). */
static void test_global_init_from_threads(void **state) {
  struct vab_ctx *ctx = *state;
  pthread_t threads[8];
  for (int i = 0; i < 8; i++)
    assert_int_equal(pthread_create(&threads[i], NULL, init_in_thread, ctx),
                     0);
  for (int i = 0; i < 8; i++) {
    void *ret = NULL;
    assert_int_equal(pthread_join(threads[i], &ret), 0);
    assert_int_equal((intptr_t)ret, 0);
  }
  assert_int_equal(http_global_init(ctx), 0);
  assert_int_equal(vab_diag_count(ctx), 0);
}

static void test_url_helpers(void **state) {
  (void)state;
  assert_true(url_same_origin("https://Reg.example/v2/",
                              "https://reg.example:443/x"));
  assert_false(url_same_origin("https://reg.example/", "http://reg.example/"));
  assert_false(url_same_origin("https://reg.example/", "https://cdn.example/"));
  assert_false(url_same_origin("not a url", "https://reg.example/"));
  char *u = url_resolve("https://reg.example/v2/a/blobs/uploads/",
                        "/v2/up/1?x=y");
  assert_string_equal(u, "https://reg.example/v2/up/1?x=y");
  free(u);
  u = url_resolve("https://reg.example/v2/a/", "https://cdn.example/b");
  assert_string_equal(u, "https://cdn.example/b");
  free(u);
  u = url_append_query("https://reg.example/up/1?state=s", "digest",
                       "sha256:ab cd");
  assert_string_equal(
      u, "https://reg.example/up/1?state=s&digest=sha256%3aab+cd");
  free(u);
  u = url_escape("p@ss word/+");
  assert_string_equal(u, "p%40ss%20word%2F%2B");
  free(u);
  assert_true(url_is_plain_http("HTTP://reg"));
  assert_false(url_is_plain_http("https://reg"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
    TEST_WITH_CTX(test_global_init_from_threads),
    TEST_WITH_CTX(test_put_streams_the_callback_body),
    TEST_WITH_CTX(test_get_keeps_a_memory_body),
    TEST_WITH_CTX(test_refused_is_retryable),
    cmocka_unit_test(test_url_helpers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
