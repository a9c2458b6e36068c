/* One template file -> libyaml events -> a node tree with marks.
 *
 * The event API (not libyaml's document API) is used so that the loader
 * sees every node as it is made: it caps nesting depth and the number of
 * nodes (aliases counted in full, which defuses "billion laughs"), and it
 * reports duplicate keys, which libyaml accepts silently.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "common/io.h"
#include "common/vector.h"
#include "templates/template-private.h"

struct anchor {
  char *name;
  struct vab_node *node;
  size_t count;
};
DEFINE_VECTOR_TYPE(anchor_list, struct anchor);

struct parse_state {
  struct loader *l;
  struct tpl_file *file;
  yaml_parser_t parser;
  /* Anchors by name: an open-addressing hash table, so that a file with
   * many anchors and aliases stays linear. */
  struct anchor_list anchors;
  size_t *slots;      /* index + 1 into anchors, 0 = empty */
  size_t n_slots;     /* a power of two, at least twice anchors.len */
  int status;   /* -1 once any error was recorded */
};

static struct vab_mark mark_of(const struct parse_state *ps,
                               const yaml_mark_t *m) {
  struct vab_mark mark = {
    .file = ps->file->path,
    .line = (uint32_t)(m->line + 1),
    .column = (uint32_t)(m->column + 1),
  };
  return mark;
}

/* Where byte offset lies, for errors libyaml reports only as an offset. */
static struct vab_mark mark_at_offset(const struct parse_state *ps,
                                      size_t offset) {
  struct vab_mark mark = {.file = ps->file->path, .line = 1, .column = 1};
  const char *data = ps->file->data;
  if (offset > ps->file->len)
    offset = ps->file->len;
  size_t line_start = 0;
  for (size_t i = 0; i < offset; i++)
    if (data[i] == '\n') {
      mark.line++;
      line_start = i + 1;
    }
  mark.column = (uint32_t)(offset - line_start + 1);
  return mark;
}

static int yaml_failure(struct parse_state *ps) {
  yaml_parser_t *p = &ps->parser;
  struct vab_ctx *ctx = ps->l->ctx;
  const char *problem = p->problem != NULL ? p->problem : "unknown error";
  ps->status = -1;
  if (p->error == YAML_MEMORY_ERROR)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory while parsing '%s'",
                     ps->file->path);
  if (p->error == YAML_READER_ERROR) {
    struct vab_mark mark = mark_at_offset(ps, p->problem_offset);
    if (strcmp(problem, "control characters are not allowed") == 0)
      return vab_error_at(ctx, VAB_E_YAML, &mark,
                          "control character 0x%02x: a template must be "
                          "UTF-8 text, not binary data",
                          (unsigned)p->problem_value & 0xffu);
    return vab_error_at(ctx, VAB_E_YAML, &mark,
                        "not valid UTF-8 (%s): a template must be UTF-8 text",
                        problem);
  }
  struct vab_mark mark = mark_of(ps, &p->problem_mark);
  size_t index = p->problem_mark.index;
  if (index < ps->file->len && ps->file->data[index] == '\t') {
    vab_error_at(ctx, VAB_E_YAML, &mark,
                 "tab character: YAML does not allow tabs for indentation");
    vab_diag_hint(ctx, "indent with spaces");
    return -1;
  }
  if (p->context != NULL) {
    vab_error_at(ctx, VAB_E_YAML, &mark, "malformed YAML: %s %s (line %u)",
                 problem, p->context,
                 (unsigned)p->context_mark.line + 1);
  } else {
    vab_error_at(ctx, VAB_E_YAML, &mark, "malformed YAML: %s", problem);
  }
  return -1;
}

static int next_event(struct parse_state *ps, yaml_event_t *ev) {
  if (!yaml_parser_parse(&ps->parser, ev))
    return yaml_failure(ps);
  return 0;
}

static int parse_node(struct parse_state *ps, yaml_event_t *ev,
                      unsigned depth, struct vab_node **out);

static bool is_null_text(const char *text) {
  return text[0] == '\0' || strcmp(text, "~") == 0 ||
         strcmp(text, "null") == 0 || strcmp(text, "Null") == 0 ||
         strcmp(text, "NULL") == 0;
}

static size_t hash_name(const char *name) {
  size_t h = 14695981039346656037ull;   /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)name; *p; p++)
    h = (h ^ *p) * 1099511628211ull;
  return h;
}

/* The slot that holds name, or the empty slot where it would go. */
static size_t *anchor_slot(const struct parse_state *ps, const char *name) {
  size_t mask = ps->n_slots - 1;
  for (size_t i = hash_name(name) & mask;; i = (i + 1) & mask) {
    size_t *slot = &ps->slots[i];
    if (*slot == 0 || strcmp(ps->anchors.ptr[*slot - 1].name, name) == 0)
      return slot;
  }
}

static int grow_slots(struct parse_state *ps) {
  size_t n_slots = ps->n_slots ? ps->n_slots * 2 : 64;
  size_t *slots = calloc(n_slots, sizeof *slots);
  if (slots == NULL)
    return -1;
  free(ps->slots);
  ps->slots = slots;
  ps->n_slots = n_slots;
  for (size_t i = 0; i < ps->anchors.len; i++)
    *anchor_slot(ps, ps->anchors.ptr[i].name) = i + 1;
  return 0;
}

static int add_anchor(struct parse_state *ps, const char *name,
                      struct vab_node *node) {
  struct vab_ctx *ctx = ps->l->ctx;
  if ((ps->anchors.len + 1) * 2 > ps->n_slots && grow_slots(ps) < 0)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  size_t *slot = anchor_slot(ps, name);
  struct anchor a = {.node = node, .count = node_count(node)};
  /* A later anchor of the same name replaces the earlier one (YAML). */
  if (*slot != 0) {
    a.name = ps->anchors.ptr[*slot - 1].name;
    ps->anchors.ptr[*slot - 1] = a;
    return 0;
  }
  a.name = strdup(name);
  if (a.name == NULL || anchor_list_append(&ps->anchors, a) < 0) {
    free(a.name);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  *slot = ps->anchors.len;
  return 0;
}

static int parse_alias(struct parse_state *ps, yaml_event_t *ev,
                       struct vab_node **out) {
  const char *name = (const char *)ev->data.alias.anchor;
  struct vab_mark mark = mark_of(ps, &ev->start_mark);
  size_t *slot = ps->n_slots ? anchor_slot(ps, name) : NULL;
  if (slot == NULL || *slot == 0)
    return vab_error_at(ps->l->ctx, VAB_E_YAML, &mark,
                        "alias '*%s' refers to no anchor defined before it",
                        name);
  const struct anchor *a = &ps->anchors.ptr[*slot - 1];
  /* The alias shares the anchored tree, but everything after this step
   * walks it once per use: count it that often. */
  if (a->count > VAB_TEMPLATE_MAX_NODES - ps->l->nodes) {
    ps->l->nodes = VAB_TEMPLATE_MAX_NODES;
    return vab_error_at(ps->l->ctx, VAB_E_SCHEMA, &mark,
                        "template too large: more than %d values (aliases "
                        "count each time they are used)",
                        VAB_TEMPLATE_MAX_NODES);
  }
  ps->l->nodes += a->count;
  *out = a->node;
  return 0;
}

static int parse_scalar(struct parse_state *ps, yaml_event_t *ev,
                        struct vab_node **out) {
  struct vab_mark mark = mark_of(ps, &ev->start_mark);
  const char *text = (const char *)ev->data.scalar.value;
  bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
  struct vab_node *n;
  if (plain && is_null_text(text)) {
    n = node_new(ps->l, VAB_NODE_NULL, &mark);
  } else {
    if (strlen(text) != ev->data.scalar.length)
      return vab_error_at(ps->l->ctx, VAB_E_YAML, &mark,
                          "a value contains a NUL character");
    n = node_scalar(ps->l, text, &mark);
    if (n != NULL)
      n->quoted = !plain;
  }
  if (n == NULL)
    return -1;
  *out = n;
  return 0;
}

/* Key indexes sorted by key, to find duplicates in O(n log n). */
static int compare_keys(const void *a, const void *b, void *opaque) {
  const struct vab_node *map = opaque;
  size_t i = *(const size_t *)a, j = *(const size_t *)b;
  int c = strcmp(map->keys[i], map->keys[j]);
  if (c != 0)
    return c;
  return i < j ? -1 : i > j;
}

static int check_duplicates(struct parse_state *ps, const struct vab_node *map) {
  if (map->n < 2)
    return 0;
  size_t *order = malloc(map->n * sizeof *order);
  if (order == NULL)
    return vab_error(ps->l->ctx, VAB_E_NOMEM, "out of memory");
  for (size_t i = 0; i < map->n; i++)
    order[i] = i;
  qsort_r(order, map->n, sizeof *order, compare_keys, (void *)map);
  int r = 0;
  for (size_t i = 1; i < map->n; i++) {
    size_t first = order[i - 1], dup = order[i];
    if (strcmp(map->keys[first], map->keys[dup]) != 0)
      continue;
    /* Report each repeat against the first occurrence. */
    size_t k = i - 1;
    while (k > 0 && strcmp(map->keys[order[k - 1]], map->keys[dup]) == 0)
      k--;
    first = order[k];
    r = vab_error_at(ps->l->ctx, VAB_E_YAML, &map->key_marks[dup],
                     "duplicate key '%s'", map->keys[dup]);
    vab_note_at(ps->l->ctx, &map->key_marks[first],
                "'%s' was first set here", map->keys[first]);
  }
  free(order);
  if (r < 0)
    ps->status = -1;
  return 0;
}

static int parse_mapping(struct parse_state *ps, yaml_event_t *start,
                         unsigned depth, struct vab_node **out) {
  struct vab_mark mark = mark_of(ps, &start->start_mark);
  struct vab_node *map = node_new(ps->l, VAB_NODE_MAP, &mark);
  if (map == NULL)
    return -1;
  for (;;) {
    yaml_event_t key;
    if (next_event(ps, &key) < 0)
      return -1;
    if (key.type == YAML_MAPPING_END_EVENT) {
      yaml_event_delete(&key);
      break;
    }
    struct vab_mark key_mark = mark_of(ps, &key.start_mark);
    if (key.type != YAML_SCALAR_EVENT) {
      yaml_event_delete(&key);
      return vab_error_at(ps->l->ctx, VAB_E_YAML, &key_mark,
                          "a key must be a plain string, not a list, "
                          "mapping or alias");
    }
    if (strlen((const char *)key.data.scalar.value) != key.data.scalar.length) {
      yaml_event_delete(&key);
      return vab_error_at(ps->l->ctx, VAB_E_YAML, &key_mark,
                          "a key contains a NUL character");
    }
    char *key_text = strdup((const char *)key.data.scalar.value);
    yaml_event_delete(&key);
    if (key_text == NULL)
      return vab_error(ps->l->ctx, VAB_E_NOMEM, "out of memory");
    yaml_event_t value_event;
    struct vab_node *value = NULL;
    if (next_event(ps, &value_event) < 0 ||
        parse_node(ps, &value_event, depth + 1, &value) < 0 ||
        node_map_add(ps->l, map, key_text, &key_mark, value) < 0) {
      free(key_text);
      return -1;
    }
    free(key_text);
  }
  if (check_duplicates(ps, map) < 0)
    return -1;
  *out = map;
  return 0;
}

static int parse_sequence(struct parse_state *ps, yaml_event_t *start,
                          unsigned depth, struct vab_node **out) {
  struct vab_mark mark = mark_of(ps, &start->start_mark);
  struct vab_node *seq = node_new(ps->l, VAB_NODE_SEQ, &mark);
  if (seq == NULL)
    return -1;
  for (;;) {
    yaml_event_t ev;
    if (next_event(ps, &ev) < 0)
      return -1;
    if (ev.type == YAML_SEQUENCE_END_EVENT) {
      yaml_event_delete(&ev);
      break;
    }
    struct vab_node *item = NULL;
    if (parse_node(ps, &ev, depth + 1, &item) < 0 ||
        node_seq_add(ps->l, seq, item) < 0)
      return -1;
  }
  *out = seq;
  return 0;
}

/* Consumes ev (deletes it) whatever happens. */
static int parse_node(struct parse_state *ps, yaml_event_t *ev,
                      unsigned depth, struct vab_node **out) {
  int r;
  const char *anchor = NULL;
  if (depth > VAB_TEMPLATE_MAX_DEPTH) {
    struct vab_mark mark = mark_of(ps, &ev->start_mark);
    yaml_event_delete(ev);
    return vab_error_at(ps->l->ctx, VAB_E_YAML, &mark,
                        "nested too deeply: more than %d levels",
                        VAB_TEMPLATE_MAX_DEPTH);
  }
  switch (ev->type) {
  case YAML_SCALAR_EVENT:
    anchor = (const char *)ev->data.scalar.anchor;
    r = parse_scalar(ps, ev, out);
    break;
  case YAML_SEQUENCE_START_EVENT:
    anchor = (const char *)ev->data.sequence_start.anchor;
    r = parse_sequence(ps, ev, depth, out);
    break;
  case YAML_MAPPING_START_EVENT:
    anchor = (const char *)ev->data.mapping_start.anchor;
    r = parse_mapping(ps, ev, depth, out);
    break;
  case YAML_ALIAS_EVENT:
    r = parse_alias(ps, ev, out);
    break;
  default: {
    struct vab_mark mark = mark_of(ps, &ev->start_mark);
    r = vab_error_at(ps->l->ctx, VAB_E_INTERNAL, &mark,
                     "unexpected YAML event %d", (int)ev->type);
    break;
  }
  }
  if (r == 0 && anchor != NULL)
    r = add_anchor(ps, anchor, *out);
  yaml_event_delete(ev);
  return r;
}

static int parse_stream(struct parse_state *ps, struct vab_node **root) {
  yaml_event_t ev;
  struct vab_mark start = {.file = ps->file->path, .line = 1, .column = 1};
  if (next_event(ps, &ev) < 0)
    return -1;
  yaml_event_delete(&ev);   /* STREAM-START */
  if (next_event(ps, &ev) < 0)
    return -1;
  if (ev.type == YAML_STREAM_END_EVENT) {
    yaml_event_delete(&ev);
    *root = node_new(ps->l, VAB_NODE_NULL, &start);
    return *root != NULL ? 0 : -1;
  }
  yaml_event_delete(&ev);   /* DOCUMENT-START */
  if (next_event(ps, &ev) < 0 || parse_node(ps, &ev, 1, root) < 0)
    return -1;
  if (next_event(ps, &ev) < 0)
    return -1;
  yaml_event_delete(&ev);   /* DOCUMENT-END */
  if (next_event(ps, &ev) < 0)
    return -1;
  if (ev.type != YAML_STREAM_END_EVENT) {
    struct vab_mark mark = mark_of(ps, &ev.start_mark);
    yaml_event_delete(&ev);
    return vab_error_at(ps->l->ctx, VAB_E_YAML, &mark,
                        "a second YAML document: a template is one "
                        "document");
  }
  yaml_event_delete(&ev);
  return 0;
}

/* Reads a regular file of at most VAB_TEMPLATE_MAX_BYTES into the arena.
 * O_NONBLOCK keeps a FIFO from hanging the open. */
static int read_template(struct loader *l, const char *path, char **data,
                         size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0)
    return vab_error_errno(l->ctx, VAB_E_IO, errno,
                           "cannot open template '%s'", path);
  struct stat st;
  if (fstat(fd, &st) < 0) {
    int e = errno;
    close(fd);
    return vab_error_errno(l->ctx, VAB_E_IO, e, "cannot read '%s'", path);
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    return vab_error(l->ctx, VAB_E_IO,
                     "'%s' is a directory, not a template file", path);
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return vab_error(l->ctx, VAB_E_IO,
                     "'%s' is not a regular file, so it cannot be a template",
                     path);
  }
  if ((uint64_t)st.st_size > VAB_TEMPLATE_MAX_BYTES) {
    close(fd);
    return vab_error(l->ctx, VAB_E_IO,
                     "'%s' is too large for a template: %lld bytes, at most "
                     "%u (4 MiB)",
                     path, (long long)st.st_size, VAB_TEMPLATE_MAX_BYTES);
  }
  size_t size = (size_t)st.st_size;
  char *buf = arena_alloc(l->arena, size + 1);
  if (buf == NULL) {
    close(fd);
    return vab_error(l->ctx, VAB_E_NOMEM, "out of memory");
  }
  ssize_t n = read_full(fd, buf, size);
  if (n < 0) {
    int e = errno;
    close(fd);
    return vab_error_errno(l->ctx, VAB_E_IO, e, "cannot read '%s'", path);
  }
  size_t got = (size_t)n;
  close(fd);
  buf[got] = '\0';
  *data = buf;
  *len = got;
  return 0;
}

int tpl_parse_file(struct loader *l, const char *display, const char *dir,
                   const char *data, size_t len, struct tpl_file **file_out,
                   struct vab_node **root) {
  struct tpl_file *file = arena_alloc(l->arena, sizeof *file);
  if (file == NULL)
    return vab_error(l->ctx, VAB_E_NOMEM, "out of memory");
  file->path = arena_strdup(l->arena, display);
  if (file->path == NULL)
    return vab_error(l->ctx, VAB_E_NOMEM, "out of memory");

  if (data != NULL) {
    if (len > VAB_TEMPLATE_MAX_BYTES)
      return vab_error(l->ctx, VAB_E_IO,
                       "'%s' is too large for a template: %zu bytes, at most "
                       "%u (4 MiB)",
                       display, len, VAB_TEMPLATE_MAX_BYTES);
    char *copy = arena_strndup(l->arena, data, len);
    if (copy == NULL)
      return vab_error(l->ctx, VAB_E_NOMEM, "out of memory");
    file->data = copy;
    file->len = len;
    file->real = file->path;
    file->dir = arena_strdup(l->arena, dir != NULL ? dir : ".");
  } else {
    char *buf = NULL;
    if (read_template(l, display, &buf, &file->len) < 0)
      return -1;
    file->data = buf;
    char *real = realpath(display, NULL);
    if (real == NULL)
      return vab_error_errno(l->ctx, VAB_E_IO, errno,
                             "cannot resolve the path of '%s'", display);
    file->real = arena_strdup(l->arena, real);
    file->dir = arena_strdup(l->arena, dirname(real));
    free(real);
  }
  if (file->real == NULL || file->dir == NULL)
    return vab_error(l->ctx, VAB_E_NOMEM, "out of memory");
  file->next = l->files;
  l->files = file;
  *file_out = file;

  struct parse_state ps = {.l = l, .file = file};
  if (!yaml_parser_initialize(&ps.parser))
    return vab_error(l->ctx, VAB_E_NOMEM, "out of memory");
  yaml_parser_set_input_string(&ps.parser, (const unsigned char *)file->data,
                               file->len);
  yaml_parser_set_encoding(&ps.parser, YAML_UTF8_ENCODING);
  int r = parse_stream(&ps, root);
  yaml_parser_delete(&ps.parser);
  for (size_t i = 0; i < ps.anchors.len; i++)
    free(ps.anchors.ptr[i].name);
  anchor_list_reset(&ps.anchors);
  free(ps.slots);
  return r < 0 || ps.status < 0 ? -1 : 0;
}
