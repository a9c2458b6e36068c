#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/subprocess.h"

/* The child keeps 0, 1 and 2 only.  An inherited descriptor does harm:
 * a child's own pipes land on fd 10 and above, where dash cannot redirect
 * ("Bad fd number"), and a long-lived child (qemu) would hold vab's files
 * open.  Async-signal-safe: no opendir() of /proc/self/fd in the fallback. */
static void close_from(int first) {
#ifdef SYS_close_range
  /* The system call, so that a libc without close_range() builds too. */
  if (syscall(SYS_close_range, (unsigned)first, ~0U, 0U) == 0)
    return;
#endif
  /* Kernels before 5.9 (ENOSYS): every descriptor the limit allows. */
  struct rlimit lim;
  long max = 65536;
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY &&
      lim.rlim_cur < (rlim_t)(1 << 20))
    max = (long)lim.rlim_cur;
  for (long fd = first; fd < max; fd++)
    close((int)fd);
}

/* fd itself when it is above 2 (or -1), else a copy above 2. */
static int lift_above_stdio(int fd) {
  if (fd < 0 || fd > 2)
    return fd;
  int copy = fcntl(fd, F_DUPFD, 3);
  return copy >= 0 ? copy : fd;
}

int subprocess_start(struct subprocess *p, char *const argv[],
                     const struct subprocess_opts *opts) {
  struct subprocess_opts defaults = SUBPROCESS_OPTS_INIT;
  if (opts == NULL)
    opts = &defaults;
  int pipefd[2] = {-1, -1};
  p->pid = 0;
  p->output_fd = -1;

  if (opts->capture && pipe2(pipefd, O_CLOEXEC) < 0)
    return -1;

  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    if (pipefd[0] >= 0) {
      close(pipefd[0]);
      close(pipefd[1]);
    }
    errno = e;
    return -1;
  }
  if (pid == 0) {
    /* Child: only async-signal-safe calls from here on. */
    setpgid(0, 0);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    int in = opts->stdin_fd;
    if (in < 0)
      in = open("/dev/null", O_RDONLY);
    int out = opts->stdout_fd;
    int capture = opts->capture ? pipefd[1] : -1;
    /* A source that is itself 0, 1 or 2 (vab started with a standard
     * descriptor closed) would be overwritten by an earlier dup2(). */
    in = lift_above_stdio(in);
    out = lift_above_stdio(out);
    capture = lift_above_stdio(capture);
    if (in >= 0)
      dup2(in, 0);
    if (out >= 0) {
      dup2(out, 1);
      if (capture >= 0)
        dup2(capture, 2);
    } else if (capture >= 0) {
      dup2(capture, 1);
      dup2(capture, 2);
    }
    close_from(3);
    if (opts->cwd != NULL && chdir(opts->cwd) < 0)
      _exit(126);
    if (opts->envp != NULL)
      execvpe(argv[0], argv, opts->envp);
    else
      execvp(argv[0], argv);
    _exit(errno == ENOENT ? 127 : 126);
  }
  setpgid(pid, pid);  /* also from the parent: no race with kill() */
  if (pipefd[1] >= 0)
    close(pipefd[1]);
  p->pid = pid;
  p->output_fd = pipefd[0];
  return 0;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Split what was read into lines; long lines are cut at the buffer size. */
static void feed_lines(char *buf, size_t *used, subprocess_line_fn fn,
                       void *opaque, bool flush) {
  size_t start = 0;
  for (size_t i = 0; i < *used; i++) {
    if (buf[i] == '\n' || buf[i] == '\r') {
      buf[i] = '\0';
      if (fn && i > start)
        fn(opaque, buf + start);
      start = i + 1;
    }
  }
  if (start < *used && (flush || start == 0)) {
    if (flush || *used >= 4095) {
      buf[*used] = '\0';
      if (fn)
        fn(opaque, buf + start);
      start = *used;
    }
  }
  memmove(buf, buf + start, *used - start);
  *used -= start;
}

int subprocess_wait(struct subprocess *p, subprocess_line_fn line_fn,
                    void *line_opaque, subprocess_cancel_fn cancel_fn,
                    void *cancel_opaque, int timeout_ms, int *status) {
  char line[4096];
  size_t used = 0;
  long long deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
  int fail_errno = 0;

  while (p->output_fd >= 0) {
    struct pollfd pfd = {.fd = p->output_fd, .events = POLLIN};
    int r = poll(&pfd, 1, 200);
    if (r < 0 && errno != EINTR) {
      fail_errno = errno;
      break;
    }
    if (r > 0) {
      ssize_t n = read(p->output_fd, line + used, sizeof line - 1 - used);
      if (n < 0 && errno != EINTR && errno != EAGAIN) {
        fail_errno = errno;
        break;
      }
      if (n == 0) {
        feed_lines(line, &used, line_fn, line_opaque, true);
        close(p->output_fd);
        p->output_fd = -1;
        break;
      }
      if (n > 0) {
        used += (size_t)n;
        feed_lines(line, &used, line_fn, line_opaque, false);
      }
    }
    if (cancel_fn != NULL && cancel_fn(cancel_opaque)) {
      fail_errno = ECANCELED;
      break;
    }
    if (deadline && now_ms() > deadline) {
      fail_errno = ETIMEDOUT;
      break;
    }
  }

  /* Output closed (or never captured): wait for the exit itself. */
  while (fail_errno == 0) {
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
      p->pid = 0;
      if (status)
        *status = st;
      return 0;
    }
    if (r < 0 && errno != EINTR) {
      fail_errno = errno;
      break;
    }
    if (cancel_fn != NULL && cancel_fn(cancel_opaque)) {
      fail_errno = ECANCELED;
      break;
    }
    if (deadline && now_ms() > deadline) {
      fail_errno = ETIMEDOUT;
      break;
    }
    struct timespec ts = {0, 50 * 1000000};
    nanosleep(&ts, NULL);
  }
  subprocess_kill(p);
  errno = fail_errno;
  return -1;
}

/* Drain what the group writes during the grace period, so that a child
 * shutting down on SIGTERM is not blocked on a full pipe, nor killed by
 * SIGPIPE for writing to a closed one. */
static void drain_output(struct subprocess *p, int wait_ms) {
  if (p->output_fd < 0) {
    struct timespec ts = {0, (long)wait_ms * 1000000};
    nanosleep(&ts, NULL);
    return;
  }
  struct pollfd pfd = {.fd = p->output_fd, .events = POLLIN};
  if (poll(&pfd, 1, wait_ms) <= 0)
    return;
  char discard[4096];
  ssize_t n = read(p->output_fd, discard, sizeof discard);
  if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
    close(p->output_fd);   /* end of file: every writer is gone */
    p->output_fd = -1;
  }
}

void subprocess_kill(struct subprocess *p) {
  if (p->pid > 0) {
    kill(-p->pid, SIGTERM);
    double deadline = now_seconds() + 5.0;   /* the grace period */
    int st;
    while (waitpid(p->pid, &st, WNOHANG) != p->pid) {
      if (now_seconds() >= deadline) {
        kill(-p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        break;
      }
      drain_output(p, 100);
    }
    kill(-p->pid, SIGKILL);  /* stragglers in the group */
    p->pid = 0;
  }
  if (p->output_fd >= 0) {
    close(p->output_fd);
    p->output_fd = -1;
  }
}

void subprocess_describe_status(int status, char *out, size_t len) {
  if (WIFEXITED(status)) {
    int code = WEXITSTATUS(status);
    if (code == 127)
      snprintf(out, len, "exit status 127 (program not found)");
    else
      snprintf(out, len, "exit status %d", code);
  } else if (WIFSIGNALED(status))
    snprintf(out, len, "killed by signal %d (%s)", WTERMSIG(status),
             strsignal(WTERMSIG(status)));
  else
    snprintf(out, len, "wait status 0x%x", (unsigned)status);
}

bool subprocess_have_program(const char *name) {
  if (strchr(name, '/'))
    return access(name, X_OK) == 0;
  const char *path = getenv("PATH");
  if (path == NULL)
    path = "/usr/bin:/bin";
  while (*path) {
    const char *end = strchr(path, ':');
    size_t n = end ? (size_t)(end - path) : strlen(path);
    char full[4096];
    if (n > 0 && n + strlen(name) + 2 < sizeof full) {
      memcpy(full, path, n);
      full[n] = '/';
      strcpy(full + n + 1, name);
      struct stat st;
      if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0)
        return true;
    }
    if (end == NULL)
      break;
    path = end + 1;
  }
  return false;
}
