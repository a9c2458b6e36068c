/* cosign simple-signing payloads and the signature image's config. */
#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/json.h"
#include "publish/cosign.h"

char *cosign_payload(const char *docker_reference, const char *digest) {
  struct buf b = BUF_INIT;
  int r = buf_puts(&b, "{\"critical\":{\"identity\":{\"docker-reference\":");
  r |= json_append_string(&b, docker_reference);
  r |= buf_puts(&b, "},\"image\":{\"docker-manifest-digest\":");
  r |= json_append_string(&b, digest);
  r |= buf_puts(&b, "},\"type\":\"cosign container image signature\"},"
                    "\"optional\":null}");
  if (r != 0) {
    buf_release(&b);
    return NULL;
  }
  return buf_detach(&b);
}

char *cosign_config(const char *payload_digest) {
  struct buf b = BUF_INIT;
  int r = buf_puts(&b, "{\"architecture\":\"\",\"created\":\"0001-01-01T00:00:00Z\","
                       "\"history\":[{\"created\":\"0001-01-01T00:00:00Z\"}],"
                       "\"os\":\"\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[");
  r |= json_append_string(&b, payload_digest);
  r |= buf_puts(&b, "]},\"config\":{}}");
  if (r != 0) {
    buf_release(&b);
    return NULL;
  }
  return buf_detach(&b);
}

void cosign_tag(const char *digest, char out[80]) {
  const char *colon = strchr(digest, ':');
  snprintf(out, 80, "sha256-%s.sig", colon ? colon + 1 : digest);
}
