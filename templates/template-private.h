/* Inside the template loader: shared by the files of templates/ only.
 *
 *   parse.c   one file's bytes -> libyaml events -> node tree (marks kept)
 *   expand.c  `extends` merge and variable interpolation -> one tree
 *   schema.c  the tree -> struct vab_template, defaults filled
 *   emit.c    a tree -> canonical YAML
 *   node.c    tree accessors, typed readers, units, "did you mean"
 *   template.c  vab_template_load(): the steps above, in order
 *
 * Everything the loader allocates for a template lives in one arena, freed
 * in one go by vab_template_free().
 */
#ifndef VAB_TEMPLATES_PRIVATE_H
#define VAB_TEMPLATES_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include "vab/template.h"

/* A bump allocator made of malloc'd chunks. */
struct arena_chunk;
struct arena {
  struct arena_chunk *head;
};

void *arena_alloc(struct arena *a, size_t size);        /* zeroed */
char *arena_strndup(struct arena *a, const char *s, size_t len);
char *arena_strdup(struct arena *a, const char *s);
void arena_release(struct arena *a);

/* One template file read into memory, kept so that diagnostics can show
 * the offending line. */
struct tpl_file {
  const char *path;       /* as shown in diagnostics */
  const char *dir;        /* its folder, absolute */
  const char *real;       /* canonical path, to detect `extends` cycles */
  const char *data;
  size_t len;
  struct tpl_file *next;
};

struct loader {
  struct vab_ctx *ctx;
  struct arena *arena;
  struct tpl_file *files;
  const struct vab_load_opts *opts;
  size_t nodes;           /* nodes made so far, aliases counted in full */
  size_t expanded_bytes;  /* scalar bytes written by variable expansion */
  /* Scalars whose variables could not be expanded: the schema's own
   * complaints about them would only repeat the problem. */
  struct vab_mark failed[VAB_DIAG_MAX];
  size_t n_failed;
};

/* Node makers (arena-allocated). */
struct vab_node *node_new(struct loader *l, enum vab_node_kind kind,
                          const struct vab_mark *mark);
struct vab_node *node_scalar(struct loader *l, const char *text,
                             const struct vab_mark *mark);
/* Appends to a map or a sequence (key NULL); arrays grow in the arena. */
int node_map_add(struct loader *l, struct vab_node *map, const char *key,
                 const struct vab_mark *key_mark, struct vab_node *value);
int node_seq_add(struct loader *l, struct vab_node *seq, struct vab_node *item);
/* Nodes in a subtree, aliases counted in full. */
size_t node_count(const struct vab_node *node);

/* parse.c: read and parse path (display as shown); *root may be a NULL
 * node for an empty file.  data != NULL parses that buffer instead. */
int tpl_parse_file(struct loader *l, const char *display, const char *dir,
                   const char *data, size_t len, struct tpl_file **file,
                   struct vab_node **root);

/* expand.c */
int tpl_load_tree(struct loader *l, struct tpl_file *file,
                  struct vab_node *root, struct vab_node **merged);
struct tpl_vars {
  const char **names;
  const char **values;
  size_t n;
};
int tpl_collect_vars(struct loader *l, const struct vab_node *root,
                     struct tpl_vars *vars);
int tpl_var_set(struct loader *l, struct tpl_vars *vars, const char *name,
                const char *value);
/* Expand ${...} in one scalar node; *out is the expanded text or
 * node->scalar itself.  *from_env (if not NULL) tells whether part of it
 * came from the environment (${env:NAME} or a VAB_VAR_NAME override); each
 * such value is registered with vab_ctx_add_secret(). */
int tpl_expand_scalar(struct loader *l, const struct tpl_vars *vars,
                      const struct vab_node *node, const char **out,
                      bool *from_env);
/* "${env:VAB_VAR_NAME}" (arena) when the environment overrides variable
 * name, else NULL: what --print shows for its value. */
const char *tpl_var_env_shown(struct loader *l, const char *name);
/* The text diagnostics show for a scalar: as written when it came from the
 * environment, else its value. */
const char *node_shown(const struct vab_node *node);
/* Expand every scalar of a tree except under the keys `variables` and
 * `extends` of the top level. */
int tpl_expand_tree(struct loader *l, const struct tpl_vars *vars,
                    const struct vab_node *node, bool top,
                    struct vab_node **out);

/* schema.c: fill t from the expanded tree; t->root is set to the canonical
 * tree (schema key order, defaults filled). */
int tpl_schema(struct loader *l, const struct vab_node *root,
               const char *dir, struct vab_template *t);

/* emit.c */
char *tpl_emit(struct vab_ctx *ctx, const struct vab_node *node);

/* node.c: scalar classification shared by the readers and the emitter. */
bool node_is_bool_text(const char *text, bool *value);
const char *node_kind_name(const struct vab_node *node);

#endif
