/* `extends` and variables: many files and ${...} -> one expanded tree. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "templates/template-private.h"

/* Variable expansion may not write more than this in total, so that a
 * small file full of references to a big value stays cheap. */
#define EXPANDED_BYTES_MAX (64u << 20)

/* extends */

/* The top-level lists a child adds to rather than replaces. */
static bool appends(const char *key) {
  return strcmp(key, "provisioners") == 0 || strcmp(key, "tests") == 0 ||
         strcmp(key, "outputs") == 0;
}

/* A map's keys in a hash table, so that merging two big maps stays
 * linear (keys are unique: the parser rejects duplicates). */
struct key_index {
  const struct vab_node *map;
  size_t *slots;      /* key index + 1, 0 = empty */
  size_t n_slots;     /* a power of two, more than twice the keys */
};

static size_t hash_key(const char *key) {
  size_t h = 14695981039346656037ull;   /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)key; *p; p++)
    h = (h ^ *p) * 1099511628211ull;
  return h;
}

static size_t *key_slot(const struct key_index *ix, const char *key) {
  size_t mask = ix->n_slots - 1;
  for (size_t i = hash_key(key) & mask;; i = (i + 1) & mask)
    if (ix->slots[i] == 0 || strcmp(ix->map->keys[ix->slots[i] - 1], key) == 0)
      return &ix->slots[i];
}

static int key_index_init(struct key_index *ix, const struct vab_node *map) {
  ix->map = map;
  ix->n_slots = 16;
  while (ix->n_slots < map->n * 2 + 2)
    ix->n_slots *= 2;
  ix->slots = calloc(ix->n_slots, sizeof *ix->slots);
  if (ix->slots == NULL)
    return -1;
  for (size_t i = 0; i < map->n; i++)
    *key_slot(ix, map->keys[i]) = i + 1;
  return 0;
}

/* The position of key in the map, or -1. */
static long key_index_find(const struct key_index *ix, const char *key) {
  size_t slot = *key_slot(ix, key);
  return slot == 0 ? -1 : (long)(slot - 1);
}

static int merge(struct loader *l, const struct vab_node *parent,
                 const struct vab_node *child, bool top,
                 struct vab_node **out);

static int merge_maps(struct loader *l, const struct vab_node *parent,
                      const struct vab_node *child, bool top,
                      const struct key_index *in_parent,
                      const struct key_index *in_child,
                      struct vab_node *map) {
  for (size_t i = 0; i < parent->n; i++) {
    const char *key = parent->keys[i];
    if (top && strcmp(key, "extends") == 0)
      continue;
    long at = key_index_find(in_child, key);
    const struct vab_node *mine = at < 0 ? NULL : child->items[at];
    struct vab_node *value = parent->items[i];
    const struct vab_mark *key_mark = &parent->key_marks[i];
    if (mine != NULL) {
      key_mark = &child->key_marks[at];
      if (top && appends(key) && value->kind == VAB_NODE_SEQ &&
          mine->kind == VAB_NODE_SEQ) {
        struct vab_node *seq = node_new(l, VAB_NODE_SEQ, &mine->mark);
        if (seq == NULL)
          return -1;
        for (size_t j = 0; j < value->n; j++)
          if (node_seq_add(l, seq, value->items[j]) < 0)
            return -1;
        for (size_t j = 0; j < mine->n; j++)
          if (node_seq_add(l, seq, mine->items[j]) < 0)
            return -1;
        value = seq;
      } else if (merge(l, value, mine, false, &value) < 0) {
        return -1;
      }
    }
    if (node_map_add(l, map, key, key_mark, value) < 0)
      return -1;
  }
  for (size_t i = 0; i < child->n; i++) {
    if (key_index_find(in_parent, child->keys[i]) >= 0)
      continue;
    if (node_map_add(l, map, child->keys[i], &child->key_marks[i],
                     child->items[i]) < 0)
      return -1;
  }
  return 0;
}

static int merge(struct loader *l, const struct vab_node *parent,
                 const struct vab_node *child, bool top,
                 struct vab_node **out) {
  if (parent->kind != VAB_NODE_MAP || child->kind != VAB_NODE_MAP) {
    *out = (struct vab_node *)child;
    return 0;
  }
  struct vab_node *map = node_new(l, VAB_NODE_MAP, &child->mark);
  if (map == NULL)
    return -1;
  struct key_index in_parent = {0}, in_child = {0};
  int r = -1;
  if (key_index_init(&in_parent, parent) < 0 ||
      key_index_init(&in_child, child) < 0)
    vab_error(l->ctx, VAB_E_NOMEM, "out of memory");
  else
    r = merge_maps(l, parent, child, top, &in_parent, &in_child, map);
  free(in_parent.slots);
  free(in_child.slots);
  if (r == 0)
    *out = map;
  return r;
}

/* The path a parent is shown as: beside the child, as the user would
 * write it from the current folder. */
static char *parent_display(const struct tpl_file *child, const char *value,
                            bool in_memory) {
  if (value[0] == '/' || in_memory)
    return vab_path_resolve(child->dir, value);
  const char *slash = strrchr(child->path, '/');
  if (slash == NULL) {
    while (value[0] == '.' && value[1] == '/')
      value += 2;
    return strdup(value);
  }
  char *dir = strndup(child->path, (size_t)(slash - child->path) + 1);
  if (dir == NULL)
    return NULL;
  dir[slash - child->path] = '\0';
  char *out = vab_path_resolve(dir[0] ? dir : "/", value);
  free(dir);
  return out;
}

/* The files being loaded, newest first, to detect `extends` cycles. */
struct chain {
  const char *real;
  const char *display;
  const struct chain *next;
};

static int load_tree(struct loader *l, struct tpl_file *file,
                     struct vab_node *root, const struct chain *chain,
                     unsigned depth, struct vab_node **merged);

static int load_parent(struct loader *l, struct tpl_file *file,
                       const struct vab_node *extends,
                       const struct chain *chain, unsigned depth,
                       struct vab_node **parent) {
  struct vab_ctx *ctx = l->ctx;
  const char *value = NULL;
  if (extends->kind != VAB_NODE_SCALAR || extends->scalar[0] == '\0')
    return vab_error_at(ctx, VAB_E_SCHEMA, &extends->mark,
                        "'extends' must be the path of a template, not %s",
                        extends->kind == VAB_NODE_SCALAR
                            ? "an empty string"
                            : node_kind_name(extends));
  value = extends->scalar;
  if (strstr(value, "${") != NULL)
    return vab_error_at(ctx, VAB_E_SCHEMA, &extends->mark,
                        "'extends' cannot use variables: it is read before "
                        "they are known");
  if (depth >= VAB_TEMPLATE_MAX_EXTENDS)
    return vab_error_at(ctx, VAB_E_SCHEMA, &extends->mark,
                        "too many levels of 'extends': at most %d",
                        VAB_TEMPLATE_MAX_EXTENDS);
  bool in_memory = file->real == file->path;
  char *display = parent_display(file, value, in_memory);
  if (display == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  char *real = realpath(display, NULL);
  if (real == NULL) {
    int e = errno;
    vab_error_at(ctx, VAB_E_IO, &extends->mark,
                 "cannot find the template '%s' that this one extends: %s",
                 display, strerror(e));
    free(display);
    return -1;
  }
  for (const struct chain *c = chain; c != NULL; c = c->next) {
    if (strcmp(c->real, real) != 0)
      continue;
    /* Oldest first: a.yaml -> b.yaml -> a.yaml */
    const char *names[VAB_TEMPLATE_MAX_EXTENDS + 2];
    size_t n = 0;
    for (const struct chain *d = chain; d != c->next; d = d->next)
      names[n++] = d->display;
    struct buf b = BUF_INIT;
    for (size_t i = n; i > 0; i--)
      buf_printf(&b, "%s -> ", names[i - 1]);
    buf_puts(&b, display);
    vab_error_at(ctx, VAB_E_SCHEMA, &extends->mark,
                 "'extends' makes a cycle: %s", b.data ? b.data : display);
    buf_release(&b);
    free(real);
    free(display);
    return -1;
  }
  free(real);
  struct tpl_file *pfile = NULL;
  struct vab_node *proot = NULL;
  int r = tpl_parse_file(l, display, NULL, NULL, 0, &pfile, &proot);
  free(display);
  if (r < 0)
    return -1;
  struct chain link = {.real = pfile->real, .display = pfile->path,
                       .next = chain};
  return load_tree(l, pfile, proot, &link, depth + 1, parent);
}

static int load_tree(struct loader *l, struct tpl_file *file,
                     struct vab_node *root, const struct chain *chain,
                     unsigned depth, struct vab_node **merged) {
  if (root->kind == VAB_NODE_NULL) {
    vab_error_at(l->ctx, VAB_E_SCHEMA, &root->mark,
                 "'%s' is empty: a template is a mapping with at least "
                 "'vab: 1' and 'name'",
                 file->path);
    return -1;
  }
  if (root->kind != VAB_NODE_MAP)
    return vab_error_at(l->ctx, VAB_E_SCHEMA, &root->mark,
                        "a template must be a mapping of keys such as "
                        "'vab' and 'name', not %s",
                        node_kind_name(root));
  const struct vab_node *extends = vab_node_get(root, "extends");
  if (extends == NULL) {
    *merged = root;
    return 0;
  }
  struct vab_node *parent = NULL;
  if (load_parent(l, file, extends, chain, depth, &parent) < 0)
    return -1;
  return merge(l, parent, root, true, merged);
}

int tpl_load_tree(struct loader *l, struct tpl_file *file,
                  struct vab_node *root, struct vab_node **merged) {
  struct chain link = {.real = file->real, .display = file->path,
                       .next = NULL};
  return load_tree(l, file, root, &link, 0, merged);
}

/* Variables */

static bool valid_var_name(const char *s, size_t len) {
  if (len == 0 || len > 64 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
    return false;
  for (size_t i = 1; i < len; i++)
    if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
      return false;
  return true;
}

/* Variables are few; a cap keeps lookups (a linear scan) cheap. */
#define VARS_MAX 1000

int tpl_var_set(struct loader *l, struct tpl_vars *vars, const char *name,
                const char *value) {
  for (size_t i = 0; i < vars->n; i++)
    if (strcmp(vars->names[i], name) == 0) {
      vars->values[i] = arena_strdup(l->arena, value);
      return vars->values[i] != NULL
                 ? 0
                 : vab_error(l->ctx, VAB_E_NOMEM, "out of memory");
    }
  if (vars->names == NULL) {
    /* NULL-terminated, so the names double as "did you mean" candidates. */
    vars->names = arena_alloc(l->arena, (VARS_MAX + 1) * sizeof *vars->names);
    vars->values = arena_alloc(l->arena, VARS_MAX * sizeof *vars->values);
    if (vars->names == NULL || vars->values == NULL)
      return vab_error(l->ctx, VAB_E_NOMEM, "out of memory");
  }
  if (vars->n >= VARS_MAX)
    return vab_error(l->ctx, VAB_E_SCHEMA, "more than %d variables",
                     VARS_MAX);
  /* Copies: --var strings and the environment may change after loading. */
  vars->names[vars->n] = arena_strdup(l->arena, name);
  vars->values[vars->n] = arena_strdup(l->arena, value);
  if (vars->names[vars->n] == NULL || vars->values[vars->n] == NULL)
    return vab_error(l->ctx, VAB_E_NOMEM, "out of memory");
  vars->n++;
  return 0;
}

static const char *env_override(struct loader *l, const char *name) {
  if (l->opts == NULL || !l->opts->use_environment)
    return NULL;
  char key[80];
  snprintf(key, sizeof key, "VAB_VAR_%s", name);
  return getenv(key);
}

int tpl_collect_vars(struct loader *l, const struct vab_node *root,
                     struct tpl_vars *vars) {
  struct vab_ctx *ctx = l->ctx;
  int r = 0;
  const struct vab_node *defaults = vab_node_get(root, "variables");
  if (defaults != NULL && defaults->kind != VAB_NODE_MAP &&
      defaults->kind != VAB_NODE_NULL)
    return vab_error_at(ctx, VAB_E_SCHEMA, &defaults->mark,
                        "'variables' must be a mapping of NAME: value, not %s",
                        node_kind_name(defaults));
  for (size_t i = 0; defaults != NULL && i < defaults->n; i++) {
    const char *name = defaults->keys[i];
    const struct vab_node *value = defaults->items[i];
    if (!valid_var_name(name, strlen(name))) {
      r = vab_error_at(ctx, VAB_E_SCHEMA, &defaults->key_marks[i],
                       "invalid variable name '%s'", name);
      vab_diag_hint(ctx, "use letters, digits and '_', starting with a "
                         "letter or '_'");
      continue;
    }
    if (strcmp(name, "name") == 0 || strcmp(name, "version") == 0) {
      r = vab_error_at(ctx, VAB_E_SCHEMA, &defaults->key_marks[i],
                       "'%s' cannot be a variable: ${%s} is the template's "
                       "own %s",
                       name, name, name);
      continue;
    }
    const char *text = "";
    if (value->kind == VAB_NODE_SCALAR) {
      text = value->scalar;
    } else if (value->kind != VAB_NODE_NULL) {
      r = vab_error_at(ctx, VAB_E_SCHEMA, &value->mark,
                       "variable '%s' must be a single value, not %s", name,
                       node_kind_name(value));
      continue;
    }
    if (tpl_var_set(l, vars, name, text) < 0)
      return -1;
  }
  for (size_t i = 0; l->opts != NULL && i < l->opts->n_vars; i++) {
    const struct vab_var *v = &l->opts->vars[i];
    if (!valid_var_name(v->name, strlen(v->name))) {
      r = vab_error(ctx, VAB_E_USAGE, "--var: invalid variable name '%s'",
                    v->name);
      continue;
    }
    if (strcmp(v->name, "name") == 0 || strcmp(v->name, "version") == 0) {
      r = vab_error(ctx, VAB_E_USAGE,
                    "--var: '%s' cannot be a variable: ${%s} is the "
                    "template's own %s",
                    v->name, v->name, v->name);
      continue;
    }
    if (tpl_var_set(l, vars, v->name, v->value) < 0)
      return -1;
  }
  for (size_t i = 0; i < vars->n; i++) {
    const char *env = env_override(l, vars->names[i]);
    if (env != NULL && tpl_var_set(l, vars, vars->names[i], env) < 0)
      return -1;
  }
  return r;
}

/* Points a diagnostic at the "${" itself when the scalar sits on one line
 * of ASCII text, else at the scalar. */
static struct vab_mark ref_mark(struct loader *l, const struct vab_node *node,
                                size_t offset) {
  struct vab_mark mark = node->mark;
  const struct tpl_file *file = l->files;
  while (file != NULL && file->path != mark.file)
    file = file->next;
  if (file == NULL)
    return mark;
  const char *line = file->data;
  const char *end = file->data + file->len;
  for (uint32_t n = 1; n < mark.line && line < end; line++)
    if (*line == '\n')
      n++;
  size_t start = mark.column - 1 + (node->quoted ? 1 : 0);
  for (size_t i = 0; i < start; i++)
    if (line + i >= end || (unsigned char)line[i] >= 0x80 || line[i] == '\n')
      return mark;
  if (line + start + offset + 2 > end ||
      memcmp(line + start, node->scalar, offset + 2) != 0)
    return mark;
  mark.column = (uint32_t)(start + offset + 1);
  return mark;
}

/* An error about the reference at offset of node's text.  The line is
 * looked for only when the diagnostic will be kept. */
static void VAB_PRINTF(4, 5) ref_error(struct loader *l,
                                       const struct vab_node *node,
                                       size_t offset, const char *fmt, ...) {
  struct vab_mark mark = vab_diag_dropped(l->ctx) > 0
                             ? node->mark
                             : ref_mark(l, node, offset);
  char *message = NULL;
  va_list ap;
  va_start(ap, fmt);
  int n = vasprintf(&message, fmt, ap);
  va_end(ap);
  vab_error_at(l->ctx, VAB_E_SCHEMA, &mark, "%s",
               n >= 0 ? message : "bad variable reference");
  free(message);
}

const char *tpl_var_env_shown(struct loader *l, const char *name) {
  if (env_override(l, name) == NULL)
    return NULL;
  char *shown = NULL;
  if (asprintf(&shown, "${env:VAB_VAR_%s}", name) < 0)
    return NULL;
  const char *copy = arena_strdup(l->arena, shown);
  free(shown);
  return copy;
}

/* Keep value out of what vab shows from now on: shown is how the template
 * wrote where it came from. */
static int add_secret(struct loader *l, const char *value, bool env,
                      const char *name, size_t name_len) {
  char *shown = NULL;
  if (asprintf(&shown, "${%s%.*s}", env ? "env:" : "", (int)name_len,
               name) < 0)
    return vab_error(l->ctx, VAB_E_NOMEM, "out of memory");
  int r = vab_ctx_add_secret(l->ctx, value, shown);
  free(shown);
  return r;
}

int tpl_expand_scalar(struct loader *l, const struct tpl_vars *vars,
                      const struct vab_node *node, const char **out,
                      bool *from_env) {
  struct vab_ctx *ctx = l->ctx;
  const char *text = node->scalar;
  if (from_env != NULL)
    *from_env = false;
  if (strchr(text, '$') == NULL) {
    *out = text;
    return 0;
  }
  struct buf b = BUF_INIT;
  b.cap = VAB_TEMPLATE_MAX_VALUE;
  int r = 0;
  const char *p = text;
  while (*p != '\0' && r == 0) {
    if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
      r = buf_puts(&b, "${");
      p += 3;
      continue;
    }
    if (!(p[0] == '$' && p[1] == '{')) {
      r = buf_putc(&b, *p++);
      continue;
    }
    size_t offset = (size_t)(p - text);
    const char *close = strchr(p + 2, '}');
    if (close == NULL) {
      ref_error(l, node, offset, "'${' without a closing '}'");
      vab_diag_hint(ctx, "write $${ for a literal ${");
      buf_release(&b);
      return -1;
    }
    const char *name = p + 2;
    size_t len = (size_t)(close - name);
    const char *value = NULL;
    if (len > 4 && strncmp(name, "env:", 4) == 0) {
      char *env = strndup(name + 4, len - 4);
      if (env == NULL) {
        buf_release(&b);
        return vab_error(ctx, VAB_E_NOMEM, "out of memory");
      }
      if (!valid_var_name(env, len - 4))
        ref_error(l, node, offset,
                     "invalid environment variable name '%s'", env);
      else if (l->opts == NULL || !l->opts->use_environment)
        ref_error(l, node, offset,
                     "${env:%s} cannot be used: reading the environment is "
                     "turned off",
                     env);
      else if ((value = getenv(env)) == NULL)
        ref_error(l, node, offset,
                     "environment variable '%s' is not set", env);
      free(env);
      if (value != NULL) {
        if (from_env != NULL)
          *from_env = true;
        if (add_secret(l, value, true, name + 4, len - 4) < 0) {
          buf_release(&b);
          return -1;
        }
      }
    } else if (!valid_var_name(name, len)) {
      ref_error(l, node, offset,
                   "invalid variable reference '${%.*s}'", (int)len, name);
      vab_diag_hint(ctx, "a name has letters, digits and '_'; write $${ for "
                         "a literal ${");
    } else {
      char *var = strndup(name, len);
      if (var == NULL) {
        buf_release(&b);
        return vab_error(ctx, VAB_E_NOMEM, "out of memory");
      }
      /* ${name} and ${version} are the template's own, never overridden. */
      bool own = strcmp(var, "name") == 0 || strcmp(var, "version") == 0;
      value = own ? NULL : env_override(l, var);
      if (value != NULL) {
        if (from_env != NULL)
          *from_env = true;
        if (add_secret(l, value, false, name, len) < 0) {
          free(var);
          buf_release(&b);
          return -1;
        }
      }
      for (size_t i = 0; value == NULL && i < vars->n; i++)
        if (strcmp(vars->names[i], var) == 0)
          value = vars->values[i];
      if (value == NULL) {
        ref_error(l, node, offset, "unknown variable '%s'", var);
        const char *close_name =
            vars->n > 0 ? vab_suggest(var, vars->names) : NULL;
        if (close_name != NULL)
          vab_diag_hint(ctx, "did you mean '%s'?", close_name);
        else
          vab_diag_hint(ctx, "define it under 'variables:', or pass "
                             "--var %s=VALUE",
                        var);
      }
      free(var);
    }
    if (value == NULL) {
      buf_release(&b);
      return -1;
    }
    r = buf_puts(&b, value);
    p = close + 1;
  }
  if (r == 0 && b.len > EXPANDED_BYTES_MAX - l->expanded_bytes)
    r = -1;
  if (r < 0) {
    buf_release(&b);
    return vab_error_at(ctx, VAB_E_SCHEMA, &node->mark,
                        "value too long once variables are replaced (at "
                        "most %u bytes)",
                        VAB_TEMPLATE_MAX_VALUE);
  }
  l->expanded_bytes += b.len;
  *out = arena_strndup(l->arena, b.data ? b.data : "", b.len);
  buf_release(&b);
  if (*out == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  return 0;
}

int tpl_expand_tree(struct loader *l, const struct tpl_vars *vars,
                    const struct vab_node *node, bool top,
                    struct vab_node **out) {
  if (node->kind == VAB_NODE_NULL) {
    *out = (struct vab_node *)node;
    return 0;
  }
  if (node->kind == VAB_NODE_SCALAR) {
    const char *text = NULL;
    bool from_env = false;
    if (tpl_expand_scalar(l, vars, node, &text, &from_env) < 0) {
      if (l->n_failed < VAB_DIAG_MAX)
        l->failed[l->n_failed++] = node->mark;
      return -1;
    }
    if (text == node->scalar) {
      *out = (struct vab_node *)node;
      return 0;
    }
    struct vab_node *n = node_new(l, VAB_NODE_SCALAR, &node->mark);
    if (n == NULL)
      return -1;
    n->scalar = (char *)text;
    n->quoted = node->quoted;
    if (from_env)
      n->shown = node->scalar;
    *out = n;
    return 0;
  }
  struct vab_node *copy = node_new(l, node->kind, &node->mark);
  if (copy == NULL)
    return -1;
  int r = 0;
  for (size_t i = 0; i < node->n; i++) {
    struct vab_node *item = node->items[i];
    if (node->kind == VAB_NODE_MAP && top &&
        strcmp(node->keys[i], "extends") == 0)
      continue;
    /* Variable defaults are literal text. */
    bool literal = node->kind == VAB_NODE_MAP && top &&
                   strcmp(node->keys[i], "variables") == 0;
    struct vab_node *expanded = item;
    /* name and version were expanded first (they are variables too). */
    const char *identity = NULL;
    if (node->kind == VAB_NODE_MAP && top && item->kind == VAB_NODE_SCALAR &&
        (strcmp(node->keys[i], "name") == 0 ||
         strcmp(node->keys[i], "version") == 0)) {
      literal = true;
      for (size_t v = 0; v < vars->n; v++)
        if (strcmp(vars->names[v], node->keys[i]) == 0)
          identity = vars->values[v];
      if (identity == NULL) {
        r = -1;
      } else if (strcmp(identity, item->scalar) != 0) {
        expanded = node_new(l, VAB_NODE_SCALAR, &item->mark);
        if (expanded == NULL)
          return -1;
        expanded->scalar = (char *)identity;
        expanded->quoted = item->quoted;
      }
    }
    if (!literal && tpl_expand_tree(l, vars, item, false, &expanded) < 0) {
      r = -1;
      /* Keep going with the value as written, so that the schema still
       * reports every other problem in this run; stop only when the
       * loader itself cannot go on. */
      if (l->nodes >= VAB_TEMPLATE_MAX_NODES ||
          vab_error_count(l->ctx) >= VAB_DIAG_MAX)
        return -1;
      expanded = item;
    }
    if (node->kind == VAB_NODE_MAP)
      r |= node_map_add(l, copy, node->keys[i], &node->key_marks[i], expanded);
    else
      r |= node_seq_add(l, copy, expanded);
  }
  *out = copy;
  return r < 0 ? -1 : 0;
}
