/* Quoting for /bin/sh, for scripts built from untrusted values (template
 * strings that reach a root shell in the guest).
 *
 *   shell_quote(&b, "it's")   appends   'it'\''s'
 *
 * The value becomes one word, whatever it holds: single quotes keep every
 * byte literal (newlines, $, `, \, non-ASCII), and a quote inside is
 * closed, escaped and reopened.  A caller that passes it to a command that
 * takes options puts "--" before it, so that a leading '-' is no option. */
#ifndef VAB_COMMON_SHELL_QUOTE_H
#define VAB_COMMON_SHELL_QUOTE_H

struct buf;

/* Append s to b, single-quoted.  -1 when b cannot grow (errno ENOMEM, or
 * EFBIG past its cap); b may then hold part of the quoted text. */
int shell_quote(struct buf *b, const char *s);

#endif
