/* vab: templates.
 *
 * vab_template_load() reads a YAML template, follows `extends`, resolves
 * variables, fills defaults and checks the schema (including each
 * provisioner's own config), and returns one immutable struct vab_template.
 * Every value keeps the mark (file:line:column) it was written at, so later
 * stages can point at the template when something fails.
 *
 * The vocabularies that other layers own (output formats and their
 * options, the OCI reference grammar, the sysprep operations, the step
 * types' schema halves of vab/step.h) are not copied here: the caller
 * hands them in through struct vab_load_opts (builder/vocab.h assembles
 * them), so that what the schema accepts is exactly what the owners
 * accept.  So templates/ includes and links only common/, core/ and
 * libyaml (scripts/check-layers.sh keeps it so).
 *
 * templates/ is the only user of libyaml.
 */
#ifndef VAB_TEMPLATE_H
#define VAB_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vab/error.h"
#include "vab/option.h"

/* The generic tree a template is loaded into, after expansion. */
enum vab_node_kind {
  VAB_NODE_NULL,
  VAB_NODE_SCALAR,
  VAB_NODE_SEQ,
  VAB_NODE_MAP,
};

struct vab_node {
  enum vab_node_kind kind;
  struct vab_mark mark;
  char *scalar;               /* VAB_NODE_SCALAR: UTF-8, NUL-terminated */
  bool quoted;                /* scalar was quoted in the source */
  size_t n;                   /* items in a seq, pairs in a map */
  struct vab_node **items;    /* seq items, or map values */
  char **keys;                /* map keys (n of them) */
  struct vab_mark *key_marks; /* map key marks */
  /* VAB_NODE_SCALAR whose value came (wholly or partly) from the
   * environment: the text as written ("${env:TOKEN}", "a-${env:X}"),
   * which diagnostics and --print show instead of the value.  NULL
   * otherwise. */
  const char *shown;
};

/* Map lookup; NULL if absent or node is not a map. */
const struct vab_node *vab_node_get(const struct vab_node *map,
                                    const char *key);
/* Where a map key was written, or the map's own mark if absent. */
const struct vab_mark *vab_node_key_mark(const struct vab_node *map,
                                         const char *key);

/* Typed field readers for provisioners and the schema.  Each records an
 * error at the node's mark and returns -1 when the value has the wrong
 * type; an absent node leaves *out untouched and returns 0. */
int vab_node_string(struct vab_ctx *ctx, const struct vab_node *node,
                    const char *what, const char **out);
int vab_node_bool(struct vab_ctx *ctx, const struct vab_node *node,
                  const char *what, bool *out);
int vab_node_uint(struct vab_ctx *ctx, const struct vab_node *node,
                  const char *what, uint64_t max, uint64_t *out);
/* "512M", "4G", "4GiB", "1048576" */
int vab_node_size(struct vab_ctx *ctx, const struct vab_node *node,
                  const char *what, uint64_t *out);
/* "90s", "5m", "300" (seconds) -> milliseconds */
int vab_node_duration(struct vab_ctx *ctx, const struct vab_node *node,
                      const char *what, uint64_t *out_ms);
/* A sequence of strings (a single string is accepted as a list of one).
 * *out is a NULL-terminated array owned by the caller (free the array,
 * not the strings, which belong to the tree). */
int vab_node_string_list(struct vab_ctx *ctx, const struct vab_node *node,
                         const char *what, const char ***out, size_t *n);
/* Reject keys of map that are not in allowed (NULL-terminated), with a
 * "did you mean" hint.  Returns -1 if any was rejected. */
int vab_node_check_keys(struct vab_ctx *ctx, const struct vab_node *map,
                        const char *what, const char *const *allowed);

/* A string that must be one of allowed (NULL-terminated); a wrong value
 * gets "did you mean" or the list of allowed values as a hint. */
int vab_node_enum(struct vab_ctx *ctx, const struct vab_node *node,
                  const char *what, const char *const *allowed,
                  const char **out);

/* The candidate closest to word by edit distance, if close enough to be a
 * likely typo; else NULL. */
const char *vab_suggest(const char *word, const char *const *candidates);

/* path if absolute, else dir/path; malloc'd, NULL when out of memory. */
char *vab_path_resolve(const char *dir, const char *path);

/* The typed template. */
enum vab_source_kind {
  VAB_SOURCE_BOOTSTRAP,
  VAB_SOURCE_ROOTFS,
  VAB_SOURCE_IMAGE,
};

struct vab_source {
  enum vab_source_kind kind;
  struct vab_mark mark;
  /* bootstrap */
  const char *distro;           /* "debian" */
  const char *suite;            /* "bookworm" */
  const char *mirror;
  const char *variant;          /* "minbase" */
  const char **packages;        /* NULL-terminated */
  size_t n_packages;
  /* rootfs and image */
  const char *path;             /* absolute (resolved against the template) */
  const char *checksum;         /* "sha256:<64 hex>", or NULL */
  const char *format;           /* image: qcow2 | raw | vmdk */
  bool trust_backing;           /* image: follow backing files anywhere */
};

enum vab_partitions { VAB_PART_GPT, VAB_PART_MBR };
enum vab_filesystem { VAB_FS_EXT4, VAB_FS_XFS };
enum vab_firmware { VAB_FW_BIOS, VAB_FW_UEFI, VAB_FW_BOTH };

struct vab_disk {
  struct vab_mark mark;
  uint64_t size;                /* bytes; default 4 GiB */
  enum vab_partitions partitions;   /* default gpt */
  enum vab_filesystem filesystem;   /* default ext4 */
  enum vab_firmware firmware;       /* default bios */
};

struct vab_hardware {
  struct vab_mark mark;
  unsigned cpus;                /* default 2 */
  uint64_t memory;              /* bytes; default 2 GiB */
  unsigned nics;                /* default 1 */
  const char *disk_bus;         /* scsi | sata | ide | virtio; default scsi */
  const char *nic_model;        /* auto | virtio | e1000 | vmxnet3 */
};

struct vab_step_type;   /* vab/step.h */

struct vab_step {
  const char *type;             /* "file", "shell"... */
  struct vab_mark mark;         /* where the step's mapping starts */
  const struct vab_node *spec;  /* the step's expanded mapping */
  const struct vab_step_type *step_type;  /* from the vocabulary */
  void *config;                 /* the step type's typed config */
  /* Runs in the booted appliance over SSH, not in the builder VM: `booted:
   * true`, or a VAB_STEP_BOOTED type.  timeout_ms bounds the step then. */
  bool booted;
  uint64_t timeout_ms;
};

struct vab_boot_test {
  struct vab_mark mark;
  uint64_t timeout_ms;          /* default 300 s */
  bool has_http;
  uint16_t http_port;
  const char *http_path;        /* default "/" */
  unsigned http_status;         /* default 200 */
  const char *http_contains;    /* or NULL */
  bool has_tcp;
  uint16_t tcp_port;
  const char *serial;           /* pattern on the serial console, or NULL */
};

struct vab_output_spec {
  struct vab_mark mark;
  const char *format;           /* a registered format or "ova", "vhdx" */
  const char *target;           /* ova: vmware | virtualbox, else NULL */
  /* Every other key, as "-o" options for the format: compression, dedup,
   * subformat, level, cluster_size... */
  struct {
    const char *key;
    const char *value;
    struct vab_mark mark;
  } *options;
  size_t n_options;
};

struct vab_sysprep {
  struct vab_mark mark;
  bool enabled;
  /* Resolved list ("default" expanded), in run order; the strings are the
   * vocabulary's own (struct vab_template_vocab.sysprep_operations). */
  const char **operations;
  size_t n_operations;
  const char **keep;            /* operations removed from the list */
  size_t n_keep;
};

struct vab_sign_spec {
  struct vab_mark mark;
  const char *key;              /* absolute path */
  const char *cert;             /* absolute path or NULL */
};

struct vab_publish_spec {
  struct vab_mark mark;
  const char *ref;
  const char **tags;
  size_t n_tags;
};

struct vab_var {
  const char *name;
  const char *value;
};

struct vab_template {
  const char *path;             /* the file given to load */
  const char *dir;              /* its folder, absolute */
  const char *name;
  const char *version;
  const char *description;      /* or NULL */
  const struct vab_var *variables;  /* after overrides */
  size_t n_variables;
  struct vab_source source;
  struct vab_disk disk;
  struct vab_hardware hardware;
  struct vab_step *steps;
  size_t n_steps;
  struct vab_sysprep sysprep;
  struct vab_boot_test *tests;
  size_t n_tests;
  struct vab_output_spec *outputs;
  size_t n_outputs;
  const struct vab_sign_spec *sign;     /* NULL if absent */
  struct vab_publish_spec *publish;
  size_t n_publish;
  const struct vab_node *root;  /* the expanded tree, defaults filled */
  void *priv;                   /* the loader's arena */
};

/* What the layers below define and the schema checks against. */
struct vab_template_vocab {
  /* Output formats, NULL-terminated, in the order errors list them. */
  const char *const *output_formats;
  /* The keys an output of format may have besides `format`, in canonical
   * order (key NULL ends it). */
  const struct vab_option_spec *(*output_options)(const char *format);
  /* One option value alone (kind, range, shape), so that each wrong value
   * is reported: 0, or -1 with *problem filled.  Pure. */
  int (*check_value)(const char *format, const struct vab_option *option,
                     struct vab_option_problem *problem);
  /* One output's options (values as text) checked as the export will
   * check them, combinations included: 0, or -1 with *problem.  Pure. */
  int (*check_output)(const char *format, const struct vab_option *options,
                      size_t n, struct vab_option_problem *problem);
  /* A publish reference: 0, or -1 with the reason in why.  Pure. */
  int (*check_ref)(const char *ref, char *why, size_t why_len);
  /* Sysprep operations in run order, NULL-terminated ("default" = all). */
  const char *const *sysprep_operations;
  /* The step types `provisioners:` may use (their schema halves),
   * NULL-terminated, in the order errors list them. */
  const struct vab_step_type *const *step_types;
};

struct vab_load_opts {
  const struct vab_var *vars;   /* --var overrides */
  size_t n_vars;
  bool use_environment;         /* VAB_VAR_name and ${env:NAME}; default on */
  /* Required, with its step_types: without them every load fails
   * (VAB_E_INTERNAL). */
  const struct vab_template_vocab *vocab;
};

/* Load, expand and check.  opts is required (for its vocab).  On failure every problem found is on ctx
 * (up to VAB_DIAG_MAX) and *out is NULL. */
int vab_template_load(struct vab_ctx *ctx, const char *path,
                      const struct vab_load_opts *opts,
                      struct vab_template **out);
/* The same for a template held in memory (the fuzzer's entry point).
 * display_path names it in diagnostics; dir resolves relative paths and
 * `extends`. */
int vab_template_load_data(struct vab_ctx *ctx, const char *display_path,
                           const char *dir, const char *data, size_t len,
                           const struct vab_load_opts *opts,
                           struct vab_template **out);
void vab_template_free(struct vab_template *t);

/* Limits that keep hostile templates cheap (docs/template.md, "Limits"). */
#define VAB_TEMPLATE_MAX_BYTES (4u << 20)   /* one file */
#define VAB_TEMPLATE_MAX_DEPTH 64           /* nested collections */
#define VAB_TEMPLATE_MAX_NODES 100000       /* nodes, counting aliases */
#define VAB_TEMPLATE_MAX_EXTENDS 16         /* chain of `extends` */
#define VAB_TEMPLATE_MAX_VALUE (1u << 20)   /* one scalar after variables */

/* The canonical YAML of the expanded template (what --print shows and what
 * step keys hash).  Returns a malloc'd string or NULL with an error. */
char *vab_template_to_yaml(struct vab_ctx *ctx, const struct vab_template *t);
/* The same for any subtree (a step's spec), for hashing. */
char *vab_node_to_yaml(struct vab_ctx *ctx, const struct vab_node *node);

#endif
