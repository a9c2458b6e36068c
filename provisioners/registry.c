/* Every provisioner vab knows, by its `type:` name. */
#include <string.h>

#include "vab/provisioner.h"

extern const struct vab_provisioner vab_provisioner_file;
extern const struct vab_provisioner vab_provisioner_shell;
extern const struct vab_provisioner vab_provisioner_packages;
extern const struct vab_provisioner vab_provisioner_users;
extern const struct vab_provisioner vab_provisioner_hostname;
extern const struct vab_provisioner vab_provisioner_timezone;
extern const struct vab_provisioner vab_provisioner_services;
extern const struct vab_provisioner vab_provisioner_firstboot;

static const struct vab_provisioner *const provisioners[] = {
  &vab_provisioner_file,     &vab_provisioner_shell,
  &vab_provisioner_packages, &vab_provisioner_users,
  &vab_provisioner_hostname, &vab_provisioner_timezone,
  &vab_provisioner_services, &vab_provisioner_firstboot,
};

#define N_PROVISIONERS (sizeof provisioners / sizeof provisioners[0])

const struct vab_provisioner *vab_provisioner_by_name(const char *name) {
  for (size_t i = 0; i < N_PROVISIONERS; i++)
    if (strcmp(provisioners[i]->name, name) == 0)
      return provisioners[i];
  return NULL;
}

size_t vab_provisioner_count(void) { return N_PROVISIONERS; }

const struct vab_provisioner *vab_provisioner_at(size_t i) {
  return i < N_PROVISIONERS ? provisioners[i] : NULL;
}
