/* Helpers the provisioners share for reading and checking their keys. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "provisioners/util.h"

int prov_list_read(struct vab_ctx *ctx, const struct vab_node *spec,
                   const char *key, const char *what, struct prov_list *out) {
  memset(out, 0, sizeof *out);
  const struct vab_node *node = vab_node_get(spec, key);
  if (node == NULL || node->kind == VAB_NODE_NULL)
    return 0;
  if (node->kind == VAB_NODE_SEQ && node->n > PROV_LIST_MAX)
    return vab_error_at(ctx, VAB_E_SCHEMA, &node->mark,
                        "'%.200s' has %zu items, at most %d", what, node->n,
                        PROV_LIST_MAX);
  if (vab_node_string_list(ctx, node, what, &out->items, &out->n) < 0)
    return -1;
  out->node = node;
  return 0;
}

const struct vab_mark *prov_list_mark(const struct prov_list *list, size_t i) {
  if (list->node->kind == VAB_NODE_SEQ && i < list->node->n)
    return &list->node->items[i]->mark;
  return &list->node->mark;
}

void prov_list_free(struct prov_list *list) {
  free(list->items);
  memset(list, 0, sizeof *list);
}

int prov_string(struct vab_ctx *ctx, const struct vab_node *spec,
                const char *key, const char *what, const char **out,
                struct vab_mark *mark) {
  const struct vab_node *node = vab_node_get(spec, key);
  if (mark != NULL)
    *mark = node != NULL ? node->mark : spec->mark;
  if (node == NULL || node->kind == VAB_NODE_NULL)
    return 0;
  return vab_node_string(ctx, node, what, out);
}

int prov_host_path(struct vab_ctx *ctx, const struct vab_node *spec,
                   const char *key, const char *what, const char *dir,
                   char **out, const char **written, struct vab_mark *mark) {
  const char *text = NULL;
  if (prov_string(ctx, spec, key, what, &text, mark) < 0)
    return -1;
  if (text == NULL)
    return 0;
  if (text[0] == '\0')
    return vab_error_at(ctx, VAB_E_SCHEMA, mark, "'%.200s' is empty", what);
  *out = vab_path_resolve(dir, text);
  if (*out == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  if (written != NULL)
    *written = text;
  return 0;
}

int prov_check_host_file(struct vab_ctx *ctx, const char *path,
                         const char *written, const struct vab_mark *mark,
                         const char *what) {
  struct stat st;
  if (stat(path, &st) < 0) {
    vab_error_at(ctx, VAB_E_IO, mark, "%s '%.200s' cannot be read: %s", what,
                 written, strerror(errno));
    vab_diag_hint(ctx, "relative paths start from the template's folder");
    return -1;
  }
  if (!S_ISREG(st.st_mode))
    return vab_error_at(ctx, VAB_E_IO, mark, "%s '%.200s' is not a regular file",
                        what, written);
  return 0;
}

int prov_check_guest_path(struct vab_ctx *ctx, const char *path,
                          const struct vab_mark *mark, const char *what) {
  if (path[0] != '/')
    return vab_error_at(ctx, VAB_E_SCHEMA, mark,
                        "%s must be an absolute path in the guest, not '%.200s'",
                        what, path);
  if (strcmp(path, "/") == 0)
    return vab_error_at(ctx, VAB_E_SCHEMA, mark,
                        "%s cannot be the guest's root folder", what);
  for (const char *p = path; (p = strstr(p, "..")) != NULL; p += 2)
    if (p[-1] == '/' && (p[2] == '/' || p[2] == '\0'))
      return vab_error_at(ctx, VAB_E_SCHEMA, mark,
                          "%s must not contain '..': '%.200s'", what, path);
  return 0;
}

bool prov_parse_mode(const char *text, unsigned *mode) {
  size_t len = strlen(text);
  if (len < 3 || len > 4)
    return false;
  unsigned v = 0;
  for (size_t i = 0; i < len; i++) {
    if (text[i] < '0' || text[i] > '7')
      return false;
    v = v * 8 + (unsigned)(text[i] - '0');
  }
  *mode = v;
  return true;
}

bool prov_valid_unix_name(const char *name) {
  size_t len = strlen(name);
  if (len == 0 || len > 32)
    return false;
  if (!((name[0] >= 'a' && name[0] <= 'z') || name[0] == '_'))
    return false;
  for (size_t i = 1; i < len; i++) {
    char c = name[i];
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
        c == '-')
      continue;
    if (c == '$' && i == len - 1)
      continue;
    return false;
  }
  return true;
}

bool prov_valid_env_name(const char *name) {
  if (!(isalpha((unsigned char)name[0]) || name[0] == '_'))
    return false;
  for (const char *p = name; *p; p++)
    if (!(isalnum((unsigned char)*p) || *p == '_'))
      return false;
  return true;
}

int prov_exactly_one(struct vab_ctx *ctx, const struct vab_node *spec,
                     const char *type, const char *a, const char *b) {
  const struct vab_node *na = vab_node_get(spec, a);
  const struct vab_node *nb = vab_node_get(spec, b);
  if (na != NULL && nb != NULL)
    return vab_error_at(ctx, VAB_E_SCHEMA, vab_node_key_mark(spec, b),
                        "a %s step takes '%.200s' or '%.200s', not both", type, a, b);
  if (na == NULL && nb == NULL)
    return vab_error_at(ctx, VAB_E_SCHEMA, &spec->mark,
                        "a %s step needs '%.200s' or '%.200s'", type, a, b);
  return 0;
}
