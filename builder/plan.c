/* The build plan and its step keys.
 *
 * Steps run in this order, each chained to the one before it:
 *
 *   source -> layout -> provision 1..n -> sysprep -> test 1..m
 *
 * and every export's parent is the last of those (the disk it exports), so
 * adding or changing one output leaves the other outputs' keys alone.
 *
 * A key is the SHA-256 of a framed record, so that no two different inputs
 * can run together into the same bytes:
 *
 *   "vab-plan-1", parent key, kind, canonical YAML of the step's spec,
 *   then for every host file the step reads: its path and its bytes,
 *   and for a bootstrap: "vab-bootstrap-1" and the packages vab adds;
 *   for the layout: SOURCE_DATE_EPOCH's value ("" when unset)
 *
 * where each field is a 64-bit little-endian length followed by the bytes.
 * Paths under the template's folder are hashed relative to it, so a clone
 * of the same project elsewhere gets the same keys. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "builder/plan.h"
#include "builder/source.h"
#include "common/buf.h"
#include "common/cleanup.h"
#include "common/io.h"
#include "signing/digest.h"
#include "vab/progress.h"
#include "vab/step.h"

#define PLAN_KEY_VERSION "vab-plan-1"
#define PLAN_READ_BUFFER (256u * 1024)

const char *vab_plan_kind_name(enum vab_plan_kind kind) {
  switch (kind) {
  case VAB_PLAN_SOURCE:
    return "source";
  case VAB_PLAN_LAYOUT:
    return "layout";
  case VAB_PLAN_PROVISION:
    return "provision";
  case VAB_PLAN_SYSPREP:
    return "sysprep";
  case VAB_PLAN_TEST:
    return "test";
  case VAB_PLAN_EXPORT:
    return "export";
  }
  return "?";
}

static int put_length(struct vab_sha256 *h, uint64_t len) {
  uint8_t le[8];
  for (int i = 0; i < 8; i++)
    le[i] = (uint8_t)(len >> (8 * i));
  return vab_sha256_update(h, le, sizeof le);
}

static int put_field(struct vab_sha256 *h, const void *data, size_t len) {
  if (put_length(h, len) < 0)
    return -1;
  return vab_sha256_update(h, data, len);
}

static int put_string(struct vab_sha256 *h, const char *s) {
  return put_field(h, s, strlen(s));
}

/* The path as hashed: relative to the template's folder when inside it. */
static const char *key_path(const struct vab_template *t, const char *path) {
  size_t n = t->dir ? strlen(t->dir) : 0;
  if (n > 0 && strncmp(path, t->dir, n) == 0 && path[n] == '/')
    return path + n + 1;
  return path;
}

/* A file's path, then its bytes as one field (its size, then the data). */
static int put_file(struct vab_ctx *ctx, struct vab_sha256 *h,
                    const struct vab_template *t, const char *path,
                    const struct vab_mark *mark) {
  if (put_string(h, key_path(t, path)) < 0)
    return -1;
  /* A FIFO or a device named by a template must not block the plan. */
  struct stat st;
  bool not_regular;
  CLEANUP_CLOSE int fd = open_regular_file(path, &st, &not_regular);
  if (fd < 0 && not_regular)
    return vab_error_at(ctx, VAB_E_IO, mark, "'%s' is not a regular file",
                        path);
  if (fd < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot open '%s'", path);
  uint64_t size = (uint64_t)st.st_size;
  if (put_length(h, size) < 0)
    return -1;
  CLEANUP_FREE uint8_t *buf = malloc(PLAN_READ_BUFFER);
  if (buf == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  uint64_t done = 0;
  for (;;) {
    ssize_t n = read_full(fd, buf, PLAN_READ_BUFFER);
    if (n < 0)
      return vab_error_errno(ctx, VAB_E_IO, errno, "cannot read '%s'", path);
    if (n == 0)
      break;
    done += (uint64_t)n;
    if (done > size)
      break;
    if (vab_sha256_update(h, buf, (size_t)n) < 0)
      return -1;
    if (vab_progress(ctx, VAB_PHASE_PLAN, key_path(t, path), done, size) < 0)
      return -1;
  }
  if (done != size)
    return vab_error(ctx, VAB_E_IO, "'%s' changed while it was being read",
                     path);
  return 0;
}

/* The host files a provisioner step reads, from its inputs(). */
static int put_step_inputs(struct vab_ctx *ctx, struct vab_sha256 *h,
                           const struct vab_template *t,
                           const struct vab_step *step) {
  const struct vab_step_type *p = step->step_type;
  if (p->inputs == NULL)
    return 0;
  size_t n = p->inputs(step->config, NULL, 0);
  if (n == 0)
    return 0;
  CLEANUP_FREE const char **paths = calloc(n, sizeof *paths);
  if (paths == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  size_t got = p->inputs(step->config, paths, n);
  if (got != n)
    return vab_error(ctx, VAB_E_INTERNAL,
                     "step type '%s' listed %zu inputs, then %zu",
                     p->name, n, got);
  for (size_t i = 0; i < n; i++)
    if (put_file(ctx, h, t, paths[i], &step->mark) < 0)
      return -1;
  return 0;
}

/* What vab itself puts into a bootstrap (builder/source.c): changing it
 * changes the rootfs, so it changes the key. */
static int put_bootstrap_inputs(struct vab_sha256 *h) {
  if (put_string(h, "vab-bootstrap-1") < 0)
    return -1;
  for (size_t i = 0; vab_bootstrap_base_packages[i] != NULL; i++)
    if (put_string(h, vab_bootstrap_base_packages[i]) < 0)
      return -1;
  return 0;
}

/* Hash one step.  specs are the YAML subtrees the step depends on, in a
 * fixed order; NULL entries hash as empty. */
static int step_key(struct vab_ctx *ctx, const struct vab_template *t,
                    struct vab_plan_step *s,
                    const struct vab_node *const *specs, size_t n_specs) {
  struct vab_sha256 *h = vab_sha256_new(ctx);
  if (h == NULL)
    return -1;
  int r = -1;
  if (put_string(h, PLAN_KEY_VERSION) < 0 ||
      put_string(h, s->parent_key) < 0 ||
      put_string(h, vab_plan_kind_name(s->kind)) < 0)
    goto out;
  for (size_t i = 0; i < n_specs; i++) {
    if (specs[i] == NULL) {
      if (put_string(h, "") < 0)
        goto out;
      continue;
    }
    char *yaml = vab_node_to_yaml(ctx, specs[i]);
    if (yaml == NULL)
      goto out;
    int pr = put_string(h, yaml);
    free(yaml);
    if (pr < 0)
      goto out;
  }
  /* SOURCE_DATE_EPOCH changes how the builder VM runs and the times it
   * writes (builder/reproducible.h): every step from layout on. */
  if (s->kind == VAB_PLAN_LAYOUT) {
    const char *epoch = getenv("SOURCE_DATE_EPOCH");
    if (put_string(h, epoch != NULL ? epoch : "") < 0)
      goto out;
  }
  if (s->kind == VAB_PLAN_SOURCE && t->source.kind == VAB_SOURCE_BOOTSTRAP &&
      put_bootstrap_inputs(h) < 0)
    goto out;
  if (s->kind == VAB_PLAN_SOURCE && t->source.kind != VAB_SOURCE_BOOTSTRAP &&
      t->source.path != NULL &&
      put_file(ctx, h, t, t->source.path, &t->source.mark) < 0)
    goto out;
  if (s->kind == VAB_PLAN_PROVISION &&
      put_step_inputs(ctx, h, t, s->provision) < 0)
    goto out;
  uint8_t digest[32];
  r = vab_sha256_final(h, digest);
  h = NULL;
  if (r == 0)
    vab_hex(digest, 32, s->key);
out:
  vab_sha256_free(h);
  return r;
}

/* "provision 2/5: shell (web.yaml:14)".  A part the template did not write
 * (sysprep filled in by default) carries the document's own mark: no
 * location is better than a wrong one. */
static void set_label(struct vab_plan_step *s, const struct vab_node *root,
                      const char *what) {
  snprintf(s->name, sizeof s->name, "%s", what);
  bool defaulted = root != NULL && s->kind != VAB_PLAN_SOURCE &&
                   s->mark.line == root->mark.line &&
                   s->mark.column == root->mark.column;
  if (s->mark.file != NULL && s->mark.line > 0 && !defaulted)
    snprintf(s->label, sizeof s->label, "%s (%s:%u)", what,
             path_base_name(s->mark.file), s->mark.line);
  else
    snprintf(s->label, sizeof s->label, "%s", what);
}

static const struct vab_node *seq_item(const struct vab_node *seq, size_t i) {
  if (seq == NULL || seq->kind != VAB_NODE_SEQ || i >= seq->n)
    return NULL;
  return seq->items[i];
}

static const char *source_kind_name(enum vab_source_kind kind) {
  switch (kind) {
  case VAB_SOURCE_BOOTSTRAP:
    return "bootstrap";
  case VAB_SOURCE_ROOTFS:
    return "rootfs";
  case VAB_SOURCE_IMAGE:
    return "image";
  }
  return "?";
}

int vab_plan_build(struct vab_ctx *ctx, const struct vab_template *t,
                   struct vab_plan *plan) {
  plan->steps = NULL;
  plan->n_steps = 0;
  const struct vab_node *root = t->root;
  size_t total = 3 + t->n_steps + t->n_tests + t->n_outputs;
  struct vab_plan_step *steps = calloc(total, sizeof *steps);
  if (steps == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  size_t n = 0;
  char what[128];
  const char *parent = "";

#define NEXT_STEP(k, m)                                            \
  struct vab_plan_step *s = &steps[n++];                           \
  s->kind = (k);                                                   \
  s->mark = (m);                                                   \
  snprintf(s->parent_key, sizeof s->parent_key, "%s", parent)

  {
    NEXT_STEP(VAB_PLAN_SOURCE, t->source.mark);
    if (t->source.kind == VAB_SOURCE_BOOTSTRAP)
      snprintf(what, sizeof what, "source: bootstrap %s %s",
               t->source.distro ? t->source.distro : "",
               t->source.suite ? t->source.suite : "");
    else
      snprintf(what, sizeof what, "source: %s %s",
               source_kind_name(t->source.kind),
               t->source.path ? path_base_name(t->source.path) : "");
    set_label(s, root, what);
    const struct vab_node *specs[] = {vab_node_get(root, "source")};
    if (step_key(ctx, t, s, specs, 1) < 0)
      goto fail;
    parent = s->key;
  }
  {
    NEXT_STEP(VAB_PLAN_LAYOUT, t->disk.mark);
    set_label(s, root, "layout");
    const struct vab_node *specs[] = {vab_node_get(root, "disk")};
    if (step_key(ctx, t, s, specs, 1) < 0)
      goto fail;
    parent = s->key;
  }
  const struct vab_node *prov_seq = vab_node_get(root, "provisioners");
  for (size_t i = 0; i < t->n_steps; i++) {
    const struct vab_step *step = &t->steps[i];
    NEXT_STEP(VAB_PLAN_PROVISION, step->mark);
    s->provision = step;
    snprintf(what, sizeof what, "provision %zu/%zu: %s", i + 1, t->n_steps,
             step->type);
    set_label(s, root, what);
    /* step->spec is the expanded mapping; the tree's item is the same. */
    const struct vab_node *spec = step->spec ? step->spec
                                             : seq_item(prov_seq, i);
    const struct vab_node *specs[] = {spec};
    if (step_key(ctx, t, s, specs, 1) < 0)
      goto fail;
    parent = s->key;
  }
  {
    NEXT_STEP(VAB_PLAN_SYSPREP, t->sysprep.mark);
    set_label(s, root, t->sysprep.enabled ? "sysprep" : "sysprep (off)");
    const struct vab_node *specs[] = {vab_node_get(root, "sysprep")};
    if (step_key(ctx, t, s, specs, 1) < 0)
      goto fail;
    parent = s->key;
  }
  /* A test boots with the template's hardware: it is part of the spec. */
  const struct vab_node *tests_seq = vab_node_get(root, "tests");
  for (size_t i = 0; i < t->n_tests; i++) {
    NEXT_STEP(VAB_PLAN_TEST, t->tests[i].mark);
    s->test = &t->tests[i];
    snprintf(what, sizeof what, "test %zu/%zu: boot", i + 1, t->n_tests);
    set_label(s, root, what);
    const struct vab_node *specs[] = {seq_item(tests_seq, i),
                                      vab_node_get(root, "hardware")};
    if (step_key(ctx, t, s, specs, 2) < 0)
      goto fail;
    parent = s->key;
  }
  /* Outputs name their files after the template and describe its
   * hardware (OVF): those are part of each export's spec. */
  const struct vab_node *outputs_seq = vab_node_get(root, "outputs");
  for (size_t i = 0; i < t->n_outputs; i++) {
    const struct vab_output_spec *o = &t->outputs[i];
    NEXT_STEP(VAB_PLAN_EXPORT, o->mark);
    s->output = o;
    snprintf(what, sizeof what, "export %zu/%zu: %s%s%s", i + 1,
             t->n_outputs, o->format, o->target ? " " : "",
             o->target ? o->target : "");
    set_label(s, root, what);
    const struct vab_node *specs[] = {seq_item(outputs_seq, i),
                                      vab_node_get(root, "name"),
                                      vab_node_get(root, "version"),
                                      vab_node_get(root, "hardware")};
    if (step_key(ctx, t, s, specs, 4) < 0)
      goto fail;
  }
#undef NEXT_STEP

  plan->steps = steps;
  plan->n_steps = n;
  return 0;
fail:
  free(steps);
  return -1;
}

void vab_plan_release(struct vab_plan *plan) {
  free(plan->steps);
  plan->steps = NULL;
  plan->n_steps = 0;
}
