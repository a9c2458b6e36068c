/* vab: errors and diagnostics.
 *
 * Every fallible function takes a struct vab_ctx and returns 0 on success
 * or -1 on failure, after recording what went wrong on the context with
 * vab_error() or one of its siblings.  Nothing below cli/ prints: the CLI
 * reads the recorded diagnostics and decides how to show them.
 *
 * A context gathers many diagnostics (validate reports every problem of a
 * template in one run), each with a stable numbered code, a message, the
 * errno that caused it (or 0) and, for templates, FILE:LINE:COLUMN.
 *
 * Worker threads may record diagnostics on a context while another thread
 * reads them: every call below takes the context's lock.  A pointer from
 * vab_diag_get() or vab_last_error() stays valid until vab_diag_clear();
 * a hint goes to the most recent diagnostic, whichever thread recorded it.
 */
#ifndef VAB_ERROR_H
#define VAB_ERROR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define VAB_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define VAB_PRINTF(fmt, args)
#endif

/* Stable numbers: documented in docs/errors.md, never reused. */
enum vab_code {
  VAB_OK = 0,
  VAB_E_NOMEM = 1,         /* out of memory */
  VAB_E_IO = 2,            /* a read, write, open... failed */
  VAB_E_USAGE = 3,         /* bad argument or option value */
  VAB_E_YAML = 4,          /* a template is not well-formed YAML */
  VAB_E_SCHEMA = 5,        /* a template breaks the schema */
  VAB_E_FORMAT = 6,        /* a disk image is corrupt or hostile */
  VAB_E_UNSUPPORTED = 7,   /* valid, but a feature vab does not handle */
  VAB_E_SUBPROCESS = 8,    /* a helper program failed */
  VAB_E_GUEST = 9,         /* the builder VM (libguestfs) failed */
  VAB_E_PROVISION = 10,    /* a provisioner step failed */
  VAB_E_TEST = 11,         /* a boot test failed */
  VAB_E_SIGNATURE = 12,    /* signing or verification failed */
  VAB_E_NETWORK = 13,      /* a registry or mirror could not be reached */
  VAB_E_CANCELLED = 14,    /* Ctrl-C, SIGTERM or a progress callback */
  VAB_E_INTERNAL = 15,     /* a bug in vab */
  VAB_E_LAST               /* never use */
};

enum vab_severity {
  VAB_SEV_NOTE = 0,
  VAB_SEV_WARNING = 1,
  VAB_SEV_ERROR = 2,
};

/* Where something was written in a template: 1-based line and column.
 * file is NULL for diagnostics that are not about a template. */
struct vab_mark {
  const char *file;
  uint32_t line;
  uint32_t column;
};

struct vab_diag {
  enum vab_code code;
  enum vab_severity severity;
  int sys_errno;           /* errno behind it, or 0 */
  char *file;              /* template path, or NULL */
  uint32_t line, column;   /* 0 when there is no location */
  char *message;           /* what is wrong, starting lowercase */
  char *hint;              /* what to do about it ("did you mean..."), or NULL */
  char *source_line;       /* the template line, for a caret, or NULL */
};

/* Most diagnostics one context keeps; later ones are counted, not kept. */
#define VAB_DIAG_MAX 100

struct vab_ctx;

struct vab_ctx *vab_ctx_new(void);
void vab_ctx_free(struct vab_ctx *ctx);

/* Record an error and return -1, so a caller can write
 *   return vab_error(ctx, VAB_E_IO, "cannot open '%s'", path);        */
int vab_error(struct vab_ctx *ctx, enum vab_code code, const char *fmt, ...)
    VAB_PRINTF(3, 4);
int vab_verror(struct vab_ctx *ctx, enum vab_code code, const char *fmt,
               va_list ap) VAB_PRINTF(3, 0);
/* The same, keeping errnum and appending strerror(errnum) when shown. */
int vab_error_errno(struct vab_ctx *ctx, enum vab_code code, int errnum,
                    const char *fmt, ...) VAB_PRINTF(4, 5);
/* An error at a template location.  mark may be NULL. */
int vab_error_at(struct vab_ctx *ctx, enum vab_code code,
                 const struct vab_mark *mark, const char *fmt, ...)
    VAB_PRINTF(4, 5);
/* A warning or note (never makes a command fail by itself). */
void vab_warn_at(struct vab_ctx *ctx, const struct vab_mark *mark,
                 const char *fmt, ...) VAB_PRINTF(3, 4);
void vab_note_at(struct vab_ctx *ctx, const struct vab_mark *mark,
                 const char *fmt, ...) VAB_PRINTF(3, 4);

/* Attach a hint or the source line to the most recent diagnostic. */
void vab_diag_hint(struct vab_ctx *ctx, const char *fmt, ...) VAB_PRINTF(2, 3);
void vab_diag_source_line(struct vab_ctx *ctx, const char *line, size_t len);
/* The same for diagnostic i, for code that attaches lines afterwards. */
void vab_diag_source_line_at(struct vab_ctx *ctx, size_t i, const char *line,
                             size_t len);

size_t vab_diag_count(const struct vab_ctx *ctx);
const struct vab_diag *vab_diag_get(const struct vab_ctx *ctx, size_t i);
/* Errors recorded, including those past VAB_DIAG_MAX. */
size_t vab_error_count(const struct vab_ctx *ctx);
/* Diagnostics dropped because the cap was reached. */
size_t vab_diag_dropped(const struct vab_ctx *ctx);
/* The most recent error, or NULL. */
const struct vab_diag *vab_last_error(const struct vab_ctx *ctx);
void vab_diag_clear(struct vab_ctx *ctx);

/* A value that must not be shown (it came from the environment and may be
 * a secret): every occurrence of value in the diagnostics, hints and log
 * lines of ctx, those recorded already and those to come, is shown as
 * shown instead (e.g. "${env:NAME}").  Values shorter than
 * VAB_SECRET_MIN_LEN bytes are not replaced, as they would hit ordinary
 * words; the template loader shows those as written itself.  Call it
 * while no other thread uses ctx (the template loader does). */
#define VAB_SECRET_MIN_LEN 4
int vab_ctx_add_secret(struct vab_ctx *ctx, const char *value,
                       const char *shown);

/* Short, stable name of a code: "io", "schema"... */
const char *vab_code_name(enum vab_code code);
/* One-line description of a code. */
const char *vab_strerror(enum vab_code code);

/* Cancellation.  vab_ctx_cancel() is async-signal-safe: the CLI calls it
 * from its SIGINT/SIGTERM handler, and long loops poll vab_cancelled(). */
void vab_ctx_cancel(struct vab_ctx *ctx);
int vab_cancelled(const struct vab_ctx *ctx);
/* If cancelled, record VAB_E_CANCELLED and return -1, else return 0. */
int vab_check_cancel(struct vab_ctx *ctx);

#endif
