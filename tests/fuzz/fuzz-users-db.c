/* libFuzzer target: the users step's reading of the guest's /etc/passwd
 * and /etc/group, which come from the source image (untrusted).  Input:
 * the user name on the first line, then passwd, a NUL byte, and group. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "provisioners/users.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (text == NULL)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  char *passwd = strchr(text, '\n');
  if (passwd != NULL)
    *passwd++ = '\0';
  char *group = passwd != NULL ? passwd + strlen(passwd) : NULL;
  if (group != NULL && (size_t)(group - text) < size)
    group++;
  else
    group = NULL;
  bool has_uid = size > 0 && (data[0] & 1);
  struct users_plan plan;
  char why[256];
  if (users_plan_for(text, has_uid, 1000 + (uint32_t)size, passwd, group,
                     &plan, why, sizeof why) == 0) {
    struct buf b = BUF_INIT;
    users_account_command(&b, &plan, has_uid, 1000 + (uint32_t)size);
    buf_release(&b);
  }
  free(text);
  return 0;
}
