/* The guest interface's dispatch (see vab/guest.h): each call goes to the
 * handle's ops.  vab_guest_script_at() is the one call with logic of its
 * own, so that every implementation reports a failed step the same way. */
#include "vab/guest.h"

int vab_guest_write(struct vab_guest *g, const char *path, const void *data,
                    size_t len) {
  return g->ops->write(g, path, data, len);
}

int vab_guest_upload(struct vab_guest *g, const char *host_path,
                     const char *path) {
  return g->ops->upload(g, host_path, path);
}

int vab_guest_copy_in(struct vab_guest *g, const char *host_path,
                      const char *dir) {
  return g->ops->copy_in(g, host_path, dir);
}

int vab_guest_read(struct vab_guest *g, const char *path, char **data,
                   size_t *len) {
  return g->ops->read(g, path, data, len);
}

int vab_guest_mkdir_p(struct vab_guest *g, const char *path) {
  return g->ops->mkdir_p(g, path);
}

int vab_guest_chmod(struct vab_guest *g, unsigned mode, const char *path) {
  return g->ops->chmod(g, mode, path);
}

int vab_guest_exists(struct vab_guest *g, const char *path, bool *exists) {
  return g->ops->exists(g, path, exists);
}

int vab_guest_rm_rf(struct vab_guest *g, const char *path) {
  return g->ops->rm_rf(g, path);
}

int vab_guest_symlink(struct vab_guest *g, const char *target,
                      const char *linkname) {
  return g->ops->symlink(g, target, linkname);
}

int vab_guest_script(struct vab_guest *g, const char *script,
                     const char *const *env, int *status) {
  return g->ops->script(g, script, env, status);
}

const char *vab_guest_output_tail(const struct vab_guest *g) {
  return g->ops->output_tail(g);
}

int vab_guest_ssh_endpoint(struct vab_guest *g, struct vab_guest_ssh *ssh) {
  return g->ops->ssh_endpoint(g, ssh);
}

int vab_guest_reboot(struct vab_guest *g) {
  return g->ops->reboot(g);
}

int vab_guest_script_at(struct vab_guest *g, const char *script,
                        const char *const *env, const struct vab_mark *mark,
                        const char *what) {
  int status = 0;
  if (vab_guest_script(g, script, env, &status) < 0)
    return -1;
  if (status == 0)
    return 0;
  vab_error_at(g->ctx, VAB_E_PROVISION, mark,
               "%s failed in the guest (exit status %d)", what, status);
  const char *tail = vab_guest_output_tail(g);
  if (*tail != '\0')
    vab_diag_hint(g->ctx, "its last output lines:\n%s", tail);
  return -1;
}
