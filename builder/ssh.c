/* OpenSSH as a subprocess (builder/ssh.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "builder/ssh.h"
#include "common/buf.h"
#include "common/fsutil.h"
#include "common/io.h"
#include "common/shell-quote.h"
#include "vab/progress.h"

#define SSH_KEYGEN_TIMEOUT_MS 60000

static int cancel_cb(void *opaque) { return vab_cancelled(opaque); }

static void debug_line(void *opaque, const char *line) {
  vab_log(opaque, VAB_LOG_DEBUG, "ssh-keygen: %s", line);
}

/* ssh-keygen -q -t ed25519 -N '' -C COMMENT -f PATH */
static int keygen(struct vab_ctx *ctx, const char *path, const char *comment) {
  if (!subprocess_have_program("ssh-keygen")) {
    vab_error(ctx, VAB_E_SUBPROCESS,
              "booted steps need OpenSSH's ssh-keygen, which is not on PATH");
    vab_diag_hint(ctx, "install the Debian package openssh-client");
    return -1;
  }
  char *argv[] = {"ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                  "-C", (char *)comment, "-f", (char *)path, NULL};
  struct subprocess p;
  if (subprocess_start(&p, argv, NULL) < 0)
    return vab_error_errno(ctx, VAB_E_SUBPROCESS, errno,
                           "cannot run ssh-keygen");
  int status = 0;
  if (subprocess_wait(&p, debug_line, ctx, cancel_cb, ctx,
                      SSH_KEYGEN_TIMEOUT_MS, &status) < 0) {
    if (errno == ECANCELED)
      return vab_check_cancel(ctx);
    return vab_error_errno(ctx, VAB_E_SUBPROCESS, errno,
                           "ssh-keygen of '%s' failed", path);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    char how[96];
    subprocess_describe_status(status, how, sizeof how);
    return vab_error(ctx, VAB_E_SUBPROCESS,
                     "ssh-keygen of '%s' failed (%s); the build log has its "
                     "output", path, how);
  }
  return 0;
}

/* The first line of a small file, without its newline. */
static int read_line(struct vab_ctx *ctx, const char *path, char *out,
                     size_t len) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot open '%s'", path);
  ssize_t n = read_full(fd, out, len - 1);
  int e = errno;
  close(fd);
  if (n < 0)
    return vab_error_errno(ctx, VAB_E_IO, e, "cannot read '%s'", path);
  out[n] = '\0';
  out[strcspn(out, "\r\n")] = '\0';
  return 0;
}

int vab_ssh_init(struct vab_ctx *ctx, const char *parent, struct vab_ssh *s) {
  memset(s, 0, sizeof *s);
  s->ctx = ctx;
  int n = snprintf(s->dir, sizeof s->dir, "%s/vab-ssh-XXXXXX", parent);
  if (n < 0 || (size_t)n >= sizeof s->dir) {
    s->dir[0] = '\0';
    return vab_error(ctx, VAB_E_USAGE, "work folder path too long: '%s'",
                     parent);
  }
  if (mkdtemp(s->dir) == NULL) {
    int e = errno;
    s->dir[0] = '\0';
    return vab_error_errno(ctx, VAB_E_IO, e,
                           "cannot create a private folder in '%s'", parent);
  }
  /* mkdtemp makes it 0700; say so in case of an odd umask. */
  if (chmod(s->dir, 0700) < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot chmod '%s'", s->dir);
  snprintf(s->identity, sizeof s->identity, "%s/id_ed25519", s->dir);
  snprintf(s->known_hosts, sizeof s->known_hosts, "%s/known_hosts", s->dir);
  char pub[PATH_MAX + 8];
  snprintf(pub, sizeof pub, "%s.pub", s->identity);
  if (keygen(ctx, s->identity, "vab-build") < 0 ||
      read_line(ctx, pub, s->public_key, sizeof s->public_key) < 0)
    return -1;
  return 0;
}

void vab_ssh_cleanup(struct vab_ssh *s) {
  if (s->dir[0] != '\0')
    remove_tree(s->dir);
  s->dir[0] = '\0';
}

int vab_ssh_host_keygen(struct vab_ssh *s, const char *name) {
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/%s", s->dir, name);
  return keygen(s->ctx, path, "");
}

static bool base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=';
}

int vab_ssh_known_hosts_line(struct vab_ctx *ctx, struct buf *out,
                             const char *host, unsigned port,
                             const char *public_key) {
  static const char type[] = "ssh-ed25519 ";
  const char *p = public_key;
  while (*p == ' ' || *p == '\t')
    p++;
  size_t blob = 0;
  if (strncmp(p, type, strlen(type)) == 0)
    for (const char *b = p + strlen(type); base64_char(*b); b++)
      blob++;
  const char *end = p + strlen(type) + blob;
  /* An ed25519 key's blob is 51 bytes: 68 base64 characters. */
  if (blob != 68 || (*end != '\0' && *end != ' ' && *end != '\t' &&
                     *end != '\n' && *end != '\r'))
    return vab_error(ctx, VAB_E_GUEST,
                     "the guest's host key is not one ed25519 public key: "
                     "'%.80s'", public_key);
  if (port == 0 || port > 65535)
    return vab_error(ctx, VAB_E_INTERNAL, "known_hosts: bad port %u", port);
  if (buf_printf(out, "[%s]:%u %.*s\n", host, port,
                 (int)(strlen(type) + blob), p) < 0)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  return 0;
}

int vab_ssh_set_host_key(struct vab_ssh *s, const char *public_key) {
  struct buf line = BUF_INIT;
  if (vab_ssh_known_hosts_line(s->ctx, &line, VAB_SSH_HOST, s->port,
                               public_key) < 0)
    return -1;
  int fd = open(s->known_hosts,
                O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  int r = 0;
  if (fd < 0 || write_full(fd, line.data, line.len) < 0)
    r = vab_error_errno(s->ctx, VAB_E_IO, errno, "cannot write '%s'",
                        s->known_hosts);
  if (fd >= 0 && close(fd) < 0 && r == 0)
    r = vab_error_errno(s->ctx, VAB_E_IO, errno, "cannot write '%s'",
                        s->known_hosts);
  buf_release(&line);
  return r;
}

/* ssh splits these options' values at white space and expands '%' and
 * '~' in them: such a path would name another file. */
static bool safe_option_path(const char *path) {
  return path[0] == '/' && strpbrk(path, " \t\n\r%~\"'\\=,") == NULL;
}

void vab_ssh_argv_free(char **argv) {
  for (size_t i = 0; argv != NULL && argv[i] != NULL; i++)
    free(argv[i]);
  free(argv);
}

int vab_ssh_argv(struct vab_ctx *ctx, const struct vab_ssh *s,
                 const char *command, char ***out) {
  if (!safe_option_path(s->identity) || !safe_option_path(s->known_hosts))
    return vab_error(ctx, VAB_E_USAGE,
                     "the work folder '%s' holds a character that ssh's "
                     "options cannot take (white space, %%, ~, quotes, =, ,)",
                     s->dir);
  char port[16];
  snprintf(port, sizeof port, "%u", s->port);
  char known[PATH_MAX + 32], identity[PATH_MAX + 32];
  snprintf(known, sizeof known, "UserKnownHostsFile=%s", s->known_hosts);
  snprintf(identity, sizeof identity, "IdentityFile=%s", s->identity);
  const char *const args[] = {
    "ssh", "-F", "none",
    "-o", "BatchMode=yes",
    "-o", "StrictHostKeyChecking=yes",
    "-o", known,
    "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "IdentitiesOnly=yes",
    "-o", "IdentityAgent=none",
    "-o", identity,
    "-o", "ConnectTimeout=10",
    "-o", "ServerAliveInterval=5",
    "-o", "ServerAliveCountMax=6",
    "-o", "LogLevel=ERROR",
    "-p", port, "-l", VAB_SSH_USER, VAB_SSH_HOST, "--", command,
  };
  size_t n = sizeof args / sizeof args[0];
  char **argv = calloc(n + 1, sizeof *argv);
  if (argv == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  for (size_t i = 0; i < n; i++)
    if ((argv[i] = strdup(args[i])) == NULL) {
      vab_ssh_argv_free(argv);
      return vab_error(ctx, VAB_E_NOMEM, "out of memory");
    }
  *out = argv;
  return 0;
}

static bool env_name(const char *s, size_t len) {
  if (len == 0 || (s[0] >= '0' && s[0] <= '9'))
    return false;
  for (size_t i = 0; i < len; i++)
    if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
          (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
      return false;
  return true;
}

int vab_ssh_export_env(struct vab_ctx *ctx, struct buf *out,
                       const char *const *env) {
  for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
    const char *eq = strchr(env[i], '=');
    size_t len = eq ? (size_t)(eq - env[i]) : 0;
    if (eq == NULL || !env_name(env[i], len))
      return vab_error(ctx, VAB_E_INTERNAL,
                       "'%.64s' is not NAME=VALUE for the guest's environment",
                       env[i]);
    if (buf_printf(out, "export %.*s=", (int)len, env[i]) < 0 ||
        shell_quote(out, eq + 1) < 0 || buf_putc(out, '\n') < 0)
      return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  return 0;
}

int vab_ssh_run(struct vab_ssh *s, const char *command, int stdin_fd,
                int stdout_fd, subprocess_line_fn line_fn, void *opaque,
                uint64_t timeout_ms, int *status) {
  char **argv = NULL;
  if (vab_ssh_argv(s->ctx, s, command, &argv) < 0) {
    errno = EINVAL;
    return -1;
  }
  struct subprocess_opts opts = SUBPROCESS_OPTS_INIT;
  opts.stdin_fd = stdin_fd;
  opts.stdout_fd = stdout_fd;
  opts.capture = true;
  struct subprocess p;
  int r = subprocess_start(&p, argv, &opts);
  int e = errno;
  vab_ssh_argv_free(argv);
  if (r < 0) {
    errno = e;
    return -1;
  }
  int limit = timeout_ms == 0 ? 0
              : timeout_ms > (uint64_t)INT32_MAX ? INT32_MAX
                                                 : (int)timeout_ms;
  int wait_status = 0;
  if (subprocess_wait(&p, line_fn, opaque, cancel_cb, s->ctx, limit,
                      &wait_status) < 0)
    return -1;
  if (WIFEXITED(wait_status))
    *status = WEXITSTATUS(wait_status);
  else
    *status = VAB_SSH_FAILED;
  return 0;
}
