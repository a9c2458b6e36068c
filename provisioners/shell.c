/* shell: run commands in the guest (chroot), inline or from a script on
 * the host, with extra environment variables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provisioners/util.h"
#include "vab/guest.h"
#include "common/buf.h"

struct shell_config {
  struct vab_mark mark;              /* the step */
  struct prov_list lines;            /* inline: one command per item */
  char *script;                      /* absolute host path, or NULL */
  const char *script_written;
  struct vab_mark script_mark;
  const char **env_names;            /* n_env of each, strings in the tree */
  const char **env_values;
  size_t n_env;
};

static const char *const shell_keys[] = {"inline", "script", "env", NULL};
static const char *const shell_path_keys[] = {"script", NULL};

static void shell_free(void *opaque) {
  struct shell_config *c = opaque;
  if (c == NULL)
    return;
  prov_list_free(&c->lines);
  free(c->script);
  free(c->env_names);
  free(c->env_values);
  free(c);
}

static int read_env(struct vab_ctx *ctx, const struct vab_node *spec,
                    struct shell_config *c) {
  const struct vab_node *env = vab_node_get(spec, "env");
  if (env == NULL || env->kind == VAB_NODE_NULL)
    return 0;
  if (env->kind != VAB_NODE_MAP)
    return vab_error_at(ctx, VAB_E_SCHEMA, &env->mark,
                        "env must be a mapping of NAME: value");
  c->env_names = calloc(env->n + 1, sizeof *c->env_names);
  c->env_values = calloc(env->n + 1, sizeof *c->env_values);
  if (c->env_names == NULL || c->env_values == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  int r = 0;
  for (size_t i = 0; i < env->n; i++) {
    const struct vab_node *value = env->items[i];
    if (!prov_valid_env_name(env->keys[i])) {
      r = vab_error_at(ctx, VAB_E_SCHEMA, &env->key_marks[i],
                       "'%.200s' is not a valid environment variable name",
                       env->keys[i]);
      continue;
    }
    const char *text = "";
    if (value->kind != VAB_NODE_NULL &&
        vab_node_string(ctx, value, env->keys[i], &text) < 0) {
      r = -1;
      continue;
    }
    c->env_names[c->n_env] = env->keys[i];
    c->env_values[c->n_env] = text;
    c->n_env++;
  }
  return r;
}

static int shell_config(struct vab_ctx *ctx, const struct vab_node *spec,
                        const char *template_dir, void **out) {
  struct shell_config *c = calloc(1, sizeof *c);
  if (c == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  c->mark = spec->mark;
  int r = prov_exactly_one(ctx, spec, "shell", "inline", "script");
  if (prov_list_read(ctx, spec, "inline", "inline", &c->lines) < 0)
    r = -1;
  if (prov_host_path(ctx, spec, "script", "script", template_dir, &c->script,
                     &c->script_written, &c->script_mark) < 0)
    r = -1;
  if (read_env(ctx, spec, c) < 0)
    r = -1;
  if (r < 0) {
    shell_free(c);
    return -1;
  }
  *out = c;
  return 0;
}

static int shell_check(struct vab_ctx *ctx, const void *opaque) {
  const struct shell_config *c = opaque;
  int r = 0;
  if (c->lines.node != NULL && c->lines.n == 0)
    r = vab_error_at(ctx, VAB_E_SCHEMA, &c->lines.node->mark,
                     "inline has no commands");
  for (size_t i = 0; i < c->lines.n; i++)
    if (c->lines.items[i][0] == '\0')
      r = vab_error_at(ctx, VAB_E_SCHEMA, prov_list_mark(&c->lines, i),
                       "an inline command is empty");
  if (c->script != NULL &&
      prov_check_host_file(ctx, c->script, c->script_written, &c->script_mark,
                           "script") < 0)
    r = -1;
  return r;
}

static size_t shell_inputs(const void *opaque, const char **paths, size_t max) {
  const struct shell_config *c = opaque;
  if (c->script == NULL)
    return 0;
  if (max > 0)
    paths[0] = c->script;
  return 1;
}

/* Inline commands run as one script, so that `cd` and variables carry
 * from one line to the next.  set -e stops at the first failure (an
 * `exit` too), and the EXIT trap names the command that was running, which
 * the error then points at. */
static const char inline_prologue[] =
  "trap 'vab_status=$?; if [ \"$vab_status\" -ne 0 ]; then "
  "echo \"vab: inline command $vab_command failed (exit status "
  "$vab_status)\" >&2; fi' EXIT\n"
  "set -e\n";
static const char inline_marker[] = "vab: inline command ";

/* Scripts beyond this are not shell scripts anyone meant to upload. */
#define SHELL_MAX_SCRIPT (16u << 20)

static int read_script(struct vab_ctx *ctx, const struct shell_config *c,
                       struct buf *out) {
  FILE *f = fopen(c->script, "rbe");
  if (f == NULL)
    return vab_error_at(ctx, VAB_E_IO, &c->script_mark,
                        "cannot read script '%.200s'", c->script_written);
  char chunk[65536];
  size_t n;
  int r = 0;
  while (r == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (out->len + n > SHELL_MAX_SCRIPT)
      r = vab_error_at(ctx, VAB_E_IO, &c->script_mark,
                       "script '%.200s' is larger than 16 MiB", c->script_written);
    else if (buf_append(out, chunk, n) < 0)
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  if (r == 0 && ferror(f))
    r = vab_error_at(ctx, VAB_E_IO, &c->script_mark, "cannot read script '%.200s'",
                     c->script_written);
  fclose(f);
  return r;
}

/* Which inline command failed, from the marker the wrapper printed last. */
static size_t failed_command(const char *tail, size_t n) {
  const char *at = NULL;
  for (const char *p = strstr(tail, inline_marker); p != NULL;
       p = strstr(p + 1, inline_marker))
    at = p;
  if (at == NULL)
    return 0;
  long i = strtol(at + strlen(inline_marker), NULL, 10);
  return i >= 1 && (size_t)i <= n ? (size_t)i : 0;
}

static int shell_run(struct vab_ctx *ctx, const void *opaque,
                     struct vab_guest *guest) {
  const struct shell_config *c = opaque;
  struct buf script = BUF_INIT;
  const char **env = calloc(c->n_env + 1, sizeof *env);
  int r = env == NULL ? vab_error(ctx, VAB_E_NOMEM, "out of memory") : 0;
  for (size_t i = 0; r == 0 && i < c->n_env; i++)
    if (asprintf((char **)&env[i], "%s=%s", c->env_names[i],
                 c->env_values[i]) < 0) {
      env[i] = NULL;
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
    }
  if (r == 0 && c->script != NULL) {
    r = read_script(ctx, c, &script);
  } else if (r == 0) {
    r = buf_puts(&script, inline_prologue);
    for (size_t i = 0; r == 0 && i < c->lines.n; i++)
      r = buf_printf(&script, "vab_command=%zu\n%s\n", i + 1,
                     c->lines.items[i]);
    if (r < 0)
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  int status = 0;
  if (r == 0)
    r = vab_guest_script(guest, script.data, env, &status);
  if (r == 0 && status != 0) {
    const char *tail = vab_guest_output_tail(guest);
    size_t which = c->script == NULL ? failed_command(tail, c->lines.n) : 0;
    if (which > 0)
      vab_error_at(ctx, VAB_E_PROVISION, prov_list_mark(&c->lines, which - 1),
                   "shell: inline command %zu failed in the guest (exit "
                   "status %d)",
                   which, status);
    else
      vab_error_at(ctx, VAB_E_PROVISION,
                   c->script != NULL ? &c->script_mark : &c->mark,
                   "shell: %s failed in the guest (exit status %d)",
                   c->script != NULL ? c->script_written : "the script",
                   status);
    if (*tail != '\0')
      vab_diag_hint(ctx, "its last output lines:\n%s", tail);
    r = -1;
  }
  for (size_t i = 0; env != NULL && i < c->n_env; i++)
    free((char *)env[i]);
  free(env);
  buf_release(&script);
  return r;
}

const struct vab_step_type vab_step_type_shell = {
  .name = "shell",
  .summary = "run shell commands in the guest, inline or from a script",
  .keys = shell_keys,
  .path_keys = shell_path_keys,
  /* Scripts commonly download things; the builder VM's network is on.
   * `booted: true` runs it in the booted appliance over SSH. */
  .flags = VAB_STEP_NEEDS_NETWORK | VAB_STEP_MAY_BOOT,
  .config = shell_config,
  .check = shell_check,
  .inputs = shell_inputs,
  .free = shell_free,
};

const struct vab_provisioner vab_provisioner_shell = {
  .name = "shell",
  .run = shell_run,
};
