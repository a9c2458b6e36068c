/* Canonical YAML: a node tree printed through libyaml's emitter, block
 * style, keys in tree order.  Printing, loading and printing again gives
 * the same bytes. */
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/buf.h"
#include "templates/template-private.h"

static int write_to_buf(void *data, unsigned char *bytes, size_t size) {
  return buf_append(data, bytes, size) == 0;
}

/* Expanded text that holds "${" must be written "$${" so that loading the
 * output does not expand it a second time. */
static char *escape_refs(const char *text) {
  struct buf b = BUF_INIT;
  for (const char *p = text; *p; p++) {
    if (p[0] == '$' && p[1] == '{' && buf_putc(&b, '$') < 0)
      break;
    if (buf_putc(&b, *p) < 0)
      break;
  }
  if (b.data == NULL)
    buf_puts(&b, "");
  return buf_detach(&b);
}

static int emit_scalar(yaml_emitter_t *e, const char *text, bool quote,
                       bool escape) {
  yaml_event_t ev;
  char *owned = NULL;
  if (escape && strstr(text, "${") != NULL) {
    owned = escape_refs(text);
    if (owned == NULL)
      return -1;
    text = owned;
  }
  /* A quoted string that other YAML readers would take for a null, a
   * boolean or a number keeps its quotes. */
  char *end = NULL;
  strtod(text, &end);
  bool looks_typed = text[0] == '\0' || strcmp(text, "~") == 0 ||
                     strcmp(text, "null") == 0 || strcmp(text, "Null") == 0 ||
                     strcmp(text, "NULL") == 0 ||
                     node_is_bool_text(text, NULL) || *end == '\0';
  yaml_scalar_style_t style = quote && looks_typed
                                  ? YAML_DOUBLE_QUOTED_SCALAR_STYLE
                                  : YAML_ANY_SCALAR_STYLE;
  int ok = yaml_scalar_event_initialize(&ev, NULL, NULL,
                                        (yaml_char_t *)text,
                                        (int)strlen(text), 1, 1, style) &&
           yaml_emitter_emit(e, &ev);
  free(owned);
  return ok ? 0 : -1;
}

/* What --print shows instead of a plain password (users provisioner). */
#define HIDDEN_SECRET "********"

static int emit_node(yaml_emitter_t *e, const struct vab_node *node,
                     bool top, bool escape, bool hide_secrets) {
  yaml_event_t ev;
  switch (node->kind) {
  case VAB_NODE_NULL:
    if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)"null",
                                      4, 1, 1, YAML_PLAIN_SCALAR_STYLE) ||
        !yaml_emitter_emit(e, &ev))
      return -1;
    return 0;
  case VAB_NODE_SCALAR:
    /* For people, a value from the environment stays as written: it may
     * be a secret, and loading the output reads the environment again. */
    if (hide_secrets && node->shown != NULL)
      return emit_scalar(e, node->shown, node->quoted, false);
    return emit_scalar(e, node->scalar, node->quoted, escape);
  case VAB_NODE_SEQ:
    if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                              YAML_BLOCK_SEQUENCE_STYLE) ||
        !yaml_emitter_emit(e, &ev))
      return -1;
    for (size_t i = 0; i < node->n; i++)
      if (emit_node(e, node->items[i], false, escape, hide_secrets) < 0)
        return -1;
    if (!yaml_sequence_end_event_initialize(&ev) || !yaml_emitter_emit(e, &ev))
      return -1;
    return 0;
  case VAB_NODE_MAP:
    if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                             YAML_BLOCK_MAPPING_STYLE) ||
        !yaml_emitter_emit(e, &ev))
      return -1;
    for (size_t i = 0; i < node->n; i++) {
      /* Variable values are literal: they are never expanded. */
      bool literal = top && strcmp(node->keys[i], "variables") == 0;
      if (emit_scalar(e, node->keys[i], false, false) < 0)
        return -1;
      if (hide_secrets && strcmp(node->keys[i], "password") == 0 &&
          node->items[i]->kind == VAB_NODE_SCALAR) {
        if (emit_scalar(e, HIDDEN_SECRET, true, false) < 0)
          return -1;
        continue;
      }
      if (emit_node(e, node->items[i], false, escape && !literal,
                    hide_secrets) < 0)
        return -1;
    }
    if (!yaml_mapping_end_event_initialize(&ev) || !yaml_emitter_emit(e, &ev))
      return -1;
    return 0;
  }
  return -1;
}

static char *emit(struct vab_ctx *ctx, const struct vab_node *node, bool top,
                  bool hide_secrets) {
  yaml_emitter_t e;
  yaml_event_t ev;
  struct buf out = BUF_INIT;
  if (!yaml_emitter_initialize(&e)) {
    vab_error(ctx, VAB_E_NOMEM, "out of memory");
    return NULL;
  }
  yaml_emitter_set_output(&e, write_to_buf, &out);
  yaml_emitter_set_unicode(&e, 1);
  yaml_emitter_set_width(&e, -1);
  yaml_emitter_set_indent(&e, 2);
  int ok = yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) &&
           yaml_emitter_emit(&e, &ev) &&
           yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) &&
           yaml_emitter_emit(&e, &ev) && emit_node(&e, node, top, true, hide_secrets) == 0 &&
           yaml_document_end_event_initialize(&ev, 1) &&
           yaml_emitter_emit(&e, &ev) && yaml_stream_end_event_initialize(&ev) &&
           yaml_emitter_emit(&e, &ev) && yaml_emitter_flush(&e);
  if (!ok) {
    vab_error(ctx, VAB_E_INTERNAL, "cannot write YAML: %s",
              e.problem ? e.problem : "out of memory");
    yaml_emitter_delete(&e);
    buf_release(&out);
    return NULL;
  }
  yaml_emitter_delete(&e);
  if (out.data == NULL && buf_puts(&out, "") < 0) {
    vab_error(ctx, VAB_E_NOMEM, "out of memory");
    return NULL;
  }
  return buf_detach(&out);
}

/* The whole template, for people (--print) and the template digest: a
 * plain password is hidden, values from the environment are shown as
 * written. */
char *tpl_emit(struct vab_ctx *ctx, const struct vab_node *node) {
  return emit(ctx, node, true, true);
}

/* A subtree, for step keys: everything, so a new password makes a new key. */
char *vab_node_to_yaml(struct vab_ctx *ctx, const struct vab_node *node) {
  return emit(ctx, node, false, false);
}

char *vab_template_to_yaml(struct vab_ctx *ctx, const struct vab_template *t) {
  return tpl_emit(ctx, t->root);
}
