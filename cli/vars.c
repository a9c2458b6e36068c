/* --var NAME=VALUE, shared by validate and build. */
#include <stdlib.h>
#include <string.h>

#include "cli/vars.h"

int cli_vars_add(struct cli_vars *v, char *arg) {
  char *eq = strchr(arg, '=');
  if (eq == NULL || eq == arg)
    return -1;
  struct vab_var *p = realloc(v->items, (v->n + 1) * sizeof *p);
  if (p == NULL)
    return -1;
  v->items = p;
  *eq = '\0';
  v->items[v->n].name = arg;
  v->items[v->n].value = eq + 1;
  v->n++;
  return 0;
}

void cli_vars_release(struct cli_vars *v) {
  free(v->items);
  v->items = NULL;
  v->n = 0;
}
