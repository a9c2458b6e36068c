/* The node tree: arena, makers, accessors, typed readers and units. */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/size.h"
#include "templates/template-private.h"

/* Arena. */

struct arena_chunk {
  struct arena_chunk *next;
  size_t used;
  size_t size;
  max_align_t data[];
};

#define ARENA_CHUNK_SIZE (64 * 1024)

/* Under AddressSanitizer every block is its own malloc, exactly its size,
 * so that ASan (and the fuzzer) see an overrun of any one of them. */
#if defined(__SANITIZE_ADDRESS__)
#define ARENA_EXACT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_EXACT 1
#endif
#endif

#ifdef ARENA_EXACT
void *arena_alloc(struct arena *a, size_t size) {
  struct arena_chunk *c = malloc(sizeof *c + (size ? size : 1));
  if (c == NULL)
    return NULL;
  c->used = c->size = size;
  c->next = a->head;
  a->head = c;
  memset(c->data, 0, size);
  return c->data;
}
#else
void *arena_alloc(struct arena *a, size_t size) {
  size_t align = sizeof(max_align_t);
  if (size > SIZE_MAX - align)
    return NULL;
  size = (size + align - 1) / align * align;
  struct arena_chunk *c = a->head;
  if (c == NULL || c->size - c->used < size) {
    size_t chunk = size > ARENA_CHUNK_SIZE / 4 ? size : ARENA_CHUNK_SIZE;
    c = malloc(sizeof *c + chunk);
    if (c == NULL)
      return NULL;
    c->used = 0;
    c->size = chunk;
    /* A big block gets its own chunk behind the current one, so the space
     * left in the current chunk stays usable. */
    if (size > ARENA_CHUNK_SIZE / 4 && a->head != NULL) {
      c->next = a->head->next;
      a->head->next = c;
    } else {
      c->next = a->head;
      a->head = c;
    }
  }
  void *p = (char *)c->data + c->used;
  c->used += size;
  memset(p, 0, size);
  return p;
}
#endif

char *arena_strndup(struct arena *a, const char *s, size_t len) {
  char *p = arena_alloc(a, len + 1);
  if (p == NULL)
    return NULL;
  memcpy(p, s, len);
  p[len] = '\0';
  return p;
}

char *arena_strdup(struct arena *a, const char *s) {
  return arena_strndup(a, s, strlen(s));
}

void arena_release(struct arena *a) {
  struct arena_chunk *c = a->head;
  while (c != NULL) {
    struct arena_chunk *next = c->next;
    free(c);
    c = next;
  }
  a->head = NULL;
}

/* Makers. */

struct vab_node *node_new(struct loader *l, enum vab_node_kind kind,
                          const struct vab_mark *mark) {
  if (l->nodes >= VAB_TEMPLATE_MAX_NODES) {
    vab_error_at(l->ctx, VAB_E_SCHEMA, mark,
                 "template too large: more than %d values (aliases count "
                 "each time they are used)",
                 VAB_TEMPLATE_MAX_NODES);
    return NULL;
  }
  struct vab_node *n = arena_alloc(l->arena, sizeof *n);
  if (n == NULL) {
    vab_error(l->ctx, VAB_E_NOMEM, "out of memory");
    return NULL;
  }
  l->nodes++;
  n->kind = kind;
  if (mark != NULL)
    n->mark = *mark;
  return n;
}

struct vab_node *node_scalar(struct loader *l, const char *text,
                             const struct vab_mark *mark) {
  struct vab_node *n = node_new(l, VAB_NODE_SCALAR, mark);
  if (n == NULL)
    return NULL;
  n->scalar = arena_strdup(l->arena, text);
  if (n->scalar == NULL) {
    vab_error(l->ctx, VAB_E_NOMEM, "out of memory");
    return NULL;
  }
  return n;
}

/* Arrays grow by doubling inside the arena; the capacity is implied by n
 * (the next power of two, at least 4). */
static bool needs_growth(size_t n) {
  return n == 0 || (n >= 4 && (n & (n - 1)) == 0);
}

static void *grow(struct loader *l, void *old, size_t n, size_t elem) {
  size_t cap = n < 4 ? 4 : n * 2;
  void *p = arena_alloc(l->arena, cap * elem);
  if (p == NULL)
    return NULL;
  if (n > 0)
    memcpy(p, old, n * elem);
  return p;
}

int node_seq_add(struct loader *l, struct vab_node *seq, struct vab_node *item) {
  if (needs_growth(seq->n)) {
    struct vab_node **items = grow(l, seq->items, seq->n, sizeof *items);
    if (items == NULL)
      return vab_error(l->ctx, VAB_E_NOMEM, "out of memory");
    seq->items = items;
  }
  seq->items[seq->n++] = item;
  return 0;
}

int node_map_add(struct loader *l, struct vab_node *map, const char *key,
                 const struct vab_mark *key_mark, struct vab_node *value) {
  if (needs_growth(map->n)) {
    struct vab_node **items = grow(l, map->items, map->n, sizeof *items);
    char **keys = grow(l, map->keys, map->n, sizeof *keys);
    struct vab_mark *marks = grow(l, map->key_marks, map->n, sizeof *marks);
    if (items == NULL || keys == NULL || marks == NULL)
      return vab_error(l->ctx, VAB_E_NOMEM, "out of memory");
    map->items = items;
    map->keys = keys;
    map->key_marks = marks;
  }
  map->keys[map->n] = arena_strdup(l->arena, key);
  if (map->keys[map->n] == NULL)
    return vab_error(l->ctx, VAB_E_NOMEM, "out of memory");
  map->key_marks[map->n] = key_mark != NULL ? *key_mark : value->mark;
  map->items[map->n] = value;
  map->n++;
  return 0;
}

size_t node_count(const struct vab_node *node) {
  if (node == NULL)
    return 0;
  size_t count = 1;
  if (node->kind == VAB_NODE_SEQ || node->kind == VAB_NODE_MAP)
    for (size_t i = 0; i < node->n; i++)
      count += node_count(node->items[i]);
  return count;
}

/* Accessors. */

const struct vab_node *vab_node_get(const struct vab_node *map,
                                    const char *key) {
  if (map == NULL || map->kind != VAB_NODE_MAP)
    return NULL;
  for (size_t i = 0; i < map->n; i++)
    if (strcmp(map->keys[i], key) == 0)
      return map->items[i];
  return NULL;
}

const struct vab_mark *vab_node_key_mark(const struct vab_node *map,
                                         const char *key) {
  if (map == NULL)
    return NULL;
  if (map->kind == VAB_NODE_MAP)
    for (size_t i = 0; i < map->n; i++)
      if (strcmp(map->keys[i], key) == 0)
        return &map->key_marks[i];
  return &map->mark;
}

const char *node_shown(const struct vab_node *node) {
  return node->shown != NULL ? node->shown : node->scalar;
}

const char *node_kind_name(const struct vab_node *node) {
  switch (node->kind) {
  case VAB_NODE_NULL: return "nothing";
  case VAB_NODE_SCALAR: return "a single value";
  case VAB_NODE_SEQ: return "a list";
  case VAB_NODE_MAP: return "a mapping";
  }
  return "something else";
}

bool node_is_bool_text(const char *text, bool *value) {
  static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes",
                                    "on", "On", NULL};
  static const char *const no[] = {"false", "False", "FALSE", "no", "No",
                                   "off", "Off", NULL};
  for (size_t i = 0; yes[i] != NULL; i++)
    if (strcmp(text, yes[i]) == 0) {
      if (value != NULL)
        *value = true;
      return true;
    }
  for (size_t i = 0; no[i] != NULL; i++)
    if (strcmp(text, no[i]) == 0) {
      if (value != NULL)
        *value = false;
      return true;
    }
  return false;
}

/* Typed readers. */

int vab_node_string(struct vab_ctx *ctx, const struct vab_node *node,
                    const char *what, const char **out) {
  if (node == NULL)
    return 0;
  if (node->kind != VAB_NODE_SCALAR)
    return vab_error_at(ctx, VAB_E_SCHEMA, &node->mark,
                        "'%.200s' must be a string, not %s", what,
                        node_kind_name(node));
  *out = node->scalar;
  return 0;
}

int vab_node_bool(struct vab_ctx *ctx, const struct vab_node *node,
                  const char *what, bool *out) {
  if (node == NULL)
    return 0;
  bool value;
  if (node->kind != VAB_NODE_SCALAR || !node_is_bool_text(node->scalar, &value)) {
    if (node->kind == VAB_NODE_SCALAR)
      vab_error_at(ctx, VAB_E_SCHEMA, &node->mark,
                   "'%.200s' must be true or false, not '%.200s'", what,
                   node_shown(node));
    else
      vab_error_at(ctx, VAB_E_SCHEMA, &node->mark,
                   "'%.200s' must be true or false, not %s", what,
                   node_kind_name(node));
    return -1;
  }
  *out = value;
  return 0;
}

static int parse_uint(const char *text, uint64_t *out) {
  if (!isdigit((unsigned char)text[0]))
    return -1;
  uint64_t v = 0;
  for (const char *p = text; *p; p++) {
    if (!isdigit((unsigned char)*p))
      return -1;
    unsigned d = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

int vab_node_uint(struct vab_ctx *ctx, const struct vab_node *node,
                  const char *what, uint64_t max, uint64_t *out) {
  if (node == NULL)
    return 0;
  uint64_t v;
  if (node->kind != VAB_NODE_SCALAR)
    return vab_error_at(ctx, VAB_E_SCHEMA, &node->mark,
                        "'%.200s' must be a whole number, not %s", what,
                        node_kind_name(node));
  if (parse_uint(node->scalar, &v) < 0 || v > max) {
    vab_error_at(ctx, VAB_E_SCHEMA, &node->mark,
                 "'%.200s' must be a whole number from 0 to %llu, not '%.200s'", what,
                 (unsigned long long)max, node_shown(node));
    return -1;
  }
  *out = v;
  return 0;
}

/* Units. */

int vab_node_size(struct vab_ctx *ctx, const struct vab_node *node,
                  const char *what, uint64_t *out) {
  if (node == NULL)
    return 0;
  if (node->kind != VAB_NODE_SCALAR)
    return vab_error_at(ctx, VAB_E_SCHEMA, &node->mark,
                        "'%.200s' must be a size such as 512M or 4G, not %s", what,
                        node_kind_name(node));
  if (vab_parse_size(node->scalar, out) < 0) {
    vab_error_at(ctx, VAB_E_SCHEMA, &node->mark,
                 "'%.200s' must be a size such as 512M, 4G, 4GiB or a number of "
                 "bytes, not '%.200s'",
                 what, node_shown(node));
    size_t len = strlen(node->scalar);
    if (node->shown == NULL && len >= 2 && node->scalar[len - 1] == 'B' &&
        strchr("KMGTPkmgtp", node->scalar[len - 2]) != NULL)
      vab_diag_hint(ctx, "sizes are binary: write %.*s or %.*siB",
                    (int)(len - 1), node->scalar, (int)(len - 1),
                    node->scalar);
    return -1;
  }
  return 0;
}

int vab_node_duration(struct vab_ctx *ctx, const struct vab_node *node,
                      const char *what, uint64_t *out_ms) {
  if (node == NULL)
    return 0;
  if (node->kind != VAB_NODE_SCALAR)
    return vab_error_at(ctx, VAB_E_SCHEMA, &node->mark,
                        "'%.200s' must be a duration such as 90s or 5m, not %s",
                        what, node_kind_name(node));
  if (vab_parse_duration_ms(node->scalar, out_ms) < 0)
    return vab_error_at(ctx, VAB_E_SCHEMA, &node->mark,
                        "'%.200s' must be a duration such as 90s, 5m or 1h30m, "
                        "not '%.200s'",
                        what, node_shown(node));
  return 0;
}

int vab_node_string_list(struct vab_ctx *ctx, const struct vab_node *node,
                         const char *what, const char ***out, size_t *n) {
  if (node == NULL)
    return 0;
  size_t count;
  if (node->kind == VAB_NODE_SCALAR)
    count = 1;
  else if (node->kind == VAB_NODE_SEQ)
    count = node->n;
  else
    return vab_error_at(ctx, VAB_E_SCHEMA, &node->mark,
                        "'%.200s' must be a list of strings, not %s", what,
                        node_kind_name(node));
  int r = 0;
  if (node->kind == VAB_NODE_SEQ)
    for (size_t i = 0; i < node->n; i++)
      if (node->items[i]->kind != VAB_NODE_SCALAR)
        r = vab_error_at(ctx, VAB_E_SCHEMA, &node->items[i]->mark,
                         "each item of '%.200s' must be a string, not %s", what,
                         node_kind_name(node->items[i]));
  if (r < 0)
    return -1;
  const char **list = calloc(count + 1, sizeof *list);
  if (list == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  if (node->kind == VAB_NODE_SCALAR)
    list[0] = node->scalar;
  else
    for (size_t i = 0; i < count; i++)
      list[i] = node->items[i]->scalar;
  *out = list;
  *n = count;
  return 0;
}

/* "Did you mean": optimal string alignment distance, which counts a swap
 * of two neighbours as one edit, the commonest typo. */
static size_t edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 64 || lb > 64)
    return SIZE_MAX;
  size_t d[65][65];
  for (size_t i = 0; i <= la; i++)
    d[i][0] = i;
  for (size_t j = 0; j <= lb; j++)
    d[0][j] = j;
  for (size_t i = 1; i <= la; i++) {
    for (size_t j = 1; j <= lb; j++) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      size_t best = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < best)
        best = d[i][j - 1] + 1;
      if (d[i - 1][j - 1] + cost < best)
        best = d[i - 1][j - 1] + cost;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
          d[i - 2][j - 2] + 1 < best)
        best = d[i - 2][j - 2] + 1;
      d[i][j] = best;
    }
  }
  return d[la][lb];
}

const char *vab_suggest(const char *word, const char *const *candidates) {
  size_t len = strlen(word);
  /* A third of the word may be wrong, at least one letter, at most three. */
  size_t limit = len / 3;
  if (limit < 1)
    limit = 1;
  if (limit > 3)
    limit = 3;
  const char *best = NULL;
  size_t best_distance = SIZE_MAX;
  for (size_t i = 0; candidates[i] != NULL; i++) {
    size_t dist = edit_distance(word, candidates[i]);
    if (dist <= limit && dist < best_distance) {
      best = candidates[i];
      best_distance = dist;
    }
  }
  return best;
}

/* word NULL: the list only. */
static void hint_one_of(struct vab_ctx *ctx, const char *word,
                        const char *const *allowed) {
  /* Past the cap the hint would be dropped: skip the edit distances. */
  if (vab_diag_dropped(ctx) > 0)
    return;
  const char *close = word != NULL ? vab_suggest(word, allowed) : NULL;
  if (close != NULL) {
    vab_diag_hint(ctx, "did you mean '%.200s'?", close);
    return;
  }
  struct buf b = BUF_INIT;
  buf_puts(&b, "expected one of: ");
  for (size_t i = 0; allowed[i] != NULL; i++)
    buf_printf(&b, "%s%s", i ? ", " : "", allowed[i]);
  if (b.data != NULL)
    vab_diag_hint(ctx, "%s", b.data);
  buf_release(&b);
}

int vab_node_enum(struct vab_ctx *ctx, const struct vab_node *node,
                  const char *what, const char *const *allowed,
                  const char **out) {
  if (node == NULL)
    return 0;
  const char *value = NULL;
  if (vab_node_string(ctx, node, what, &value) < 0)
    return -1;
  for (size_t i = 0; allowed[i] != NULL; i++)
    if (strcmp(value, allowed[i]) == 0) {
      *out = allowed[i];
      return 0;
    }
  vab_error_at(ctx, VAB_E_SCHEMA, &node->mark, "unknown %s '%.200s'", what,
               node_shown(node));
  /* No "did you mean" for a value from the environment: it would tell. */
  hint_one_of(ctx, node->shown != NULL ? NULL : value, allowed);
  return -1;
}

int vab_node_check_keys(struct vab_ctx *ctx, const struct vab_node *map,
                        const char *what, const char *const *allowed) {
  if (map == NULL || map->kind != VAB_NODE_MAP)
    return 0;
  int r = 0;
  for (size_t i = 0; i < map->n; i++) {
    bool known = false;
    for (size_t j = 0; allowed[j] != NULL && !known; j++)
      known = strcmp(map->keys[i], allowed[j]) == 0;
    if (known)
      continue;
    r = vab_error_at(ctx, VAB_E_SCHEMA, &map->key_marks[i],
                     "unknown key '%.200s' in %s", map->keys[i], what);
    hint_one_of(ctx, map->keys[i], allowed);
  }
  return r;
}

char *vab_path_resolve(const char *dir, const char *path) {
  char *out = NULL;
  if (path[0] == '/')
    return strdup(path);
  while (path[0] == '.' && path[1] == '/')
    path += 2;
  if (asprintf(&out, "%s/%s", strcmp(dir, "/") == 0 ? "" : dir, path) < 0)
    return NULL;
  return out;
}
