/* --var NAME=VALUE, shared by validate and build. */
#include <stdlib.h>
#include <string.h>

#include "cli/vars.h"

int cli_vars_add(struct cli_vars *v, char *arg) {
  char *eq = strchr(arg, '=');
  if (eq == NULL || eq == arg)
    return -1;
  struct vab_var var = {.name = arg, .value = eq + 1};
  if (cli_vars_append(v, var) < 0)
    return -1;
  *eq = '\0';
  return 0;
}

void cli_vars_release(struct cli_vars *v) {
  cli_vars_reset(v);
}
