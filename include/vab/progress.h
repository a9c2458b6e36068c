/* vab: progress reporting and logging.
 *
 * Long operations report how far they are through the context's progress
 * callback; the CLI draws a bar on a TTY and nothing otherwise.  Returning
 * non-zero from the callback cancels the operation, which then fails with
 * VAB_E_CANCELLED.  Logging works the same way: the library hands lines to
 * the CLI, which writes them to stderr or to the build log.
 */
#ifndef VAB_PROGRESS_H
#define VAB_PROGRESS_H

#include <stdint.h>
#include "vab/error.h"

enum vab_phase {
  VAB_PHASE_LOAD,
  VAB_PHASE_PLAN,
  VAB_PHASE_SOURCE,
  VAB_PHASE_LAYOUT,
  VAB_PHASE_PROVISION,
  VAB_PHASE_SYSPREP,
  VAB_PHASE_TEST,
  VAB_PHASE_EXPORT,
  VAB_PHASE_SIGN,
  VAB_PHASE_PUBLISH,
  VAB_PHASE_CONVERT,
  VAB_PHASE_LAST
};

const char *vab_phase_name(enum vab_phase phase);

/* total == 0 means unknown.  step is a short label ("qcow2", "apt-get"). */
typedef int (*vab_progress_fn)(void *opaque, enum vab_phase phase,
                               const char *step, uint64_t done,
                               uint64_t total);

enum vab_log_level {
  VAB_LOG_DEBUG,    /* guest output, subprocess chatter: build log only */
  VAB_LOG_INFO,     /* what is happening, one line per step */
  VAB_LOG_WARNING,
};

typedef void (*vab_log_fn)(void *opaque, enum vab_log_level level,
                           const char *line);

void vab_ctx_set_progress(struct vab_ctx *ctx, vab_progress_fn fn,
                          void *opaque);
void vab_ctx_set_log(struct vab_ctx *ctx, vab_log_fn fn, void *opaque);

/* Report progress.  Returns -1 (VAB_E_CANCELLED recorded) when the
 * callback asks to stop or the context was cancelled, else 0. */
int vab_progress(struct vab_ctx *ctx, enum vab_phase phase, const char *step,
                 uint64_t done, uint64_t total);

void vab_log(struct vab_ctx *ctx, enum vab_log_level level, const char *fmt,
             ...) VAB_PRINTF(3, 4);

#endif
