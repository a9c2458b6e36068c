/* The OpenSSH client side of the booted steps: builder/ssh.c owns every
 * ssh and ssh-keygen run of the host.
 *
 * A build makes one ed25519 key pair in a private (0700) temporary folder,
 * with the known_hosts file beside it, and removes the folder when its
 * booted steps end, on every path out.  Every ssh run reads no user or
 * system configuration (-F none), never the user's ~/.ssh or agent, and
 * checks the guest's host key strictly against that one known_hosts line:
 *
 *   ssh -F none -o BatchMode=yes -o StrictHostKeyChecking=yes
 *       -o UserKnownHostsFile=DIR/known_hosts -o GlobalKnownHostsFile=/dev/null
 *       -o IdentitiesOnly=yes -o IdentityAgent=none -o IdentityFile=DIR/id_ed25519
 *       -o ConnectTimeout=10 -o ServerAliveInterval=5 -o ServerAliveCountMax=6
 *       -o LogLevel=ERROR -p PORT -l root 127.0.0.1 -- COMMAND
 *
 * ssh's own failures exit 255; a remote command's status is passed on. */
#ifndef VAB_BUILDER_SSH_H
#define VAB_BUILDER_SSH_H

#include <limits.h>
#include <stdint.h>
#include "vab/error.h"
#include "common/subprocess.h"

struct buf;

#define VAB_SSH_HOST "127.0.0.1"
#define VAB_SSH_USER "root"
#define VAB_SSH_FAILED 255   /* ssh's exit status for its own errors */

struct vab_ssh {
  struct vab_ctx *ctx;
  char dir[PATH_MAX / 2];        /* the private folder; "" when none */
  char identity[PATH_MAX];       /* DIR/id_ed25519 */
  char public_key[512];          /* DIR/id_ed25519.pub's line, no newline */
  char known_hosts[PATH_MAX];    /* DIR/known_hosts */
  unsigned port;                 /* on 127.0.0.1, once known */
};

/* The private folder in parent and the key pair in it (ssh-keygen). */
int vab_ssh_init(struct vab_ctx *ctx, const char *parent, struct vab_ssh *s);
/* Remove the folder and everything in it.  Fine on a zeroed struct. */
void vab_ssh_cleanup(struct vab_ssh *s);

/* A host key pair for a guest that has none: DIR/NAME and DIR/NAME.pub. */
int vab_ssh_host_keygen(struct vab_ssh *s, const char *name);

/* "[HOST]:PORT ssh-ed25519 BASE64\n" for a public key line
 * ("ssh-ed25519 BASE64 [comment]"); -1 (with an error) when the line is
 * not one ed25519 public key. */
int vab_ssh_known_hosts_line(struct vab_ctx *ctx, struct buf *out,
                             const char *host, unsigned port,
                             const char *public_key);
/* Write DIR/known_hosts for the guest's key at s->port. */
int vab_ssh_set_host_key(struct vab_ssh *s, const char *public_key);

/* The argv above for command (malloc'd strings and array, NULL-terminated;
 * free with vab_ssh_argv_free).  -1 with an error when a path holds a
 * character ssh's option parser would split or expand (space, '%'...). */
int vab_ssh_argv(struct vab_ctx *ctx, const struct vab_ssh *s,
                 const char *command, char ***argv);
void vab_ssh_argv_free(char **argv);

/* "export NAME='VALUE'\n" for each "NAME=VALUE" of env (NULL-terminated,
 * may be NULL), values quoted for sh.  -1 when a name is not one. */
int vab_ssh_export_env(struct vab_ctx *ctx, struct buf *out,
                       const char *const *env);

/* Run command over SSH: stdin from stdin_fd (-1: /dev/null), stdout into
 * stdout_fd (-1: with stderr, line by line to line_fn).  At most timeout_ms
 * (0: none), then the ssh child is killed and errno is ETIMEDOUT; Ctrl-C
 * gives ECANCELED.  0 with *status the exit status (255: ssh failed), or
 * -1 with errno and no error recorded (the caller names what timed out). */
int vab_ssh_run(struct vab_ssh *s, const char *command, int stdin_fd,
                int stdout_fd, subprocess_line_fn line_fn, void *opaque,
                uint64_t timeout_ms, int *status);

#endif
