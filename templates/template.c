/* vab_template_load(): parse, follow `extends`, expand variables, check the
 * schema, and attach the source line to every diagnostic that has a
 * location. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vab/step.h"
#include "templates/template-private.h"

/* The line as it may be shown: bytes that are not valid UTF-8, and control
 * characters other than tab, become '?' one for one, so the caret column
 * still lines up and JSON output stays valid. */
static char *printable_line(const char *p, size_t len) {
  char *out = malloc(len + 1);
  if (out == NULL)
    return NULL;
  size_t i = 0;
  while (i < len) {
    unsigned char c = (unsigned char)p[i];
    size_t seq = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
               : (c & 0xf8) == 0xf0 ? 4 : 0;
    bool ok = seq > 0 && i + seq <= len && !(c < 0x20 && c != '\t') &&
              c != 0x7f && !(seq == 2 && c < 0xc2);
    for (size_t k = 1; ok && k < seq; k++)
      ok = ((unsigned char)p[i + k] & 0xc0) == 0x80;
    if (!ok) {
      out[i++] = '?';
      continue;
    }
    memcpy(out + i, p + i, seq);
    i += seq;
  }
  out[len] = '\0';
  /* A plain password on the line is starred out, one for one: messages
   * never show it, and neither does the line under them. */
  for (char *q = strstr(out, "password:"); q != NULL;
       q = strstr(q, "password:")) {
    q += strlen("password:");
    while (*q == ' ')
      q++;
    while (*q != '\0' && *q != ',' && *q != '}')
      *q++ = '*';
  }
  return out;
}

static void attach_source_lines(struct loader *l, size_t first) {
  size_t n = vab_diag_count(l->ctx);
  for (size_t i = first; i < n; i++) {
    const struct vab_diag *d = vab_diag_get(l->ctx, i);
    if (d->file == NULL || d->line == 0 || d->source_line != NULL)
      continue;
    const struct tpl_file *f = l->files;
    while (f != NULL && strcmp(f->path, d->file) != 0)
      f = f->next;
    if (f == NULL)
      continue;
    const char *p = f->data, *end = f->data + f->len;
    for (uint32_t line = 1; line < d->line && p < end; p++)
      if (*p == '\n')
        line++;
    if (p >= end && d->line > 1)
      continue;
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    size_t len = eol ? (size_t)(eol - p) : (size_t)(end - p);
    if (len > 0 && p[len - 1] == '\r')
      len--;
    /* A huge line (minified or binary input) is not worth echoing. */
    if (len > 300)
      len = 300;
    /* Cut at a character boundary. */
    while (len > 0 && len < (size_t)(end - p) &&
           ((unsigned char)p[len] & 0xc0) == 0x80)
      len--;
    char *shown = printable_line(p, len);
    if (shown != NULL)
      vab_diag_source_line_at(l->ctx, i, shown, len);
    free(shown);
  }
}

/* name and version first, as the rest of the template may use them. */
static int expand_identity(struct loader *l, const struct vab_node *root,
                           struct tpl_vars *vars) {
  static const char *const keys[] = {"name", "version"};
  int r = 0;
  for (size_t i = 0; i < 2; i++) {
    const struct vab_node *node = vab_node_get(root, keys[i]);
    const char *value = i == 1 ? "0" : NULL;
    if (node != NULL && node->kind == VAB_NODE_SCALAR &&
        tpl_expand_scalar(l, vars, node, &value, NULL) < 0) {
      if (l->n_failed < VAB_DIAG_MAX)
        l->failed[l->n_failed++] = node->mark;
      value = NULL;
      r = -1;
    }
    if (value != NULL && tpl_var_set(l, vars, keys[i], value) < 0)
      return -1;
  }
  return r;
}

static bool at_failed_mark(const struct loader *l, const struct vab_diag *d) {
  for (size_t i = 0; i < l->n_failed; i++)
    if (d->file != NULL && l->failed[i].file != NULL &&
        strcmp(d->file, l->failed[i].file) == 0 &&
        d->line == l->failed[i].line && d->column == l->failed[i].column)
      return true;
  return false;
}

/* The schema still checks the rest of a template whose variables did not
 * all expand, on a scratch context; its complaints about the values that
 * did not expand (and their notes) are dropped as repeats. */
static int schema_after_failed_expansion(struct loader *l,
                                         const struct vab_node *root,
                                         const char *dir,
                                         struct vab_template *t) {
  struct vab_ctx *real = l->ctx;
  struct vab_ctx *scratch = vab_ctx_new();
  if (scratch == NULL)
    return vab_error(real, VAB_E_NOMEM, "out of memory");
  l->ctx = scratch;
  tpl_schema(l, root, dir, t);
  l->ctx = real;
  bool dropping = false;
  for (size_t i = 0; i < vab_diag_count(scratch); i++) {
    const struct vab_diag *d = vab_diag_get(scratch, i);
    if (d->severity != VAB_SEV_NOTE)
      dropping = at_failed_mark(l, d);
    if (dropping)
      continue;
    struct vab_mark mark = {d->file, d->line, d->column};
    const struct vab_mark *at = d->file != NULL ? &mark : NULL;
    if (d->severity == VAB_SEV_ERROR)
      vab_error_at(real, d->code, at, "%s", d->message);
    else if (d->severity == VAB_SEV_WARNING)
      vab_warn_at(real, at, "%s", d->message);
    else
      vab_note_at(real, at, "%s", d->message);
    if (d->hint != NULL)
      vab_diag_hint(real, "%s", d->hint);
  }
  vab_ctx_free(scratch);
  return -1;
}

static int load(struct vab_ctx *ctx, const char *path, const char *dir,
                const char *data, size_t len,
                const struct vab_load_opts *opts, struct vab_template **out) {
  static const struct vab_load_opts default_opts = {.use_environment = true};
  *out = NULL;
  struct vab_template *t = calloc(1, sizeof *t);
  struct arena *arena = calloc(1, sizeof *arena);
  if (t == NULL || arena == NULL) {
    free(t);
    free(arena);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  t->priv = arena;
  struct loader l = {
    .ctx = ctx, .arena = arena, .opts = opts ? opts : &default_opts,
  };
  size_t first_diag = vab_diag_count(ctx);
  size_t errors_before = vab_error_count(ctx);

  struct tpl_file *file = NULL;
  struct vab_node *tree = NULL, *merged = NULL, *expanded = NULL;
  struct tpl_vars vars = {0};
  int r = tpl_parse_file(&l, path, dir, data, len, &file, &tree);
  if (r == 0)
    r = tpl_load_tree(&l, file, tree, &merged);
  if (r == 0)
    r = tpl_collect_vars(&l, merged, &vars);
  if (r == 0) {
    /* The user's variables, before name and version join them. */
    struct vab_var *list = arena_alloc(arena, (vars.n + 1) * sizeof *list);
    if (list == NULL) {
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
    } else {
      for (size_t i = 0; i < vars.n; i++) {
        list[i].name = vars.names[i];
        list[i].value = vars.values[i];
      }
      t->variables = list;
      t->n_variables = vars.n;
    }
  }
  /* A bad variable reference still lets the schema check the rest. */
  bool expand_failed = false;
  if (r == 0)
    expand_failed = expand_identity(&l, merged, &vars) < 0;
  if (r == 0 && tpl_expand_tree(&l, &vars, merged, true, &expanded) < 0) {
    expand_failed = true;
    r = expanded == NULL ? -1 : 0;
  }
  if (r == 0) {
    t->path = arena_strdup(arena, path);
    t->dir = file->dir;
    if (t->path == NULL)
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  if (r == 0 && !expand_failed)
    r = tpl_schema(&l, expanded, file->dir, t);
  else if (r == 0)
    r = schema_after_failed_expansion(&l, expanded, file->dir, t);
  if (vab_error_count(ctx) > errors_before)
    r = -1;
  attach_source_lines(&l, first_diag);
  if (r < 0) {
    vab_template_free(t);
    return -1;
  }
  *out = t;
  return 0;
}

int vab_template_load(struct vab_ctx *ctx, const char *path,
                      const struct vab_load_opts *opts,
                      struct vab_template **out) {
  return load(ctx, path, NULL, NULL, 0, opts, out);
}

int vab_template_load_data(struct vab_ctx *ctx, const char *display_path,
                           const char *dir, const char *data, size_t len,
                           const struct vab_load_opts *opts,
                           struct vab_template **out) {
  char *cwd = NULL;
  if (dir == NULL) {
    cwd = getcwd(NULL, 0);
    if (cwd == NULL)
      return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  int r = load(ctx, display_path, dir ? dir : cwd, data != NULL ? data : "",
               data != NULL ? len : 0, opts, out);
  free(cwd);
  return r;
}

void vab_template_free(struct vab_template *t) {
  if (t == NULL)
    return;
  for (size_t i = 0; i < t->n_steps; i++) {
    const struct vab_step_type *p = t->steps[i].step_type;
    if (p != NULL && t->steps[i].config != NULL)
      p->free(t->steps[i].config);
  }
  arena_release(t->priv);
  free(t->priv);
  free(t);
}
