/* The context's insides: only core/ looks at them. */
#ifndef VAB_CORE_CTX_PRIVATE_H
#define VAB_CORE_CTX_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>
#include "vab/error.h"
#include "vab/progress.h"

struct vab_ctx {
  pthread_mutex_t lock;    /* diagnostics may come from worker threads */
  struct vab_diag diags[VAB_DIAG_MAX];
  size_t n_diags;
  size_t n_errors;
  size_t n_dropped;
  atomic_int cancelled;
  vab_progress_fn progress;
  void *progress_opaque;
  vab_log_fn log;
  void *log_opaque;
  struct vab_secret *secrets;   /* vab_ctx_add_secret() */
  size_t n_secrets;
  size_t secrets_cap;        /* allocated (common/vector.h) */
};

struct vab_secret {
  char *value;
  char *shown;
};

#endif
