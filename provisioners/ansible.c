/* ansible: run the host's ansible-playbook against the booted appliance,
 * over the communicator's SSH connection, with an inventory, settings and
 * extra variables that vab writes into a private temporary folder.
 *
 * Nothing of the user's Ansible setup is read (no ansible.cfg, no ~/.ssh,
 * no ~/.ansible): the tool gets a fixed environment, so that the step's
 * key (its playbook folder's bytes and its keys) says all that it does. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "provisioners/util.h"
#include "vab/guest.h"
#include "vab/progress.h"
#include "common/buf.h"
#include "common/fsutil.h"
#include "common/json.h"
#include "common/subprocess.h"
#include "common/vector.h"

DEFINE_VECTOR_TYPE(ansible_paths, char *);

struct ansible_config {
  struct vab_mark mark;              /* the step */
  char *playbook;                    /* absolute host path */
  const char *playbook_written;
  struct vab_mark playbook_mark;
  char *playbook_dir;                /* its folder, absolute */
  const struct vab_node *extra_vars; /* a mapping, or NULL */
  bool become;
  struct prov_list tags;
  struct prov_list skip_tags;
  char *galaxy_file;                 /* absolute host path, or NULL */
  const char *galaxy_written;
  struct vab_mark galaxy_mark;
  uint64_t timeout_ms;               /* bounds ansible-playbook */
  struct ansible_paths inputs;       /* every file the step reads, sorted */
};

static const char *const ansible_keys[] = {
  "playbook", "extra_vars", "become", "tags", "skip_tags", "galaxy_file", NULL,
};
static const char *const ansible_path_keys[] = {"playbook", "galaxy_file",
                                                NULL};

/* The playbook's folder is read whole; this keeps a playbook in a large
 * folder (the home folder, a repository's root) from listing it all. */
#define ANSIBLE_MAX_INPUTS 10000
#define ANSIBLE_MAX_DEPTH 16
/* extra_vars nesting, far beyond what variables need. */
#define ANSIBLE_MAX_VAR_DEPTH 32
/* The default of the step's `timeout:` (the loader checks the value). */
#define ANSIBLE_TIMEOUT_MS (30ull * 60 * 1000)
/* Where Ansible stages modules in the guest; removed after the run, so
 * that the image keeps no trace of it (its default is ~/.ansible/tmp). */
#define ANSIBLE_REMOTE_TMP "/tmp/.vab-ansible"
/* Output lines kept for an error's hint. */
#define ANSIBLE_TAIL_LINES 12

static void ansible_free(void *opaque) {
  struct ansible_config *c = opaque;
  if (c == NULL)
    return;
  for (size_t i = 0; i < c->inputs.len; i++)
    free(c->inputs.ptr[i]);
  ansible_paths_reset(&c->inputs);
  prov_list_free(&c->tags);
  prov_list_free(&c->skip_tags);
  free(c->playbook);
  free(c->playbook_dir);
  free(c->galaxy_file);
  free(c);
}

/* --- inputs: every file of the playbook's folder -------------------- */

struct walk {
  struct vab_ctx *ctx;
  const struct ansible_config *c;
  struct ansible_paths *out;
};

static int by_name(const struct dirent **a, const struct dirent **b) {
  return strcmp((*a)->d_name, (*b)->d_name);
}

static int add_path(struct vab_ctx *ctx, struct ansible_paths *out,
                    const char *path) {
  char *copy = strdup(path);
  if (copy == NULL || ansible_paths_append(out, copy) < 0) {
    free(copy);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  return 0;
}

/* Depth first, names in byte order, so that the list (and the step's key)
 * does not depend on the locale or the file system.  Links are followed,
 * as Ansible follows them; anything that is neither a file nor a folder is
 * an error, not skipped, since it may be what the playbook reads. */
static int walk_folder(struct walk *w, const char *dir, unsigned depth) {
  const struct ansible_config *c = w->c;
  if (depth > ANSIBLE_MAX_DEPTH)
    return vab_error_at(w->ctx, VAB_E_IO, &c->playbook_mark,
                        "the playbook's folder '%.200s' nests more than %d "
                        "folders deep (a link loop?)",
                        dir, ANSIBLE_MAX_DEPTH);
  struct dirent **entries = NULL;
  int n = scandir(dir, &entries, NULL, by_name);
  if (n < 0)
    return vab_error_errno(w->ctx, VAB_E_IO, errno,
                           "cannot list '%.200s', a folder of the playbook "
                           "'%.200s'",
                           dir, c->playbook_written);
  int r = 0;
  for (int i = 0; i < n; i++) {
    const char *name = entries[i]->d_name;
    if (r == 0 && strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
      char *path = NULL;
      struct stat st;
      if (asprintf(&path, "%s/%s", dir, name) < 0) {
        path = NULL;
        r = vab_error(w->ctx, VAB_E_NOMEM, "out of memory");
      } else if (stat(path, &st) < 0) {
        r = vab_error_errno(w->ctx, VAB_E_IO, errno,
                            "cannot read '%.200s' in the playbook's folder",
                            path);
      } else if (S_ISDIR(st.st_mode)) {
        r = walk_folder(w, path, depth + 1);
      } else if (!S_ISREG(st.st_mode)) {
        r = vab_error_at(w->ctx, VAB_E_IO, &c->playbook_mark,
                         "'%.200s' in the playbook's folder is neither a file "
                         "nor a folder",
                         path);
      } else if (w->out->len >= ANSIBLE_MAX_INPUTS) {
        r = vab_error_at(w->ctx, VAB_E_IO, &c->playbook_mark,
                         "the playbook's folder holds more than %d files",
                         ANSIBLE_MAX_INPUTS);
        vab_diag_hint(w->ctx, "every file beside the playbook is an input of "
                              "the step: keep the playbook in a folder of its "
                              "own");
      } else {
        r = add_path(w->ctx, w->out, path);
      }
      free(path);
    }
    free(entries[i]);
  }
  free(entries);
  return r;
}

static int list_inputs(struct vab_ctx *ctx, struct ansible_config *c,
                       const char *template_dir) {
  struct stat st;
  /* A missing playbook, or one that is no file, is check()'s to report. */
  if (stat(c->playbook, &st) < 0 || !S_ISREG(st.st_mode))
    return 0;
  if (template_dir != NULL && strcmp(c->playbook_dir, template_dir) == 0)
    vab_warn_at(ctx, &c->playbook_mark,
                "every file in the playbook's folder is an input of this "
                "step, and that folder is the template's own (outputs "
                "written there change the step's key): keep the playbook "
                "in a folder of its own");
  struct walk w = {ctx, c, &c->inputs};
  if (walk_folder(&w, c->playbook_dir, 0) < 0)
    return -1;
  if (c->galaxy_file == NULL)
    return 0;
  for (size_t i = 0; i < c->inputs.len; i++)
    if (strcmp(c->inputs.ptr[i], c->galaxy_file) == 0)
      return 0;
  return add_path(ctx, &c->inputs, c->galaxy_file);
}

/* --- config and check ----------------------------------------------- */

static int check_var_tree(struct vab_ctx *ctx, const struct vab_node *node,
                          unsigned depth) {
  if (depth > ANSIBLE_MAX_VAR_DEPTH)
    return vab_error_at(ctx, VAB_E_SCHEMA, &node->mark,
                        "extra_vars nest more than %d levels deep",
                        ANSIBLE_MAX_VAR_DEPTH);
  int r = 0;
  if (node->kind == VAB_NODE_SEQ || node->kind == VAB_NODE_MAP)
    for (size_t i = 0; i < node->n; i++)
      if (check_var_tree(ctx, node->items[i], depth + 1) < 0)
        r = -1;
  return r;
}

static int read_extra_vars(struct vab_ctx *ctx, const struct vab_node *spec,
                           struct ansible_config *c) {
  const struct vab_node *vars = vab_node_get(spec, "extra_vars");
  if (vars == NULL || vars->kind == VAB_NODE_NULL)
    return 0;
  if (vars->kind != VAB_NODE_MAP) {
    vab_error_at(ctx, VAB_E_SCHEMA, &vars->mark,
                 "extra_vars must be a mapping of NAME: value");
    vab_diag_hint(ctx, "for example: extra_vars: {site_title: Welcome}");
    return -1;
  }
  int r = 0;
  for (size_t i = 0; i < vars->n; i++)
    if (vars->keys[i][0] == '\0')
      r = vab_error_at(ctx, VAB_E_SCHEMA, &vars->key_marks[i],
                       "an extra_vars name is empty");
  if (check_var_tree(ctx, vars, 0) < 0)
    r = -1;
  c->extra_vars = vars;
  return r;
}

/* The step's `timeout:`, which the template loader owns and checks: read
 * quietly here, as ansible-playbook runs on the host and the booted guest
 * cannot bound it. */
static uint64_t read_timeout(const struct vab_node *spec) {
  const struct vab_node *node = vab_node_get(spec, "timeout");
  uint64_t ms = 0;
  if (node != NULL && node->kind == VAB_NODE_SCALAR) {
    struct vab_ctx *quiet = vab_ctx_new();
    if (quiet == NULL || vab_node_duration(quiet, node, "timeout", &ms) < 0)
      ms = 0;
    vab_ctx_free(quiet);
  }
  return ms > 0 ? ms : ANSIBLE_TIMEOUT_MS;
}

static int ansible_config(struct vab_ctx *ctx, const struct vab_node *spec,
                          const char *template_dir, void **out) {
  struct ansible_config *c = calloc(1, sizeof *c);
  if (c == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  c->mark = spec->mark;
  int r = 0;
  if (prov_host_path(ctx, spec, "playbook", "playbook", template_dir,
                     &c->playbook, &c->playbook_written,
                     &c->playbook_mark) < 0)
    r = -1;
  if (read_extra_vars(ctx, spec, c) < 0)
    r = -1;
  if (vab_node_bool(ctx, vab_node_get(spec, "become"), "become",
                    &c->become) < 0)
    r = -1;
  if (prov_list_read(ctx, spec, "tags", "tags", &c->tags) < 0 ||
      prov_list_read(ctx, spec, "skip_tags", "skip_tags", &c->skip_tags) < 0)
    r = -1;
  if (prov_host_path(ctx, spec, "galaxy_file", "galaxy_file", template_dir,
                     &c->galaxy_file, &c->galaxy_written,
                     &c->galaxy_mark) < 0)
    r = -1;
  c->timeout_ms = read_timeout(spec);
  if (r == 0 && c->playbook != NULL) {
    const char *slash = strrchr(c->playbook, '/');
    c->playbook_dir = slash == c->playbook
                          ? strdup("/")
                          : strndup(c->playbook, (size_t)(slash - c->playbook));
    r = c->playbook_dir == NULL
            ? vab_error(ctx, VAB_E_NOMEM, "out of memory")
            : list_inputs(ctx, c, template_dir);
  }
  if (r < 0) {
    ansible_free(c);
    return -1;
  }
  *out = c;
  return 0;
}

/* A host file the step reads: as the plan will open it (a FIFO or a device
 * would block it), so that validate finds what the build would. */
static int check_readable_file(struct vab_ctx *ctx, const char *path,
                               const char *written, const struct vab_mark *mark,
                               const char *what) {
  struct stat st;
  bool not_regular = false;
  int fd = open_regular_file(path, &st, &not_regular);
  if (fd >= 0) {
    close(fd);
    return 0;
  }
  if (not_regular)
    return vab_error_at(ctx, VAB_E_IO, mark, "%s '%.200s' is not a regular file",
                        what, written);
  vab_error_at(ctx, VAB_E_IO, mark, "%s '%.200s' cannot be read: %s", what,
               written, strerror(errno));
  vab_diag_hint(ctx, "relative paths start from the template's folder");
  return -1;
}

/* ansible-playbook takes tags as one comma-separated argument. */
static int check_tags(struct vab_ctx *ctx, const struct prov_list *list,
                      const char *what) {
  int r = 0;
  if (list->node != NULL && list->n == 0)
    r = vab_error_at(ctx, VAB_E_SCHEMA, &list->node->mark, "%s is empty",
                     what);
  for (size_t i = 0; i < list->n; i++) {
    const char *tag = list->items[i];
    if (tag[0] == '\0' || strchr(tag, ',') != NULL)
      r = vab_error_at(ctx, VAB_E_SCHEMA, prov_list_mark(list, i),
                       "'%.200s' is not a tag: tags are not empty and hold "
                       "no ','",
                       tag);
  }
  return r;
}

static int check_program(struct vab_ctx *ctx, const char *program,
                         const struct vab_mark *mark) {
  if (subprocess_have_program(program))
    return 0;
  vab_error_at(ctx, VAB_E_SUBPROCESS, mark,
               "an ansible step runs %s on this host, and it is not in PATH",
               program);
  vab_diag_hint(ctx, "install Ansible: apt-get install ansible");
  return -1;
}

static int ansible_check(struct vab_ctx *ctx, const void *opaque) {
  const struct ansible_config *c = opaque;
  int r = 0;
  if (c->playbook == NULL) {
    vab_error_at(ctx, VAB_E_SCHEMA, &c->mark,
                 "an ansible step needs 'playbook', the playbook's host path");
    vab_diag_hint(ctx, "for example: playbook: ansible/site.yml");
    r = -1;
  } else if (check_readable_file(ctx, c->playbook, c->playbook_written,
                                 &c->playbook_mark, "playbook") < 0) {
    r = -1;
  }
  if (c->galaxy_file != NULL &&
      check_readable_file(ctx, c->galaxy_file, c->galaxy_written,
                          &c->galaxy_mark, "galaxy_file") < 0)
    r = -1;
  if (check_tags(ctx, &c->tags, "tags") < 0 ||
      check_tags(ctx, &c->skip_tags, "skip_tags") < 0)
    r = -1;
  if (check_program(ctx, "ansible-playbook", &c->mark) < 0)
    r = -1;
  if (c->galaxy_file != NULL &&
      check_program(ctx, "ansible-galaxy", &c->galaxy_mark) < 0)
    r = -1;
  return r;
}

static size_t ansible_inputs(const void *opaque, const char **paths,
                             size_t max) {
  const struct ansible_config *c = opaque;
  for (size_t i = 0; i < c->inputs.len && i < max; i++)
    paths[i] = c->inputs.ptr[i];
  return c->inputs.len;
}

/* --- run: the files vab writes --------------------------------------- */

static bool node_is_true(const char *s) {
  static const char *const words[] = {"true", "True", "TRUE", "yes", "Yes",
                                      "on",   "On",   NULL};
  for (size_t i = 0; words[i] != NULL; i++)
    if (strcmp(s, words[i]) == 0)
      return true;
  return false;
}

static bool node_is_false(const char *s) {
  static const char *const words[] = {"false", "False", "FALSE", "no", "No",
                                      "off",   "Off",   NULL};
  for (size_t i = 0; words[i] != NULL; i++)
    if (strcmp(s, words[i]) == 0)
      return true;
  return false;
}

/* A number as JSON writes one (RFC 8259 section 6), so that it can be
 * passed through unchanged. */
static bool is_json_number(const char *s) {
  if (*s == '-')
    s++;
  if (*s == '0')
    s++;
  else if (*s >= '1' && *s <= '9')
    while (*s >= '0' && *s <= '9')
      s++;
  else
    return false;
  if (*s == '.') {
    s++;
    if (!(*s >= '0' && *s <= '9'))
      return false;
    while (*s >= '0' && *s <= '9')
      s++;
  }
  if (*s == 'e' || *s == 'E') {
    s++;
    if (*s == '+' || *s == '-')
      s++;
    if (!(*s >= '0' && *s <= '9'))
      return false;
    while (*s >= '0' && *s <= '9')
      s++;
  }
  return *s == '\0';
}

/* extra_vars as JSON: the types a YAML reader gives plain scalars (the
 * template loader's booleans, JSON's numbers), strings otherwise; a quoted
 * scalar is always a string. */
static int put_json(struct buf *b, const struct vab_node *node) {
  switch (node->kind) {
  case VAB_NODE_NULL:
    return buf_puts(b, "null");
  case VAB_NODE_SCALAR:
    if (!node->quoted && node_is_true(node->scalar))
      return buf_puts(b, "true");
    if (!node->quoted && node_is_false(node->scalar))
      return buf_puts(b, "false");
    if (!node->quoted && is_json_number(node->scalar))
      return buf_puts(b, node->scalar);
    return json_append_string(b, node->scalar);
  case VAB_NODE_SEQ:
  case VAB_NODE_MAP: {
    bool map = node->kind == VAB_NODE_MAP;
    if (buf_putc(b, map ? '{' : '[') < 0)
      return -1;
    for (size_t i = 0; i < node->n; i++) {
      if ((i > 0 && buf_putc(b, ',') < 0) ||
          (map && (json_append_string(b, node->keys[i]) < 0 ||
                   buf_putc(b, ':') < 0)) ||
          put_json(b, node->items[i]) < 0)
        return -1;
    }
    return buf_putc(b, map ? '}' : ']');
  }
  }
  return -1;
}

/* A new file of the private folder, 0600, never through a planted link. */
static int write_private(struct vab_ctx *ctx, const char *path,
                         const struct buf *text) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                0600);
  if (fd < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot create '%s'", path);
  size_t done = 0;
  while (done < text->len) {
    ssize_t n = write(fd, text->data + done, text->len - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      int e = n < 0 ? errno : EIO;
      close(fd);
      return vab_error_errno(ctx, VAB_E_IO, e, "cannot write '%s'", path);
    }
    done += (size_t)n;
  }
  if (close(fd) < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot write '%s'", path);
  return 0;
}

/* ssh reads these paths out of -o options, where whitespace separates
 * files and '%' starts a token; vab's own temporary paths have neither. */
static bool ssh_safe_path(const char *path) {
  if (path == NULL || path[0] != '/')
    return false;
  for (const unsigned char *p = (const unsigned char *)path; *p; p++)
    if (*p <= ' ' || *p == 0x7f || *p == '%' || *p == '"' || *p == '\'' ||
        *p == '\\')
      return false;
  return true;
}

/* Ansible's own settings: only constants, so nothing here needs quoting
 * (the paths go through the environment).  No SSH connection sharing: its
 * master process would leave the process group and outlive the step. */
static const char ansible_cfg[] =
  "# Written by vab for one ansible step; no other ansible.cfg is read.\n"
  "[defaults]\n"
  "host_key_checking = True\n"
  "retry_files_enabled = False\n"
  "nocolor = True\n"
  "timeout = 60\n"
  "remote_tmp = " ANSIBLE_REMOTE_TMP "\n"
  "interpreter_python = /usr/bin/python3\n"
  "[inventory]\n"
  "enable_plugins = yaml\n"
  "[ssh_connection]\n"
  "ssh_args = -o ControlMaster=no -o ControlPath=none\n"
  "pipelining = True\n";

/* The one host, as JSON (which the yaml inventory plugin reads). */
static int put_inventory(struct buf *b, const struct vab_guest_ssh *ssh) {
  struct buf args = BUF_INIT;
  /* No ssh_config, and only the guest's key: the host's global
   * known_hosts could otherwise vouch for another key at this address. */
  int r = buf_printf(&args,
                     "-F none -o UserKnownHostsFile=%s "
                     "-o GlobalKnownHostsFile=/dev/null "
                     "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes",
                     ssh->known_hosts_file);
  if (r == 0)
    r = buf_puts(b, "{\"all\":{\"hosts\":{\"appliance\":{\"ansible_host\":");
  if (r == 0)
    r = json_append_string(b, ssh->host);
  if (r == 0)
    r = buf_printf(b, ",\"ansible_port\":%u,\"ansible_user\":", ssh->port);
  if (r == 0)
    r = json_append_string(b, ssh->user);
  if (r == 0)
    r = buf_puts(b, ",\"ansible_connection\":\"ssh\","
                    "\"ansible_ssh_private_key_file\":");
  if (r == 0)
    r = json_append_string(b, ssh->identity_file);
  if (r == 0)
    r = buf_puts(b, ",\"ansible_ssh_common_args\":");
  if (r == 0)
    r = json_append_string(b, args.data);
  if (r == 0)
    r = buf_puts(b, ",\"ansible_python_interpreter\":\"/usr/bin/python3\""
                    "}}}}\n");
  buf_release(&args);
  return r;
}

/* The private folder and what ansible-playbook is given. */
struct ansible_run {
  struct vab_ctx *ctx;
  const struct ansible_config *c;
  char *dir;                 /* 0700, removed on every path */
  char *inventory, *vars_file, *cfg, *local_tmp, *home, *roles;
  char *env[10];
  char *tail[ANSIBLE_TAIL_LINES];
  size_t next;
  const char *tool;          /* for the log: "ansible-playbook" */
};

static void run_release(struct ansible_run *a) {
  if (a->dir != NULL)
    remove_tree(a->dir);
  free(a->dir);
  free(a->inventory);
  free(a->vars_file);
  free(a->cfg);
  free(a->local_tmp);
  free(a->home);
  free(a->roles);
  for (size_t i = 0; i < sizeof a->env / sizeof a->env[0]; i++)
    free(a->env[i]);
  for (size_t i = 0; i < ANSIBLE_TAIL_LINES; i++)
    free(a->tail[i]);
}

static char *join(const char *dir, const char *name) {
  char *path = NULL;
  return asprintf(&path, "%s/%s", dir, name) < 0 ? NULL : path;
}

static int make_folder(struct ansible_run *a) {
  const char *tmp = getenv("TMPDIR");
  if (tmp == NULL || tmp[0] == '\0')
    tmp = "/tmp";
  if (asprintf(&a->dir, "%s/vab-ansible-XXXXXX", tmp) < 0) {
    a->dir = NULL;
    return vab_error(a->ctx, VAB_E_NOMEM, "out of memory");
  }
  if (mkdtemp(a->dir) == NULL) {
    int e = errno;
    free(a->dir);
    a->dir = NULL;
    return vab_error_errno(a->ctx, VAB_E_IO, e,
                           "cannot create a folder for ansible in '%s'", tmp);
  }
  a->inventory = join(a->dir, "inventory.yml");
  a->vars_file = join(a->dir, "extra-vars.json");
  a->cfg = join(a->dir, "ansible.cfg");
  a->local_tmp = join(a->dir, "local");
  a->home = join(a->dir, "home");
  a->roles = join(a->dir, "roles");
  if (a->inventory == NULL || a->vars_file == NULL || a->cfg == NULL ||
      a->local_tmp == NULL || a->home == NULL || a->roles == NULL)
    return vab_error(a->ctx, VAB_E_NOMEM, "out of memory");
  const char *sub[] = {a->local_tmp, a->home, a->roles};
  for (size_t i = 0; i < 3; i++)
    if (mkdir(sub[i], 0700) < 0)
      return vab_error_errno(a->ctx, VAB_E_IO, errno, "cannot create '%s'",
                             sub[i]);
  return 0;
}

/* One NAME=VALUE of the environment; -1 when out of memory. */
static int env_add(struct ansible_run *a, size_t *k, const char *fmt, ...)
    VAB_PRINTF(3, 4);
static int env_add(struct ansible_run *a, size_t *k, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *entry = NULL;
  int n = vasprintf(&entry, fmt, ap);
  va_end(ap);
  if (n < 0)
    return -1;
  a->env[(*k)++] = entry;
  return 0;
}

/* A fixed environment: the caller's PATH (to find ssh and python), and
 * everything else pointing into the private folder. */
static int make_env(struct ansible_run *a) {
  const char *path = getenv("PATH");
  if (path == NULL || path[0] == '\0')
    path = "/usr/bin:/bin";
  /* A ':' would split the entry; Ansible looks in roles/ beside the
   * playbook by itself anyway. */
  const char *dir = a->c->playbook_dir;
  bool own_roles = strchr(dir, ':') == NULL;
  size_t k = 0;
  if (env_add(a, &k, "PATH=%s", path) < 0 ||
      env_add(a, &k, "HOME=%s", a->home) < 0 ||
      env_add(a, &k, "TMPDIR=%s", a->local_tmp) < 0 ||
      env_add(a, &k, "LC_ALL=C.UTF-8") < 0 ||
      env_add(a, &k, "ANSIBLE_CONFIG=%s", a->cfg) < 0 ||
      env_add(a, &k, "ANSIBLE_LOCAL_TEMP=%s", a->local_tmp) < 0 ||
      env_add(a, &k, "ANSIBLE_ROLES_PATH=%s%s%s%s", a->roles,
              own_roles ? ":" : "", own_roles ? dir : "",
              own_roles ? "/roles" : "") < 0 ||
      env_add(a, &k, "ANSIBLE_NOCOLOR=1") < 0)
    return vab_error(a->ctx, VAB_E_NOMEM, "out of memory");
  return 0;
}

static int write_files(struct ansible_run *a, const struct vab_guest_ssh *ssh) {
  const struct ansible_config *c = a->c;
  struct buf text = BUF_INIT;
  int r = buf_puts(&text, ansible_cfg) < 0
              ? vab_error(a->ctx, VAB_E_NOMEM, "out of memory")
              : write_private(a->ctx, a->cfg, &text);
  buf_truncate(&text, 0);
  if (r == 0)
    r = put_inventory(&text, ssh) < 0
            ? vab_error(a->ctx, VAB_E_NOMEM, "out of memory")
            : write_private(a->ctx, a->inventory, &text);
  buf_truncate(&text, 0);
  /* The variables may hold ${env:...} secrets: a 0600 file in the 0700
   * folder, never the command line, which every user of the host sees. */
  if (r == 0 && c->extra_vars != NULL)
    r = put_json(&text, c->extra_vars) < 0 || buf_putc(&text, '\n') < 0
            ? vab_error(a->ctx, VAB_E_NOMEM, "out of memory")
            : write_private(a->ctx, a->vars_file, &text);
  buf_release(&text);
  return r;
}

/* --- run: the tools ---------------------------------------------------- */

/* Every line to the build log, the last ones kept for an error, and each
 * task's start ("TASK [web : template] ***") as progress. */
static void tool_line(void *opaque, const char *line) {
  struct ansible_run *a = opaque;
  vab_log(a->ctx, VAB_LOG_DEBUG, "%s: %s", a->tool, line);
  free(a->tail[a->next]);
  a->tail[a->next] = strdup(line);
  a->next = (a->next + 1) % ANSIBLE_TAIL_LINES;
  const char *end = strchr(line, ']');
  if (strncmp(line, "TASK [", 6) == 0 && end != NULL &&
      !vab_cancelled(a->ctx)) {
    char task[256];
    snprintf(task, sizeof task, "%.*s", (int)(end + 1 - line), line);
    if (vab_progress(a->ctx, VAB_PHASE_PROVISION, task, 0, 0) < 0)
      vab_ctx_cancel(a->ctx);
  }
}

static int tool_cancelled(void *opaque) { return vab_cancelled(opaque); }

/* The kept lines, oldest first, and the ring emptied for the next tool. */
static char *take_tail(struct ansible_run *a) {
  struct buf b = BUF_INIT;
  for (size_t i = 0; i < ANSIBLE_TAIL_LINES; i++) {
    char **line = &a->tail[(a->next + i) % ANSIBLE_TAIL_LINES];
    if (*line != NULL && b.len > 0)
      buf_putc(&b, '\n');
    if (*line != NULL)
      buf_puts(&b, *line);
    free(*line);
    *line = NULL;
  }
  a->next = 0;
  return b.data != NULL ? buf_detach(&b) : strdup("");
}

/* Runs argv in the playbook's folder; *status gets its wait status.  -1
 * when it could not run to its end (not started, cancelled, timed out). */
static int run_tool(struct ansible_run *a, char *const *argv,
                    const struct vab_mark *mark, int *status) {
  struct vab_ctx *ctx = a->ctx;
  a->tool = argv[0];
  struct buf line = BUF_INIT;
  for (size_t i = 0; argv[i] != NULL; i++)
    buf_printf(&line, "%s%s", i > 0 ? " " : "", argv[i]);
  vab_log(ctx, VAB_LOG_DEBUG, "running: %s", line.data != NULL ? line.data : "");
  buf_release(&line);
  struct subprocess p;
  struct subprocess_opts opts = SUBPROCESS_OPTS_INIT;
  opts.cwd = a->c->playbook_dir;
  opts.envp = a->env;
  if (subprocess_start(&p, argv, &opts) < 0)
    return vab_error_errno(ctx, VAB_E_SUBPROCESS, errno, "cannot start %s",
                           argv[0]);
  uint64_t ms = a->c->timeout_ms;
  int timeout = ms > (uint64_t)INT32_MAX ? INT32_MAX : (int)ms;
  if (subprocess_wait(&p, tool_line, a, tool_cancelled, ctx, timeout,
                      status) == 0)
    return 0;
  int e = errno;
  if (e == ECANCELED)
    return vab_error(ctx, VAB_E_CANCELLED, "interrupted while %s ran",
                     argv[0]);
  if (e == ETIMEDOUT) {
    vab_error_at(ctx, VAB_E_PROVISION, mark,
                 "ansible: %s did not finish within the step's timeout "
                 "(%llu s)",
                 argv[0], (unsigned long long)(ms / 1000));
    vab_diag_hint(ctx, "raise the step's 'timeout:'");
    return -1;
  }
  return vab_error_errno(ctx, VAB_E_SUBPROCESS, e, "waiting for %s", argv[0]);
}

static bool exited_zero(int status) {
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static int run_galaxy(struct ansible_run *a) {
  const struct ansible_config *c = a->c;
  char *argv[] = {"ansible-galaxy", "install", "-r", c->galaxy_file, "-p",
                  a->roles, NULL};
  int status = 0;
  if (run_tool(a, argv, &c->galaxy_mark, &status) < 0)
    return -1;
  if (exited_zero(status))
    return 0;
  char how[64];
  subprocess_describe_status(status, how, sizeof how);
  char *tail = take_tail(a);
  vab_error_at(a->ctx, VAB_E_PROVISION, &c->galaxy_mark,
               "ansible: ansible-galaxy could not install the roles of "
               "'%.200s' (%s)",
               c->galaxy_written, how);
  vab_diag_hint(a->ctx, "galaxy_file needs the network, to Ansible Galaxy "
                        "(galaxy.ansible.com) or the sources the file names; "
                        "its last output lines:\n%s",
                tail != NULL ? tail : "");
  free(tail);
  return -1;
}

/* "a,b,c": how ansible-playbook takes a list of tags (check() refused
 * tags holding ','); NULL for no tags, *failed when out of memory. */
static char *join_tags(const struct prov_list *list, bool *failed) {
  if (list->n == 0)
    return NULL;
  struct buf b = BUF_INIT;
  int r = 0;
  for (size_t i = 0; r == 0 && i < list->n; i++)
    r = buf_printf(&b, "%s%s", i > 0 ? "," : "", list->items[i]);
  char *text = r == 0 ? buf_detach(&b) : NULL;
  buf_release(&b);
  *failed |= text == NULL;
  return text;
}

static int run_playbook(struct ansible_run *a) {
  const struct ansible_config *c = a->c;
  char *argv[16];
  size_t k = 0;
  bool failed = false;
  char *tags = join_tags(&c->tags, &failed);
  char *skip = join_tags(&c->skip_tags, &failed);
  char *vars = NULL;
  if (c->extra_vars != NULL && asprintf(&vars, "@%s", a->vars_file) < 0) {
    vars = NULL;
    failed = true;
  }
  if (failed) {
    free(tags);
    free(skip);
    free(vars);
    return vab_error(a->ctx, VAB_E_NOMEM, "out of memory");
  }
  argv[k++] = "ansible-playbook";
  argv[k++] = "-i";
  argv[k++] = a->inventory;
  if (vars != NULL) {
    argv[k++] = "--extra-vars";
    argv[k++] = vars;
  }
  if (c->become)
    argv[k++] = "--become";
  if (tags != NULL) {
    argv[k++] = "--tags";
    argv[k++] = tags;
  }
  if (skip != NULL) {
    argv[k++] = "--skip-tags";
    argv[k++] = skip;
  }
  argv[k++] = c->playbook;   /* absolute: never taken for an option */
  argv[k] = NULL;
  int status = 0;
  int r = run_tool(a, argv, &c->mark, &status);
  if (r == 0 && !exited_zero(status)) {
    char how[64];
    subprocess_describe_status(status, how, sizeof how);
    char *tail = take_tail(a);
    vab_error_at(a->ctx, VAB_E_PROVISION, &c->mark,
                 "ansible: the playbook '%.200s' failed (ansible-playbook %s)",
                 c->playbook_written, how);
    if (tail != NULL && tail[0] != '\0')
      vab_diag_hint(a->ctx, "its last output lines:\n%s", tail);
    free(tail);
    r = -1;
  }
  free(tags);
  free(skip);
  free(vars);
  return r;
}

static int ansible_run(struct vab_ctx *ctx, const void *opaque,
                       struct vab_guest *guest) {
  const struct ansible_config *c = opaque;
  struct vab_guest_ssh ssh;
  if (vab_guest_ssh_endpoint(guest, &ssh) < 0)
    return -1;
  bool python = false;
  if (vab_guest_exists(guest, "/usr/bin/python3", &python) < 0)
    return -1;
  if (!python) {
    vab_error_at(ctx, VAB_E_PROVISION, &c->mark,
                 "ansible: the guest has no Python 3 (/usr/bin/python3), "
                 "which Ansible runs its modules with");
    vab_diag_hint(ctx, "install it in a step before this one: "
                       "- {type: packages, install: [python3]}");
    return -1;
  }
  if (!ssh_safe_path(ssh.identity_file) || !ssh_safe_path(ssh.known_hosts_file))
    return vab_error(ctx, VAB_E_INTERNAL,
                     "the guest's SSH key or known_hosts path cannot be "
                     "handed to ssh: '%s', '%s'",
                     ssh.identity_file ? ssh.identity_file : "(none)",
                     ssh.known_hosts_file ? ssh.known_hosts_file : "(none)");
  struct ansible_run a = {.ctx = ctx, .c = c};
  int r = make_folder(&a);
  if (r == 0)
    r = make_env(&a);
  if (r == 0)
    r = write_files(&a, &ssh);
  if (r == 0 && c->galaxy_file != NULL)
    r = run_galaxy(&a);
  if (r == 0)
    r = run_playbook(&a);
  run_release(&a);
  if (r == 0)
    r = vab_guest_rm_rf(guest, ANSIBLE_REMOTE_TMP);
  return r;
}

const struct vab_step_type vab_step_type_ansible = {
  .name = "ansible",
  .summary = "run an Ansible playbook against the booted appliance",
  .keys = ansible_keys,
  .path_keys = ansible_path_keys,
  /* Not NEEDS_NETWORK, which is the builder VM's: the booted appliance
   * has its NIC (the SSH forward rides on it). */
  .flags = VAB_STEP_BOOTED,
  .booted_timeout_ms = 0,   /* 30 min */
  .config = ansible_config,
  .check = ansible_check,
  .inputs = ansible_inputs,
  .free = ansible_free,
};

const struct vab_provisioner vab_provisioner_ansible = {
  .name = "ansible",
  .run = ansible_run,
};
