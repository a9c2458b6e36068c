/* A fake guest for testing provisioners' run halves without a VM: an
 * implementation of vab/guest.h that keeps the guest's files in memory and
 * records every call with its arguments, the scripts with their
 * environment, and answers each script with an exit status the test chose.
 *
 *   struct fake_guest *f = fake_guest_new(ctx);
 *   fake_guest_add_file(f, "/etc/group", "operator:x:37:\n");
 *   fake_guest_script_result(f, 1, 100, "E: Unable to locate package");
 *   p->run(ctx, config, fake_guest_handle(f));
 *   const struct fake_call *c = fake_guest_find(f, "script", 0);
 *
 * Files: write and upload store a file (upload stores the host file's
 * bytes), read returns one (an error naming the path when there is none),
 * exists answers for files, folders made by mkdir_p and symlinks, rm_rf
 * forgets a path and all under it.  Nothing checks that parents exist. */
#ifndef VAB_TESTS_FAKE_GUEST_H
#define VAB_TESTS_FAKE_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include "vab/guest.h"

struct fake_call {
  const char *op;     /* "write", "upload", "copy_in", "read", "mkdir_p",
                         "chmod", "exists", "rm_rf", "symlink", "script",
                         "ssh_endpoint", "reboot" */
  char *path;         /* the guest path; copy_in: the folder; symlink: the
                         link's name; script: NULL */
  char *arg;          /* write: the data; upload, copy_in: the host path;
                         symlink: the target; script: the script text */
  size_t arg_len;
  unsigned mode;      /* chmod */
  char **env;         /* script: a NULL-terminated copy of env (never NULL) */
  int status;         /* script: the exit status answered */
};

struct fake_guest;

struct fake_guest *fake_guest_new(struct vab_ctx *ctx);
void fake_guest_free(struct fake_guest *f);
/* What a provisioner's run() gets. */
struct vab_guest *fake_guest_handle(struct fake_guest *f);

/* Make the fake a booted guest: ssh_endpoint answers *ssh (its strings
 * must outlive the fake), reboot succeeds.  Before, both fail as the
 * builder VM's guest does. */
void fake_guest_set_booted(struct fake_guest *f,
                           const struct vab_guest_ssh *ssh);

/* A file the guest has before the step runs. */
void fake_guest_add_file(struct fake_guest *f, const char *path,
                         const char *text);
/* The content of a guest file now, or NULL; *len if not NULL. */
const char *fake_guest_file(const struct fake_guest *f, const char *path,
                            size_t *len);

/* Script number nth (0-based, in call order) exits with status and leaves
 * tail as its last output lines; other scripts exit 0 with no output. */
void fake_guest_script_result(struct fake_guest *f, size_t nth, int status,
                              const char *tail);
/* The next call of op fails as a broken session would: -1 and a
 * VAB_E_GUEST error on the context. */
void fake_guest_fail(struct fake_guest *f, const char *op);

size_t fake_guest_call_count(const struct fake_guest *f);
const struct fake_call *fake_guest_call(const struct fake_guest *f, size_t i);
/* The nth call (0-based) of op, or NULL. */
const struct fake_call *fake_guest_find(const struct fake_guest *f,
                                        const char *op, size_t nth);
/* How many calls of op there were. */
size_t fake_guest_count(const struct fake_guest *f, const char *op);

#endif
