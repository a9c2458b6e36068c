/* vab: the guest, as a step type's run half sees it.
 *
 * A struct vab_guest is a handle on the machine being built: its root
 * filesystem and a way to run scripts in it.  A provisioner's run() gets
 * one and uses only the calls below; it never learns what is behind it.
 *
 * Who implements it: builder/guest.c (the libguestfs session that a build
 * hands to run(); its other calls, partitioning, mounts and the like, are
 * in builder/guest.h), the booted appliance over SSH (for `booted` steps)
 * and tests/provisioners/fake-guest.c (an in-memory
 * guest that records every call, for testing run halves without a VM).
 * An implementation embeds a struct vab_guest, points it at its own const
 * struct vab_guest_ops (as nbdkit's next_ops or curl's Curl_handler) and
 * finds itself back from the handle each op receives.
 *
 * Paths: every "path" is a guest path, absolute, in the guest's root
 * filesystem ("/etc/hostname"); "host_path" names a file of the machine vab
 * runs on.  A call does not create missing parent folders, except
 * vab_guest_mkdir_p().
 *
 * Errors: each call returns 0 or -1, with the error recorded on the handle's
 * context (VAB_E_GUEST when the guest session itself failed, VAB_E_NOMEM,
 * VAB_E_CANCELLED).  A script that runs and exits non-zero is not a failed
 * call: vab_guest_script() reports its status, and vab_guest_script_at()
 * turns it into a VAB_E_PROVISION error at the step's template mark.
 */
#ifndef VAB_GUEST_H
#define VAB_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vab/error.h"

struct vab_guest;

/* How a host tool reaches a booted guest over SSH (ansible-playbook does):
 * the communicator's forwarded port on 127.0.0.1, the build's one-time
 * key, and a known_hosts file that holds only the guest's host key, so
 * that the tool checks it strictly.  The strings belong to the guest and
 * live as long as its boot. */
struct vab_guest_ssh {
  const char *host;               /* "127.0.0.1" */
  unsigned port;
  const char *user;               /* "root" */
  const char *identity_file;      /* host path of the private key */
  const char *known_hosts_file;   /* host path; names [host]:port */
};

/* Write data to a guest file, creating or replacing it. */
int vab_guest_write(struct vab_guest *g, const char *path, const void *data,
                    size_t len);
/* Copy a host file to a guest file. */
int vab_guest_upload(struct vab_guest *g, const char *host_path,
                     const char *path);
/* Copy a host folder or file into guest folder dir (keeps its name). */
int vab_guest_copy_in(struct vab_guest *g, const char *host_path,
                      const char *dir);
/* Read a whole guest file into memory, with no size limit of vab's own
 * (callers read small files: configs, os-release); malloc'd and
 * NUL-terminated, *len (if not NULL) counts any NULs inside. */
int vab_guest_read(struct vab_guest *g, const char *path, char **data,
                   size_t *len);
int vab_guest_mkdir_p(struct vab_guest *g, const char *path);
int vab_guest_chmod(struct vab_guest *g, unsigned mode, const char *path);
/* *exists: whether path names anything (a file, a folder, a link). */
int vab_guest_exists(struct vab_guest *g, const char *path, bool *exists);
int vab_guest_rm_rf(struct vab_guest *g, const char *path);
/* Make linkname a symbolic link to target, replacing what is there. */
int vab_guest_symlink(struct vab_guest *g, const char *target,
                      const char *linkname);

/* Run a shell script as root in the guest with env ("NAME=VALUE", NULL-
 * terminated, may be NULL) added to a fixed, non-interactive environment.
 * Its output goes to the build log as it runs.  *status gets the exit
 * status (0-255); the call itself fails only when the guest session does.
 * The last output lines are kept for an error message:
 * vab_guest_output_tail(). */
int vab_guest_script(struct vab_guest *g, const char *script,
                     const char *const *env, int *status);
/* vab_guest_script() for provisioners: a non-zero exit becomes a
 * VAB_E_PROVISION error at mark, "WHAT failed in the guest (exit status
 * N)", with the last output lines as its hint. */
int vab_guest_script_at(struct vab_guest *g, const char *script,
                        const char *const *env, const struct vab_mark *mark,
                        const char *what);
/* The last lines the previous script printed ("" if none). */
const char *vab_guest_output_tail(const struct vab_guest *g);

/* Only a booted guest (the appliance running under qemu, reached over
 * SSH) can do these two; the builder VM's guest fails them with
 * VAB_E_GUEST.  Step types that need them are VAB_STEP_BOOTED (vab/step.h),
 * so a build hands them a booted guest. */
/* Fill *ssh with how to reach the guest. */
int vab_guest_ssh_endpoint(struct vab_guest *g, struct vab_guest_ssh *ssh);
/* Reboot the guest and wait until it answers again.  A booted guest bounds
 * every call, this one included, by the running step's `timeout:` (the
 * builder sets it), so the call takes no time limit of its own. */
int vab_guest_reboot(struct vab_guest *g);

/* For implementations only: the calls above dispatch to these, with the
 * same arguments and conventions; every op is required.
 * vab_guest_script_at() is built on script and output_tail. */
struct vab_guest_ops {
  const char *name;   /* "libguestfs", "fake": for debug logs */
  int (*write)(struct vab_guest *g, const char *path, const void *data,
               size_t len);
  int (*upload)(struct vab_guest *g, const char *host_path, const char *path);
  int (*copy_in)(struct vab_guest *g, const char *host_path, const char *dir);
  int (*read)(struct vab_guest *g, const char *path, char **data,
              size_t *len);
  int (*mkdir_p)(struct vab_guest *g, const char *path);
  int (*chmod)(struct vab_guest *g, unsigned mode, const char *path);
  int (*exists)(struct vab_guest *g, const char *path, bool *exists);
  int (*rm_rf)(struct vab_guest *g, const char *path);
  int (*symlink)(struct vab_guest *g, const char *target,
                 const char *linkname);
  int (*script)(struct vab_guest *g, const char *script,
                const char *const *env, int *status);
  const char *(*output_tail)(const struct vab_guest *g);
  int (*ssh_endpoint)(struct vab_guest *g, struct vab_guest_ssh *ssh);
  int (*reboot)(struct vab_guest *g);
};

/* The handle an implementation embeds.  Step types never look inside. */
struct vab_guest {
  const struct vab_guest_ops *ops;
  struct vab_ctx *ctx;   /* where the calls record their errors */
};

#endif
