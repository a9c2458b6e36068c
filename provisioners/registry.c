/* Every step type vab knows, by its `type:` name: the schema halves
 * (vab/step.h) and the run halves (vab/provisioner.h), in the same order. */
#include <string.h>

#include "vab/provisioner.h"

#define STEP_TYPE(name)                                    \
  extern const struct vab_step_type vab_step_type_##name; \
  extern const struct vab_provisioner vab_provisioner_##name;
STEP_TYPE(file)
STEP_TYPE(shell)
STEP_TYPE(packages)
STEP_TYPE(users)
STEP_TYPE(hostname)
STEP_TYPE(timezone)
STEP_TYPE(services)
STEP_TYPE(firstboot)
STEP_TYPE(ansible)
STEP_TYPE(reboot)
#undef STEP_TYPE

static const struct vab_step_type *const step_types[] = {
  &vab_step_type_file,     &vab_step_type_shell,
  &vab_step_type_packages, &vab_step_type_users,
  &vab_step_type_hostname, &vab_step_type_timezone,
  &vab_step_type_services, &vab_step_type_firstboot,
  &vab_step_type_ansible,  &vab_step_type_reboot,
  NULL,
};

static const struct vab_provisioner *const provisioners[] = {
  &vab_provisioner_file,     &vab_provisioner_shell,
  &vab_provisioner_packages, &vab_provisioner_users,
  &vab_provisioner_hostname, &vab_provisioner_timezone,
  &vab_provisioner_services, &vab_provisioner_firstboot,
  &vab_provisioner_ansible,  &vab_provisioner_reboot,
};

#define N_PROVISIONERS (sizeof provisioners / sizeof provisioners[0])

const struct vab_step_type *const *vab_step_types(void) { return step_types; }

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
