/* The one-connection test server (tcp-server.h). */
#include "tcp-server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

/* Has the request arrived whole: its headers and Content-Length body? */
static bool request_complete(const struct test_server *s) {
  const char *end = strstr(s->request, "\r\n\r\n");
  if (end == NULL)
    return false;
  const char *cl = strcasestr(s->request, "\r\nContent-Length:");
  size_t body = cl != NULL && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
  return s->request_len >= (size_t)(end + 4 - s->request) + body;
}

static void *serve_one(void *opaque) {
  struct test_server *s = opaque;
  int fd = accept(s->listen_fd, NULL, NULL);
  if (fd < 0)
    return NULL;
  while (s->read_request && s->request_len + 1 < sizeof s->request &&
         !request_complete(s)) {
    ssize_t n = read(fd, s->request + s->request_len,
                     sizeof s->request - 1 - s->request_len);
    if (n <= 0)
      break;
    s->request_len += (size_t)n;
    s->request[s->request_len] = '\0';
  }
  if (s->reply != NULL) {
    size_t len = strlen(s->reply);
    if (write(fd, s->reply, len) != (ssize_t)len)
      perror("write");
  } else {
    char c;
    while (read(fd, &c, 1) > 0) {
    }
  }
  close(fd);
  return NULL;
}

/* A socket bound to a free port on 127.0.0.1, and that port. */
static int bind_loopback(uint16_t *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
  socklen_t len = sizeof addr;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
  *port = ntohs(addr.sin_port);
  return fd;
}

void test_server_start(struct test_server *s, const char *reply,
                       bool read_request) {
  memset(s, 0, sizeof *s);
  s->reply = reply;
  s->read_request = read_request;
  s->listen_fd = bind_loopback(&s->port);
  assert_int_equal(listen(s->listen_fd, 4), 0);
  assert_int_equal(pthread_create(&s->thread, NULL, serve_one, s), 0);
}

void test_server_stop(struct test_server *s) {
  assert_int_equal(pthread_join(s->thread, NULL), 0);
  close(s->listen_fd);
}

uint16_t test_closed_port(void) {
  uint16_t port;
  close(bind_loopback(&port));
  return port;
}
