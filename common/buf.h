/* A growable byte buffer with a size cap, always NUL-terminated.
 *
 *   struct buf b = BUF_INIT;
 *   if (buf_printf(&b, "%s=%d", k, v) < 0) ... (errno is ENOMEM or EFBIG)
 *   use b.data, b.len; buf_release(&b);
 *
 * data is never NULL after a successful call; b.data may be taken with
 * buf_detach().  cap == 0 means no cap beyond SIZE_MAX.
 */
#ifndef VAB_COMMON_BUF_H
#define VAB_COMMON_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
  char *data;
  size_t len;
  size_t alloc;
  size_t cap;
};

#define BUF_INIT {NULL, 0, 0, 0}

int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *data, size_t len);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
void buf_truncate(struct buf *b, size_t len);
char *buf_detach(struct buf *b);
void buf_release(struct buf *b);

/* Append line to the fixed text buffer out (size bytes, NUL-terminated),
 * a newline between lines; when it would not fit, start over with line
 * alone (cut to fit).  Keeps a helper's last lines for an error message
 * without any allocation. */
void text_keep_tail(char *out, size_t size, const char *line);

/* A malloc'd copy of a console line as plain text for a log: carriage
 * returns and terminal control sequences (ESC [ ... final byte, which
 * systemd and apt print) dropped.  NULL when out of memory. */
char *text_plain_copy(const char *line);

#endif
