/* Test helper: a one-connection TCP server on 127.0.0.1, in a thread, for
 * the clients that the unit tests drive without a network (the boot
 * test's probes, the registry's HTTP transport).  Failures are cmocka
 * assertions. */
#ifndef VAB_TESTS_TCP_SERVER_H
#define VAB_TESTS_TCP_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct test_server {
  int listen_fd;
  uint16_t port;                   /* where it listens */
  const char *reply;
  bool read_request;
  char request[64 * 1024];         /* what the client sent, NUL-terminated */
  size_t request_len;
  pthread_t thread;
};

/* Listen on a free port and accept one connection.  With read_request it
 * first reads the request: its headers and a Content-Length body (or up
 * to the client's end or a full buffer).  Then it sends reply and closes;
 * a NULL reply sends nothing and waits until the client gives up. */
void test_server_start(struct test_server *s, const char *reply,
                       bool read_request);
/* Wait for that one connection to end, and stop listening. */
void test_server_stop(struct test_server *s);

/* A port on 127.0.0.1 that nothing listens on: bound, then closed. */
uint16_t test_closed_port(void);

#endif
