/* File names for qemu command lines (see qemu-name.h). */
#include "common/buf.h"
#include "common/qemu-name.h"

int qemu_file_name(struct buf *b, const char *path) {
  if (path[0] != '/' && buf_puts(b, "./") < 0)
    return -1;
  return buf_puts(b, path);
}

int qemu_option_file_name(struct buf *b, const char *path) {
  if (path[0] != '/' && buf_puts(b, "./") < 0)
    return -1;
  for (const char *p = path; *p; p++)
    if ((*p == ',' && buf_putc(b, ',') < 0) || buf_putc(b, *p) < 0)
      return -1;
  return 0;
}
