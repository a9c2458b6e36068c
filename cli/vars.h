#ifndef VAB_CLI_VARS_H
#define VAB_CLI_VARS_H

#include "vab/template.h"

struct cli_vars {
  struct vab_var *items;
  size_t n;
};

/* Split "NAME=VALUE" in place and add it; -1 if malformed or no memory. */
int cli_vars_add(struct cli_vars *v, char *arg);
void cli_vars_release(struct cli_vars *v);

#endif
