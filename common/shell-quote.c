#include <string.h>

#include "common/buf.h"
#include "common/shell-quote.h"

int shell_quote(struct buf *b, const char *s) {
  if (buf_putc(b, '\'') < 0)
    return -1;
  /* Runs between quotes go in one append each. */
  for (;;) {
    size_t run = strcspn(s, "'");
    if (buf_append(b, s, run) < 0)
      return -1;
    s += run;
    if (*s == '\0')
      break;
    if (buf_puts(b, "'\\''") < 0)
      return -1;
    s++;
  }
  return buf_putc(b, '\'');
}
