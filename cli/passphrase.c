#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/passphrase.h"

#define PASSPHRASE_MAX 1024

int cli_passphrase_read(const char *cmd, const char *env_name, int fd,
                        char **out) {
  *out = NULL;
  if (env_name != NULL) {
    const char *v = getenv(env_name);
    if (v == NULL || *v == '\0') {
      fprintf(stderr, "vab %s: environment variable %s is not set\n", cmd,
              env_name);
      return -1;
    }
    *out = strdup(v);
    return *out ? 0 : -1;
  }
  if (fd < 0)
    return 0;
  char *buf = calloc(1, PASSPHRASE_MAX + 1);
  if (buf == NULL)
    return -1;
  size_t len = 0;
  while (len < PASSPHRASE_MAX) {
    ssize_t n = read(fd, buf + len, PASSPHRASE_MAX - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      fprintf(stderr, "vab %s: cannot read the passphrase from fd %d: %s\n",
              cmd, fd, strerror(errno));
      cli_passphrase_free(buf);
      return -1;
    }
    if (n == 0)
      break;
    len += (size_t)n;
    if (memchr(buf, '\n', len) != NULL)
      break;
  }
  char *nl = memchr(buf, '\n', len);
  if (nl != NULL)
    *nl = '\0';
  if (buf[0] == '\0') {
    fprintf(stderr, "vab %s: the passphrase from fd %d is empty\n", cmd, fd);
    cli_passphrase_free(buf);
    return -1;
  }
  *out = buf;
  return 0;
}

void cli_passphrase_free(char *p) {
  if (p == NULL)
    return;
  explicit_bzero(p, strlen(p));
  free(p);
}
