#ifndef VAB_CLI_VARS_H
#define VAB_CLI_VARS_H

#include "common/vector.h"
#include "vab/template.h"

/* The --var NAME=VALUE options, in order. */
DEFINE_VECTOR_TYPE(cli_vars, struct vab_var);

/* Split "NAME=VALUE" in place and add it; -1 if malformed or no memory. */
int cli_vars_add(struct cli_vars *v, char *arg);
void cli_vars_release(struct cli_vars *v);

#endif
