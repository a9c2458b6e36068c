/* Run a helper program (qemu-img, mmdebstrap, qemu-system-x86_64...).
 *
 * The child runs in its own process group, so that killing it also kills
 * whatever it started.  Its stdout and stderr can be captured and handed
 * over line by line.  subprocess_wait() polls a cancel callback and a
 * timeout, and on either kills the group: no child outlives its caller.
 *
 * The child gets descriptors 0, 1 and 2 and nothing else: every other one
 * is closed before exec, close-on-exec or not, whether vab opened it or
 * inherited it.  A caller that means to hand a pipe over passes it as
 * stdin_fd or stdout_fd.
 *
 * Returns 0/-1 with errno set (ECANCELED, ETIMEDOUT, or the system error).
 */
#ifndef VAB_COMMON_SUBPROCESS_H
#define VAB_COMMON_SUBPROCESS_H

#include <stdbool.h>
#include <sys/types.h>

struct subprocess {
  pid_t pid;        /* 0 when not running */
  int output_fd;    /* read end of stdout+stderr, or -1 */
};

struct subprocess_opts {
  const char *cwd;              /* NULL: inherit */
  char *const *envp;            /* NULL: inherit */
  int stdin_fd;                 /* -1: /dev/null */
  int stdout_fd;                /* -1: capture (if capture) or inherit */
  bool capture;                 /* merge stdout+stderr into output_fd */
};

typedef void (*subprocess_line_fn)(void *opaque, const char *line);
typedef int (*subprocess_cancel_fn)(void *opaque);

#define SUBPROCESS_OPTS_INIT {NULL, NULL, -1, -1, true}

int subprocess_start(struct subprocess *p, char *const argv[],
                     const struct subprocess_opts *opts);

/* Wait for the child, feeding captured lines to line_fn (may be NULL).
 * timeout_ms <= 0: none.  *status gets the wait status. */
int subprocess_wait(struct subprocess *p, subprocess_line_fn line_fn,
                    void *line_opaque, subprocess_cancel_fn cancel_fn,
                    void *cancel_opaque, int timeout_ms, int *status);

/* SIGTERM the group, then SIGKILL after a grace period, and reap. */
void subprocess_kill(struct subprocess *p);

/* Describe a wait status: "exit status 3", "killed by signal 9". */
void subprocess_describe_status(int status, char *out, size_t len);

/* Is name an executable on PATH? */
bool subprocess_have_program(const char *name);

#endif
