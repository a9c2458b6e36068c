/* libFuzzer target: the known_hosts line made from the host public key a
 * booted step reads from the image (builder/ssh.h), which the image's
 * owner controls.  A key that is accepted must give exactly one line,
 * "[127.0.0.1]:PORT ssh-ed25519 BLOB\n", with nothing of the input after
 * the blob: no second line, no marker, no option. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "builder/ssh.h"
#include "common/buf.h"
#include "vab/vab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (text == NULL)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  struct vab_ctx *ctx = vab_ctx_new();
  struct buf line = BUF_INIT;
  if (vab_ssh_known_hosts_line(ctx, &line, "127.0.0.1", 2222, text) == 0) {
    static const char head[] = "[127.0.0.1]:2222 ssh-ed25519 ";
    if (line.len != strlen(head) + 68 + 1 ||
        memcmp(line.data, head, strlen(head)) != 0 ||
        line.data[line.len - 1] != '\n' ||
        memchr(line.data, '\n', line.len - 1) != NULL ||
        memchr(line.data + strlen(head), ' ', 68) != NULL)
      abort();
  }
  buf_release(&line);
  vab_ctx_free(ctx);
  free(text);
  return 0;
}
