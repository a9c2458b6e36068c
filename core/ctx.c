/* The error context: diagnostics, cancellation, progress and log hooks. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/vector.h"
#include "vab/error.h"
#include "vab/progress.h"
#include "vab/version.h"
#include "core/ctx-private.h"

struct vab_ctx *vab_ctx_new(void) {
  struct vab_ctx *ctx = calloc(1, sizeof *ctx);
  if (ctx == NULL)
    return NULL;
  atomic_init(&ctx->cancelled, 0);
  /* No context yet to record the failure on: the caller reports NULL as
   * out of memory, which is what a failed init (ENOMEM, EAGAIN) means. */
  if (pthread_mutex_init(&ctx->lock, NULL) != 0) {
    free(ctx);
    return NULL;
  }
  return ctx;
}

/* Worker threads record diagnostics while the main thread reads them: every
 * access to the diagnostics and the secrets goes under ctx->lock.  The
 * lock is not part of what const promises (the caller sees no change). */
static void ctx_lock(const struct vab_ctx *ctx) {
  pthread_mutex_lock(&((struct vab_ctx *)ctx)->lock);
}

static void ctx_unlock(const struct vab_ctx *ctx) {
  pthread_mutex_unlock(&((struct vab_ctx *)ctx)->lock);
}

static void diag_release(struct vab_diag *d) {
  free(d->file);
  free(d->message);
  free(d->hint);
  free(d->source_line);
  memset(d, 0, sizeof *d);
}

void vab_diag_clear(struct vab_ctx *ctx) {
  ctx_lock(ctx);
  for (size_t i = 0; i < ctx->n_diags; i++)
    diag_release(&ctx->diags[i]);
  ctx->n_diags = 0;
  ctx->n_errors = 0;
  ctx->n_dropped = 0;
  ctx_unlock(ctx);
}

void vab_ctx_free(struct vab_ctx *ctx) {
  if (ctx == NULL)
    return;
  vab_diag_clear(ctx);
  for (size_t i = 0; i < ctx->n_secrets; i++) {
    free(ctx->secrets[i].value);
    free(ctx->secrets[i].shown);
  }
  free(ctx->secrets);
  pthread_mutex_destroy(&ctx->lock);
  free(ctx);
}

/* Out of memory while recording a diagnostic: the message becomes this
 * (strdup'd, so it may itself be NULL), so the user still learns that
 * something went wrong. */
static const char nomem_message[] = "out of memory";

/* Where the next occurrence of secret starts in text, and its length in
 * *len: the whole value, or (cut by a "%.200s") any part of it at least 16
 * bytes long or up to the end of the text. */
#define SECRET_PREFIX 16
static const char *find_secret(const char *text, const char *value,
                               size_t *len) {
  size_t value_len = strlen(value);
  size_t prefix = value_len < SECRET_PREFIX ? value_len : SECRET_PREFIX;
  const char *hit = memmem(text, strlen(text), value, prefix);
  if (hit == NULL)
    return NULL;
  size_t n = prefix;
  while (value[n] != '\0' && hit[n] == value[n])
    n++;
  *len = n;
  return hit;
}

/* *text (malloc'd, or NULL) with every secret replaced by its shown form.
 * Out of memory, the text is dropped rather than shown. */
static void redact(const struct vab_ctx *ctx, char **text) {
  for (size_t i = 0; *text != NULL && i < ctx->n_secrets; i++) {
    const struct vab_secret *sec = &ctx->secrets[i];
    size_t shown_len = strlen(sec->shown), n = 0, size = 1;
    const char *p = *text, *hit;
    for (; (hit = find_secret(p, sec->value, &n)) != NULL; p = hit + n)
      size += (size_t)(hit - p) + shown_len;
    if (p == *text)
      continue;
    size += strlen(p);
    char *out = malloc(size);
    if (out == NULL) {
      free(*text);
      *text = NULL;
      return;
    }
    char *o = out;
    for (p = *text; (hit = find_secret(p, sec->value, &n)) != NULL;
         p = hit + n) {
      memcpy(o, p, (size_t)(hit - p));
      o += hit - p;
      memcpy(o, sec->shown, shown_len);
      o += shown_len;
    }
    strcpy(o, p);
    free(*text);
    *text = out;
  }
}

int vab_ctx_add_secret(struct vab_ctx *ctx, const char *value,
                       const char *shown) {
  if (strlen(value) < VAB_SECRET_MIN_LEN)
    return 0;
  ctx_lock(ctx);
  for (size_t i = 0; i < ctx->n_secrets; i++)
    if (strcmp(ctx->secrets[i].value, value) == 0) {
      ctx_unlock(ctx);
      return 0;
    }
  struct vab_secret *grown = vector_grow(ctx->secrets, &ctx->secrets_cap,
                                         ctx->n_secrets, 1, sizeof *grown);
  if (grown == NULL) {
    ctx_unlock(ctx);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  ctx->secrets = grown;
  struct vab_secret sec = {strdup(value), strdup(shown)};
  if (sec.value == NULL || sec.shown == NULL) {
    ctx_unlock(ctx);
    free(sec.value);
    free(sec.shown);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  /* Longest first, so a value that holds another is shown whole. */
  size_t at = 0;
  while (at < ctx->n_secrets && strlen(ctx->secrets[at].value) >= strlen(value))
    at++;
  memmove(&ctx->secrets[at + 1], &ctx->secrets[at],
          (ctx->n_secrets - at) * sizeof *ctx->secrets);
  ctx->secrets[at] = sec;
  ctx->n_secrets++;
  /* Diagnostics recorded before the value was known to be one. */
  for (size_t i = 0; i < ctx->n_diags; i++) {
    struct vab_diag *d = &ctx->diags[i];
    redact(ctx, &d->message);
    if (d->message == NULL)
      d->message = strdup(nomem_message);
    redact(ctx, &d->hint);
  }
  ctx_unlock(ctx);
  return 0;
}

static struct vab_diag *diag_push(struct vab_ctx *ctx, enum vab_code code,
                                  enum vab_severity sev, int errnum,
                                  const struct vab_mark *mark,
                                  const char *fmt, va_list ap)
    VAB_PRINTF(6, 0);

static struct vab_diag *diag_push(struct vab_ctx *ctx, enum vab_code code,
                                  enum vab_severity sev, int errnum,
                                  const struct vab_mark *mark,
                                  const char *fmt, va_list ap) {
  ctx_lock(ctx);
  if (sev == VAB_SEV_ERROR)
    ctx->n_errors++;
  if (ctx->n_diags >= VAB_DIAG_MAX) {
    ctx->n_dropped++;
    ctx_unlock(ctx);
    return NULL;
  }
  struct vab_diag *d = &ctx->diags[ctx->n_diags++];
  memset(d, 0, sizeof *d);
  d->code = code;
  d->severity = sev;
  d->sys_errno = errnum;
  if (mark != NULL && mark->file != NULL) {
    d->file = strdup(mark->file);
    d->line = mark->line;
    d->column = mark->column;
  }
  if (vasprintf(&d->message, fmt, ap) < 0)
    d->message = NULL;
  redact(ctx, &d->message);
  if (d->message == NULL) {
    d->code = VAB_E_NOMEM;
    d->message = strdup(nomem_message);
  }
  ctx_unlock(ctx);
  return d;
}

int vab_verror(struct vab_ctx *ctx, enum vab_code code, const char *fmt,
               va_list ap) {
  diag_push(ctx, code, VAB_SEV_ERROR, 0, NULL, fmt, ap);
  return -1;
}

int vab_error(struct vab_ctx *ctx, enum vab_code code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_push(ctx, code, VAB_SEV_ERROR, 0, NULL, fmt, ap);
  va_end(ap);
  return -1;
}

int vab_error_errno(struct vab_ctx *ctx, enum vab_code code, int errnum,
                    const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_push(ctx, code, VAB_SEV_ERROR, errnum, NULL, fmt, ap);
  va_end(ap);
  return -1;
}

int vab_error_at(struct vab_ctx *ctx, enum vab_code code,
                 const struct vab_mark *mark, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_push(ctx, code, VAB_SEV_ERROR, 0, mark, fmt, ap);
  va_end(ap);
  return -1;
}

void vab_warn_at(struct vab_ctx *ctx, const struct vab_mark *mark,
                 const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_push(ctx, VAB_OK, VAB_SEV_WARNING, 0, mark, fmt, ap);
  va_end(ap);
}

void vab_note_at(struct vab_ctx *ctx, const struct vab_mark *mark,
                 const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_push(ctx, VAB_OK, VAB_SEV_NOTE, 0, mark, fmt, ap);
  va_end(ap);
}

void vab_diag_hint(struct vab_ctx *ctx, const char *fmt, ...) {
  char *hint = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&hint, fmt, ap) < 0)
    hint = NULL;
  va_end(ap);
  ctx_lock(ctx);
  if (ctx->n_diags == 0 || ctx->n_dropped > 0) {
    ctx_unlock(ctx);
    free(hint);
    return;
  }
  struct vab_diag *d = &ctx->diags[ctx->n_diags - 1];
  free(d->hint);
  d->hint = hint;
  redact(ctx, &d->hint);
  ctx_unlock(ctx);
}

/* diags[i]'s source line, if i is a diagnostic kept; under the lock. */
static void set_source_line(struct vab_ctx *ctx, size_t i, const char *line,
                            size_t len) {
  if (i >= ctx->n_diags)
    return;
  struct vab_diag *d = &ctx->diags[i];
  free(d->source_line);
  d->source_line = strndup(line, len);
}

void vab_diag_source_line(struct vab_ctx *ctx, const char *line, size_t len) {
  ctx_lock(ctx);
  if (ctx->n_diags > 0 && ctx->n_dropped == 0)
    set_source_line(ctx, ctx->n_diags - 1, line, len);
  ctx_unlock(ctx);
}

void vab_diag_source_line_at(struct vab_ctx *ctx, size_t i, const char *line,
                             size_t len) {
  ctx_lock(ctx);
  set_source_line(ctx, i, line, len);
  ctx_unlock(ctx);
}

size_t vab_diag_count(const struct vab_ctx *ctx) {
  ctx_lock(ctx);
  size_t n = ctx->n_diags;
  ctx_unlock(ctx);
  return n;
}

/* The diagnostics array never moves, and a kept diagnostic is not changed
 * again except by a hint or source line: the pointer stays valid until
 * vab_diag_clear(). */
const struct vab_diag *vab_diag_get(const struct vab_ctx *ctx, size_t i) {
  ctx_lock(ctx);
  const struct vab_diag *d = i < ctx->n_diags ? &ctx->diags[i] : NULL;
  ctx_unlock(ctx);
  return d;
}

size_t vab_error_count(const struct vab_ctx *ctx) {
  ctx_lock(ctx);
  size_t n = ctx->n_errors;
  ctx_unlock(ctx);
  return n;
}

size_t vab_diag_dropped(const struct vab_ctx *ctx) {
  ctx_lock(ctx);
  size_t n = ctx->n_dropped;
  ctx_unlock(ctx);
  return n;
}

const struct vab_diag *vab_last_error(const struct vab_ctx *ctx) {
  const struct vab_diag *d = NULL;
  ctx_lock(ctx);
  for (size_t i = ctx->n_diags; i > 0 && d == NULL; i--)
    if (ctx->diags[i - 1].severity == VAB_SEV_ERROR)
      d = &ctx->diags[i - 1];
  ctx_unlock(ctx);
  return d;
}

const char *vab_code_name(enum vab_code code) {
  switch (code) {
  case VAB_OK: return "ok";
  case VAB_E_NOMEM: return "nomem";
  case VAB_E_IO: return "io";
  case VAB_E_USAGE: return "usage";
  case VAB_E_YAML: return "yaml";
  case VAB_E_SCHEMA: return "schema";
  case VAB_E_FORMAT: return "format";
  case VAB_E_UNSUPPORTED: return "unsupported";
  case VAB_E_SUBPROCESS: return "subprocess";
  case VAB_E_GUEST: return "guest";
  case VAB_E_PROVISION: return "provision";
  case VAB_E_TEST: return "test";
  case VAB_E_SIGNATURE: return "signature";
  case VAB_E_NETWORK: return "network";
  case VAB_E_CANCELLED: return "cancelled";
  case VAB_E_INTERNAL: return "internal";
  case VAB_E_LAST: break;
  }
  return "unknown";
}

/* A switch, not a table, so -Wswitch flags a code without a text. */
const char *vab_strerror(enum vab_code code) {
  switch (code) {
  case VAB_OK: return "success";
  case VAB_E_NOMEM: return "out of memory";
  case VAB_E_IO: return "input/output error";
  case VAB_E_USAGE: return "invalid argument";
  case VAB_E_YAML: return "malformed YAML";
  case VAB_E_SCHEMA: return "invalid template";
  case VAB_E_FORMAT: return "corrupt or invalid disk image";
  case VAB_E_UNSUPPORTED: return "unsupported feature";
  case VAB_E_SUBPROCESS: return "helper program failed";
  case VAB_E_GUEST: return "builder VM failed";
  case VAB_E_PROVISION: return "provisioning step failed";
  case VAB_E_TEST: return "boot test failed";
  case VAB_E_SIGNATURE: return "signature error";
  case VAB_E_NETWORK: return "network error";
  case VAB_E_CANCELLED: return "cancelled";
  case VAB_E_INTERNAL: return "internal error";
  case VAB_E_LAST: break;
  }
  return "unknown error";
}

void vab_ctx_cancel(struct vab_ctx *ctx) { atomic_store(&ctx->cancelled, 1); }

int vab_cancelled(const struct vab_ctx *ctx) {
  return atomic_load(&((struct vab_ctx *)ctx)->cancelled);
}

int vab_check_cancel(struct vab_ctx *ctx) {
  if (!vab_cancelled(ctx))
    return 0;
  return vab_error(ctx, VAB_E_CANCELLED, "interrupted");
}

/* Progress and logging. */

static const char *const phase_names[VAB_PHASE_LAST] = {
  [VAB_PHASE_LOAD] = "load",         [VAB_PHASE_PLAN] = "plan",
  [VAB_PHASE_SOURCE] = "source",     [VAB_PHASE_LAYOUT] = "layout",
  [VAB_PHASE_PROVISION] = "provision", [VAB_PHASE_SYSPREP] = "sysprep",
  [VAB_PHASE_TEST] = "test",         [VAB_PHASE_EXPORT] = "export",
  [VAB_PHASE_SIGN] = "sign",         [VAB_PHASE_PUBLISH] = "publish",
  [VAB_PHASE_CONVERT] = "convert",
};

const char *vab_phase_name(enum vab_phase phase) {
  if ((unsigned)phase < VAB_PHASE_LAST && phase_names[phase] != NULL)
    return phase_names[phase];
  return "unknown";
}

void vab_ctx_set_progress(struct vab_ctx *ctx, vab_progress_fn fn,
                          void *opaque) {
  ctx->progress = fn;
  ctx->progress_opaque = opaque;
}

void vab_ctx_set_log(struct vab_ctx *ctx, vab_log_fn fn, void *opaque) {
  ctx->log = fn;
  ctx->log_opaque = opaque;
}

int vab_progress(struct vab_ctx *ctx, enum vab_phase phase, const char *step,
                 uint64_t done, uint64_t total) {
  if (vab_check_cancel(ctx) < 0)
    return -1;
  if (ctx->progress == NULL)
    return 0;
  /* Step labels quote template values (a mirror, a command). */
  char *shown = NULL;
  ctx_lock(ctx);
  if (ctx->n_secrets > 0 && step != NULL) {
    shown = strdup(step);
    redact(ctx, &shown);
    if (shown == NULL) {
      ctx_unlock(ctx);
      return vab_error(ctx, VAB_E_NOMEM, "out of memory");
    }
  }
  ctx_unlock(ctx);
  int stop = ctx->progress(ctx->progress_opaque, phase,
                           shown != NULL ? shown : step, done, total);
  free(shown);
  if (stop != 0)
    return vab_error(ctx, VAB_E_CANCELLED, "cancelled by the progress callback");
  return 0;
}

void vab_log(struct vab_ctx *ctx, enum vab_log_level level, const char *fmt,
             ...) {
  if (ctx->log == NULL)
    return;
  char *line = NULL;
  va_list ap;
  va_start(ap, fmt);
  int n = vasprintf(&line, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  ctx_lock(ctx);
  redact(ctx, &line);
  ctx_unlock(ctx);
  if (line == NULL)
    return;
  ctx->log(ctx->log_opaque, level, line);
  free(line);
}

const char *vab_version(void) { return VAB_VERSION; }
