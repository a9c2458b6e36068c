/* The schema of template language version 1: the expanded tree is checked
 * key by key, read into struct vab_template, and rebuilt as the canonical
 * tree (keys in the order below, defaults filled) that --print shows and
 * step keys hash. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/buf.h"
#include "common/debian.h"
#include "common/size.h"
#include "vab/step.h"
#include "templates/template-private.h"


struct schema {
  struct loader *l;
  struct vab_ctx *ctx;
  const struct vab_template_vocab *vocab;
  const char *dir;
  int status;
};

static int fail(struct schema *s) {
  s->status = -1;
  return -1;
}

static int nomem(struct schema *s) {
  vab_error(s->ctx, VAB_E_NOMEM, "out of memory");
  return fail(s);
}

static struct vab_node *new_map(struct schema *s, const struct vab_mark *mark) {
  struct vab_node *n = node_new(s->l, VAB_NODE_MAP, mark);
  if (n == NULL)
    fail(s);
  return n;
}

static struct vab_node *new_seq(struct schema *s, const struct vab_mark *mark) {
  struct vab_node *n = node_new(s->l, VAB_NODE_SEQ, mark);
  if (n == NULL)
    fail(s);
  return n;
}

static void put(struct schema *s, struct vab_node *map, const char *key,
                const struct vab_mark *key_mark, struct vab_node *value) {
  if (map != NULL && value != NULL &&
      node_map_add(s->l, map, key, key_mark, value) < 0)
    fail(s);
}

/* The value of key in map for reading, added to canon: the user's node, or
 * a default (when default_text is not NULL), or NULL.  An empty value
 * (`key:`) counts as absent. */
static const struct vab_node *field(struct schema *s, struct vab_node *canon,
                                    const struct vab_node *map,
                                    const char *key,
                                    const char *default_text) {
  const struct vab_node *value = vab_node_get(map, key);
  if (value != NULL && value->kind == VAB_NODE_NULL)
    value = NULL;
  if (value == NULL && default_text != NULL) {
    const struct vab_mark *mark = map != NULL ? &map->mark : NULL;
    struct vab_node *def = node_scalar(s->l, default_text, mark);
    if (def == NULL) {
      fail(s);
      return NULL;
    }
    value = def;
  }
  if (value != NULL)
    put(s, canon, key, vab_node_key_mark(map, key), (struct vab_node *)value);
  return value;
}

/* The folder of the file a node was written in. */
static const char *dir_of(struct schema *s, const struct vab_mark *mark) {
  for (const struct tpl_file *f = s->l->files; f != NULL; f = f->next)
    if (f->path == mark->file)
      return f->dir;
  return s->dir;
}

static size_t split_path(char *path, char **parts, size_t max) {
  size_t n = 0;
  char *save = NULL;
  for (char *p = strtok_r(path, "/", &save); p != NULL && n < max;
       p = strtok_r(NULL, "/", &save))
    parts[n++] = p;
  return n;
}

/* A relative host path written in an `extends` parent in another folder,
 * rewritten relative to the loaded template's folder, so that every path
 * of the expanded template resolves from one place. */
static struct vab_node *local_path(struct schema *s,
                                   const struct vab_node *node) {
  if (node == NULL || node->kind != VAB_NODE_SCALAR ||
      node->scalar[0] == '/' || node->scalar[0] == '\0')
    return (struct vab_node *)node;
  const char *dir = dir_of(s, &node->mark);
  if (strcmp(dir, s->dir) == 0)
    return (struct vab_node *)node;
  char *from = strdup(s->dir), *to = strdup(dir);
  char *from_parts[256], *to_parts[256];
  struct buf b = BUF_INIT;
  if (from != NULL && to != NULL) {
    size_t nf = split_path(from, from_parts, 256);
    size_t nt = split_path(to, to_parts, 256);
    size_t common = 0;
    while (common < nf && common < nt &&
           strcmp(from_parts[common], to_parts[common]) == 0)
      common++;
    for (size_t i = common; i < nf; i++)
      buf_puts(&b, "../");
    for (size_t i = common; i < nt; i++)
      buf_printf(&b, "%s/", to_parts[i]);
    const char *rest = node->scalar;
    while (rest[0] == '.' && rest[1] == '/')
      rest += 2;
    buf_puts(&b, rest);
  }
  free(from);
  free(to);
  struct vab_node *copy = NULL;
  if (b.data != NULL)
    copy = node_scalar(s->l, b.data, &node->mark);
  buf_release(&b);
  if (copy == NULL) {
    fail(s);
    return (struct vab_node *)node;
  }
  copy->quoted = node->quoted;
  copy->shown = node->shown;
  return copy;
}

/* field() for a host path. */
static const struct vab_node *path_field(struct schema *s,
                                         struct vab_node *canon,
                                         const struct vab_node *map,
                                         const char *key) {
  const struct vab_node *value = vab_node_get(map, key);
  if (value == NULL || value->kind == VAB_NODE_NULL)
    return NULL;
  value = local_path(s, value);
  put(s, canon, key, vab_node_key_mark(map, key), (struct vab_node *)value);
  return value;
}

static void check(struct schema *s, int r) {
  if (r < 0)
    fail(s);
}

/* A section must be a mapping; NULL if absent, empty or wrong. */
static const struct vab_node *section(struct schema *s,
                                      const struct vab_node *node,
                                      const char *what) {
  if (node == NULL || node->kind == VAB_NODE_NULL)
    return NULL;
  if (node->kind != VAB_NODE_MAP) {
    vab_error_at(s->ctx, VAB_E_SCHEMA, &node->mark,
                 "'%.200s' must be a mapping, not %s", what, node_kind_name(node));
    fail(s);
    return NULL;
  }
  return node;
}

static void missing(struct schema *s, const struct vab_node *map,
                    const char *key, const char *what, const char *example) {
  vab_error_at(s->ctx, VAB_E_SCHEMA, &map->mark, "%s needs '%.200s'", what, key);
  if (example != NULL)
    vab_diag_hint(s->ctx, "for example: %s", example);
  fail(s);
}

static const char *resolve(struct schema *s, const char *path) {
  char *abs = vab_path_resolve(s->dir, path);
  if (abs == NULL) {
    nomem(s);
    return NULL;
  }
  const char *copy = arena_strdup(s->l->arena, abs);
  free(abs);
  if (copy == NULL)
    nomem(s);
  return copy;
}

/* Regular-expression-like checks, written out. */

static bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* [a-z0-9][a-z0-9._-]*, at most 64: safe inside any file name, so a name
 * can never lead an artifact out of the output folder. */
static bool valid_name(const char *s) {
  size_t len = strlen(s);
  if (len == 0 || len > 64 || !is_lower_alnum(s[0]))
    return false;
  for (size_t i = 1; i < len; i++)
    if (!is_lower_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
      return false;
  return strstr(s, "..") == NULL;
}

/* [A-Za-z0-9][A-Za-z0-9._+~-]*, at most 64: also part of file names. */
static bool valid_version(const char *s) {
  size_t len = strlen(s);
  if (len == 0 || len > 64 || !isalnum((unsigned char)s[0]))
    return false;
  for (size_t i = 1; i < len; i++)
    if (!isalnum((unsigned char)s[i]) && strchr("._+~-", s[i]) == NULL)
      return false;
  return strstr(s, "..") == NULL;
}

static bool valid_checksum(const char *s) {
  if (strncmp(s, "sha256:", 7) != 0 || strlen(s) != 7 + 64)
    return false;
  for (const char *p = s + 7; *p; p++)
    if (!isxdigit((unsigned char)*p))
      return false;
  return true;
}

/* The top level. */

static const char *const top_keys[] = {
  "vab", "name", "version", "description", "extends", "variables", "source",
  "disk", "hardware", "provisioners", "sysprep", "tests", "outputs", "sign",
  "publish", NULL,
};

static void read_string(struct schema *s, const struct vab_node *node,
                        const char *what, const char **out) {
  check(s, vab_node_string(s->ctx, node, what, out));
}

static void check_file(struct schema *s, const struct vab_node *node,
                       const char *what, const char *path) {
  struct stat st;
  if (path == NULL)
    return;
  if (stat(path, &st) < 0) {
    vab_error_at(s->ctx, VAB_E_IO, &node->mark, "%s '%.200s' does not exist",
                 what, node->scalar);
    fail(s);
  } else if (!S_ISREG(st.st_mode)) {
    vab_error_at(s->ctx, VAB_E_IO, &node->mark, "%s '%.200s' is not a file",
                 what, node->scalar);
    fail(s);
  }
}

static void checksum_field(struct schema *s, struct vab_node *canon,
                           const struct vab_node *map, const char *what,
                           const char **out) {
  const struct vab_node *node = field(s, canon, map, "checksum", NULL);
  read_string(s, node, what, out);
  if (*out != NULL && !valid_checksum(*out)) {
    vab_error_at(s->ctx, VAB_E_SCHEMA, &node->mark,
                 "%s must be 'sha256:' and 64 hex digits, not '%.200s'", what,
                 *out);
    vab_diag_hint(s->ctx, "get it with: sha256sum FILE");
    fail(s);
  }
}

static const char *const bootstrap_keys[] = {
  "distro", "suite", "mirror", "variant", "packages", NULL,
};
static const char *const distros[] = {"debian", "ubuntu", NULL};

static struct vab_node *source_bootstrap(struct schema *s,
                                         const struct vab_node *map,
                                         struct vab_source *src) {
  struct vab_node *canon = new_map(s, &map->mark);
  check(s, vab_node_check_keys(s->ctx, map, "source.bootstrap",
                               bootstrap_keys));
  check(s, vab_node_enum(s->ctx, field(s, canon, map, "distro", "debian"),
                         "source.bootstrap.distro", distros, &src->distro));
  bool debian = src->distro != NULL && strcmp(src->distro, "debian") == 0;
  const struct vab_node *suite =
      field(s, canon, map, "suite", debian ? "bookworm" : NULL);
  if (suite == NULL && src->distro != NULL)
    missing(s, map, "suite", "an ubuntu bootstrap", "suite: jammy");
  read_string(s, suite, "source.bootstrap.suite", &src->suite);
  /* These reach mmdebstrap, which runs as root on the host: a value must
   * never read as one of its options or as more than one apt line. */
  if (src->suite != NULL && !deb_valid_suite(src->suite)) {
    vab_error_at(s->ctx, VAB_E_SCHEMA, &suite->mark,
                 "'%.200s' is not a suite name such as bookworm", src->suite);
    vab_diag_hint(s->ctx, "use 1 to 64 of letters, digits, '-', '.' and '_', "
                          "starting with a letter or digit");
    fail(s);
  }
  const struct vab_node *mirror = field(
      s, canon, map, "mirror",
      debian ? "http://deb.debian.org/debian" : "http://archive.ubuntu.com/ubuntu");
  read_string(s, mirror, "source.bootstrap.mirror", &src->mirror);
  if (src->mirror != NULL && !deb_valid_mirror(src->mirror)) {
    vab_error_at(s->ctx, VAB_E_SCHEMA, &mirror->mark,
                 "mirror must be an http://, https:// or file:/// URL, not "
                 "'%.200s'",
                 src->mirror);
    vab_diag_hint(s->ctx, "one URL, with no spaces, quotes or '#'");
    fail(s);
  }
  check(s, vab_node_enum(s->ctx, field(s, canon, map, "variant", "minbase"),
                         "source.bootstrap.variant", deb_variants,
                         &src->variant));
  const struct vab_node *packages = field(s, canon, map, "packages", NULL);
  const char **list = NULL;
  size_t n = 0;
  if (vab_node_string_list(s->ctx, packages, "source.bootstrap.packages",
                           &list, &n) < 0) {
    fail(s);
  } else if (list != NULL) {
    for (size_t i = 0; i < n; i++)
      if (!deb_valid_package(list[i])) {
        const struct vab_node *at =
            packages->kind == VAB_NODE_SEQ ? packages->items[i] : packages;
        vab_error_at(s->ctx, VAB_E_SCHEMA, &at->mark,
                     "'%.200s' is not a valid package name", list[i]);
        vab_diag_hint(s->ctx, DEB_PACKAGE_HINT);
        fail(s);
      }
    src->packages = arena_alloc(s->l->arena, (n + 1) * sizeof *list);
    if (src->packages == NULL)
      nomem(s);
    else
      memcpy(src->packages, list, n * sizeof *list);
    src->n_packages = n;
    free(list);
  }
  if (src->packages == NULL) {
    src->packages = arena_alloc(s->l->arena, sizeof *src->packages);
    if (src->packages == NULL)
      nomem(s);
  }
  return canon;
}

static const char *const rootfs_keys[] = {"path", "checksum", NULL};
static const char *const image_keys[] = {"path", "checksum", "format",
                                         "trust_backing", NULL};
static const char *const image_formats[] = {"qcow2", "raw", "vmdk", NULL};

static const char *format_from_path(const char *path) {
  const char *dot = strrchr(path, '.');
  if (dot != NULL && (strcmp(dot, ".raw") == 0 || strcmp(dot, ".img") == 0))
    return "raw";
  if (dot != NULL && strcmp(dot, ".vmdk") == 0)
    return "vmdk";
  return "qcow2";
}

static struct vab_node *source_file(struct schema *s,
                                    const struct vab_node *map,
                                    struct vab_source *src, bool image) {
  const char *what = image ? "source.image" : "source.rootfs";
  struct vab_node *canon = new_map(s, &map->mark);
  check(s, vab_node_check_keys(s->ctx, map, what,
                               image ? image_keys : rootfs_keys));
  const struct vab_node *path = path_field(s, canon, map, "path");
  const char *text = NULL;
  if (path == NULL)
    missing(s, map, "path", what,
            image ? "path: base.qcow2" : "path: rootfs.tar.zst");
  read_string(s, path, image ? "source.image.path" : "source.rootfs.path",
              &text);
  if (text != NULL) {
    src->path = resolve(s, text);
    check_file(s, path, image ? "image" : "rootfs", src->path);
  }
  checksum_field(s, canon, map,
                 image ? "source.image.checksum" : "source.rootfs.checksum",
                 &src->checksum);
  if (image)
    check(s, vab_node_enum(s->ctx,
                           field(s, canon, map, "format",
                                 format_from_path(text ? text : "")),
                           "source.image.format", image_formats, &src->format));
  if (image) {
    /* Present in the canonical spec only when written: it changes what
     * the source may read. */
    const struct vab_node *trust = field(s, canon, map, "trust_backing", NULL);
    if (vab_node_bool(s->ctx, trust, "source.image.trust_backing",
                      &src->trust_backing) < 0)
      fail(s);
  }
  return canon;
}

static const char *const source_kinds[] = {"bootstrap", "rootfs", "image",
                                           NULL};

static struct vab_node *schema_source(struct schema *s,
                                      const struct vab_node *root,
                                      struct vab_source *src) {
  const struct vab_node *map = section(s, vab_node_get(root, "source"),
                                       "source");
  src->mark = root->mark;
  if (map == NULL) {
    if (vab_node_get(root, "source") == NULL ||
        vab_node_get(root, "source")->kind == VAB_NODE_NULL)
      missing(s, root, "source", "a template",
              "source: {bootstrap: {suite: bookworm}}");
    return NULL;
  }
  src->mark = map->mark;
  check(s, vab_node_check_keys(s->ctx, map, "source", source_kinds));
  size_t count = 0;
  for (size_t i = 0; source_kinds[i] != NULL; i++)
    if (vab_node_get(map, source_kinds[i]) != NULL)
      count++;
  if (count != 1) {
    vab_error_at(s->ctx, VAB_E_SCHEMA, &map->mark,
                 "source needs exactly one of bootstrap, rootfs or image, "
                 "not %zu",
                 count);
    fail(s);
    return NULL;
  }
  struct vab_node *canon = new_map(s, &map->mark);
  for (size_t i = 0; source_kinds[i] != NULL; i++) {
    const char *kind = source_kinds[i];
    const struct vab_node *node = vab_node_get(map, kind);
    if (node == NULL)
      continue;
    char what[32];
    snprintf(what, sizeof what, "source.%s", kind);
    /* `bootstrap:` alone means every default. */
    struct vab_node empty = {.kind = VAB_NODE_MAP, .mark = node->mark};
    if (node->kind == VAB_NODE_NULL)
      node = &empty;
    const struct vab_node *inner = section(s, node, what);
    if (inner == NULL)
      return NULL;
    struct vab_node *value;
    if (i == 0) {
      src->kind = VAB_SOURCE_BOOTSTRAP;
      value = source_bootstrap(s, inner, src);
    } else {
      src->kind = i == 1 ? VAB_SOURCE_ROOTFS : VAB_SOURCE_IMAGE;
      value = source_file(s, inner, src, i == 2);
    }
    if (value != NULL)
      value->mark = node->mark;
    put(s, canon, kind, vab_node_key_mark(map, kind), value);
  }
  return canon;
}

static const char *const disk_keys[] = {"size", "partitions", "filesystem",
                                        "firmware", NULL};
static const char *const partition_names[] = {"gpt", "mbr", NULL};
static const char *const filesystem_names[] = {"ext4", "xfs", NULL};
static const char *const firmware_names[] = {"bios", "uefi", "both", NULL};

static int index_of(const char *const *list, const char *value) {
  for (int i = 0; value != NULL && list[i] != NULL; i++)
    if (strcmp(list[i], value) == 0)
      return i;
  return 0;
}

static struct vab_node *schema_disk(struct schema *s,
                                    const struct vab_node *root,
                                    struct vab_disk *disk) {
  static const struct vab_node none = {.kind = VAB_NODE_MAP};
  const struct vab_node *map = section(s, vab_node_get(root, "disk"), "disk");
  if (map == NULL)
    map = &none;
  disk->mark = map == &none ? root->mark : map->mark;
  struct vab_node *canon = new_map(s, &disk->mark);
  check(s, vab_node_check_keys(s->ctx, map, "disk", disk_keys));
  const struct vab_node *size = field(s, canon, map, "size", "4G");
  if (vab_node_size(s->ctx, size, "disk.size", &disk->size) < 0) {
    fail(s);
  } else if (disk->size < (1ull << 30) || disk->size > (64ull << 40)) {
    vab_error_at(s->ctx, VAB_E_SCHEMA, &size->mark,
                 "disk.size must be from 1G to 64T, not '%.200s'", size->scalar);
    fail(s);
  }
  const char *value = NULL;
  check(s, vab_node_enum(s->ctx, field(s, canon, map, "partitions", "gpt"),
                         "disk.partitions", partition_names, &value));
  disk->partitions = index_of(partition_names, value) ? VAB_PART_MBR
                                                      : VAB_PART_GPT;
  value = NULL;
  check(s, vab_node_enum(s->ctx, field(s, canon, map, "filesystem", "ext4"),
                         "disk.filesystem", filesystem_names, &value));
  disk->filesystem = index_of(filesystem_names, value) ? VAB_FS_XFS
                                                       : VAB_FS_EXT4;
  value = NULL;
  check(s, vab_node_enum(s->ctx, field(s, canon, map, "firmware", "bios"),
                         "disk.firmware", firmware_names, &value));
  int fw = index_of(firmware_names, value);
  disk->firmware = fw == 0 ? VAB_FW_BIOS : fw == 1 ? VAB_FW_UEFI : VAB_FW_BOTH;
  return canon;
}

static const char *const hardware_keys[] = {"cpus", "memory", "nics",
                                            "disk_bus", "nic_model", NULL};
static const char *const disk_buses[] = {"scsi", "sata", "ide", "virtio",
                                         NULL};
static const char *const nic_models[] = {"auto", "virtio", "e1000", "vmxnet3",
                                         NULL};

static struct vab_node *schema_hardware(struct schema *s,
                                        const struct vab_node *root,
                                        struct vab_hardware *hw) {
  static const struct vab_node none = {.kind = VAB_NODE_MAP};
  const struct vab_node *map =
      section(s, vab_node_get(root, "hardware"), "hardware");
  if (map == NULL)
    map = &none;
  hw->mark = map == &none ? root->mark : map->mark;
  struct vab_node *canon = new_map(s, &hw->mark);
  check(s, vab_node_check_keys(s->ctx, map, "hardware", hardware_keys));
  uint64_t v = 0;
  const struct vab_node *cpus = field(s, canon, map, "cpus", "2");
  if (vab_node_uint(s->ctx, cpus, "hardware.cpus", 128, &v) < 0) {
    fail(s);
  } else if (v == 0) {
    vab_error_at(s->ctx, VAB_E_SCHEMA, &cpus->mark,
                 "hardware.cpus must be at least 1");
    fail(s);
  }
  hw->cpus = (unsigned)v;
  const struct vab_node *memory = field(s, canon, map, "memory", "2G");
  if (vab_node_size(s->ctx, memory, "hardware.memory", &hw->memory) < 0) {
    fail(s);
  } else if (hw->memory < (128ull << 20) || hw->memory > (4ull << 40)) {
    vab_error_at(s->ctx, VAB_E_SCHEMA, &memory->mark,
                 "hardware.memory must be from 128M to 4T, not '%.200s'",
                 memory->scalar);
    fail(s);
  }
  v = 0;
  check(s, vab_node_uint(s->ctx, field(s, canon, map, "nics", "1"),
                         "hardware.nics", 10, &v));
  hw->nics = (unsigned)v;
  check(s, vab_node_enum(s->ctx, field(s, canon, map, "disk_bus", "scsi"),
                         "hardware.disk_bus", disk_buses, &hw->disk_bus));
  check(s, vab_node_enum(s->ctx, field(s, canon, map, "nic_model", "auto"),
                         "hardware.nic_model", nic_models, &hw->nic_model));
  return canon;
}

/* Provisioners. */

static const char **step_type_names(struct schema *s) {
  const struct vab_step_type *const *types = s->vocab->step_types;
  size_t n = 0;
  while (types[n] != NULL)
    n++;
  const char **names = arena_alloc(s->l->arena, (n + 1) * sizeof *names);
  if (names == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++)
    names[i] = types[i]->name;
  names[n] = NULL;
  return names;
}

static const struct vab_step_type *step_type_by_name(struct schema *s,
                                                     const char *name) {
  for (const struct vab_step_type *const *t = s->vocab->step_types;
       *t != NULL; t++)
    if (strcmp((*t)->name, name) == 0)
      return *t;
  return NULL;
}

/* Where a step runs: `booted: true` on a VAB_STEP_MAY_BOOT type, or always
 * for a VAB_STEP_BOOTED one; `timeout:` bounds a booted step only.  A
 * booted step's canonical spec (and so its plan key) holds `booted: true`
 * and the timeout in one spelling; an offline step's holds neither, so
 * `booted: false` keys as the step without it. */
#define STEP_DEFAULT_TIMEOUT_MS (30ull * 60 * 1000)

static void step_booted(struct schema *s, const struct vab_node *item,
                        struct vab_node *canon, struct vab_step *step) {
  const struct vab_step_type *p = step->step_type;
  const struct vab_node *booted = vab_node_get(item, "booted");
  const struct vab_node *timeout = vab_node_get(item, "timeout");
  if (booted != NULL && booted->kind == VAB_NODE_NULL)
    booted = NULL;
  if (timeout != NULL && timeout->kind == VAB_NODE_NULL)
    timeout = NULL;
  step->booted = (p->flags & VAB_STEP_BOOTED) != 0;
  if (booted != NULL && vab_node_bool(s->ctx, booted, "booted",
                                      &step->booted) < 0) {
    fail(s);
    return;
  }
  step->timeout_ms = p->booted_timeout_ms ? p->booted_timeout_ms
                                          : STEP_DEFAULT_TIMEOUT_MS;
  if (!step->booted) {
    step->timeout_ms = 0;
    if (timeout != NULL) {
      vab_error_at(s->ctx, VAB_E_SCHEMA, &timeout->mark,
                   "timeout applies to a booted step only; this '%s' step "
                   "runs in the builder VM",
                   p->name);
      vab_diag_hint(s->ctx, "add 'booted: true' to run it in the booted "
                            "appliance, or remove 'timeout'");
      fail(s);
    }
    return;
  }
  if (timeout != NULL) {
    if (vab_node_duration(s->ctx, timeout, "timeout", &step->timeout_ms) < 0) {
      fail(s);
      return;
    }
    if (step->timeout_ms < 1000 || step->timeout_ms > 24ull * 3600 * 1000) {
      vab_error_at(s->ctx, VAB_E_SCHEMA, &timeout->mark,
                   "timeout must be from 1s to 24h, not '%.200s'",
                   timeout->scalar);
      fail(s);
      return;
    }
  }
  char text[32];
  vab_format_duration_ms(text, sizeof text, step->timeout_ms);
  if (p->flags & VAB_STEP_MAY_BOOT) {
    struct vab_node *yes = node_scalar(s->l, "true",
                                       booted ? &booted->mark : &item->mark);
    if (yes == NULL) {
      fail(s);
      return;
    }
    put(s, canon, "booted", vab_node_key_mark(item, "booted"), yes);
  }
  struct vab_node *t = node_scalar(s->l, text,
                                   timeout ? &timeout->mark : &item->mark);
  if (t == NULL) {
    fail(s);
    return;
  }
  put(s, canon, "timeout", vab_node_key_mark(item, "timeout"), t);
}

static struct vab_node *schema_step(struct schema *s,
                                    const struct vab_node *item,
                                    struct vab_step *step) {
  step->mark = item->mark;
  if (item->kind != VAB_NODE_MAP) {
    vab_error_at(s->ctx, VAB_E_SCHEMA, &item->mark,
                 "a provisioner step must be a mapping with a 'type', not %s",
                 node_kind_name(item));
    fail(s);
    return NULL;
  }
  const struct vab_node *type = vab_node_get(item, "type");
  if (type == NULL) {
    missing(s, item, "type", "a provisioner step",
            "type: shell");
    return NULL;
  }
  if (vab_node_string(s->ctx, type, "type", &step->type) < 0) {
    fail(s);
    return NULL;
  }
  const struct vab_step_type *p = step_type_by_name(s, step->type);
  if (p == NULL) {
    vab_error_at(s->ctx, VAB_E_SCHEMA, &type->mark,
                 "unknown provisioner type '%.200s'", step->type);
    const char **names = step_type_names(s);
    const char *close = names ? vab_suggest(step->type, names) : NULL;
    if (close != NULL) {
      vab_diag_hint(s->ctx, "did you mean '%.200s'?", close);
    } else if (names != NULL) {
      char list[256] = "";
      for (size_t i = 0; names[i] != NULL; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, names[i], sizeof list - strlen(list) - 1);
      }
      vab_diag_hint(s->ctx, "expected one of: %s", list);
    }
    fail(s);
    return NULL;
  }
  step->step_type = p;
  size_t n_keys = 0;
  while (p->keys[n_keys] != NULL)
    n_keys++;
  /* The loader owns `booted` and `timeout` (vab/step.h): type, the type's
   * keys, then those two where the type may boot or always boots. */
  const char **allowed = arena_alloc(s->l->arena, (n_keys + 4) * sizeof *allowed);
  if (allowed == NULL) {
    nomem(s);
    return NULL;
  }
  allowed[0] = "type";
  memcpy(allowed + 1, p->keys, n_keys * sizeof *allowed);
  size_t n_allowed = n_keys + 1;
  if (p->flags & VAB_STEP_MAY_BOOT)
    allowed[n_allowed++] = "booted";
  if (p->flags & (VAB_STEP_MAY_BOOT | VAB_STEP_BOOTED))
    allowed[n_allowed++] = "timeout";
  allowed[n_allowed] = NULL;
  char what[64];
  snprintf(what, sizeof what, "'%s' step", p->name);
  if (vab_node_check_keys(s->ctx, item, what, allowed) < 0) {
    fail(s);
    return NULL;
  }
  /* The canonical step: type first, then the provisioner's keys in the
   * order it lists them; `booted` and `timeout` follow, see step_booted. */
  struct vab_node *canon = new_map(s, &item->mark);
  for (size_t i = 0; i < n_keys + 1; i++) {
    const struct vab_node *value = vab_node_get(item, allowed[i]);
    for (size_t k = 0; p->path_keys != NULL && p->path_keys[k] != NULL; k++)
      if (strcmp(p->path_keys[k], allowed[i]) == 0)
        value = local_path(s, value);
    if (value != NULL)
      put(s, canon, allowed[i], vab_node_key_mark(item, allowed[i]),
          (struct vab_node *)value);
  }
  if (canon == NULL)
    return NULL;
  step_booted(s, item, canon, step);
  step->spec = canon;
  if (p->config(s->ctx, canon, s->dir, &step->config) < 0 ||
      p->check(s->ctx, step->config) < 0)
    fail(s);
  return canon;
}

static const struct vab_node *list_section(struct schema *s,
                                           const struct vab_node *node,
                                           const char *what) {
  if (node == NULL || node->kind == VAB_NODE_NULL)
    return NULL;
  if (node->kind != VAB_NODE_SEQ) {
    vab_error_at(s->ctx, VAB_E_SCHEMA, &node->mark,
                 "'%.200s' must be a list, not %s", what, node_kind_name(node));
    vab_diag_hint(s->ctx, "start each item with '- '");
    fail(s);
    return NULL;
  }
  return node;
}

static struct vab_node *schema_steps(struct schema *s,
                                     const struct vab_node *root,
                                     struct vab_template *t) {
  const struct vab_node *list =
      list_section(s, vab_node_get(root, "provisioners"), "provisioners");
  struct vab_node *canon = new_seq(s, list ? &list->mark : &root->mark);
  if (list == NULL || list->n == 0 || canon == NULL)
    return canon;
  t->steps = arena_alloc(s->l->arena, list->n * sizeof *t->steps);
  if (t->steps == NULL) {
    nomem(s);
    return NULL;
  }
  for (size_t i = 0; i < list->n; i++) {
    struct vab_node *step = schema_step(s, list->items[i], &t->steps[t->n_steps]);
    t->n_steps++;
    if (step != NULL && node_seq_add(s->l, canon, step) < 0)
      fail(s);
  }
  return canon;
}

/* sysprep */

static struct vab_node *schema_sysprep(struct schema *s,
                                       const struct vab_node *root,
                                       struct vab_sysprep *sp) {
  static const char *const sysprep_keys[] = {"operations", "keep", NULL};
  const char *const *ops_table = s->vocab->sysprep_operations;
  const struct vab_node *node = vab_node_get(root, "sysprep");
  sp->mark = node != NULL ? node->mark : root->mark;
  sp->enabled = true;
  size_t n_ops = 0;
  while (ops_table[n_ops] != NULL)
    n_ops++;
  sp->operations = arena_alloc(s->l->arena, (n_ops + 1) * sizeof(char *));
  sp->keep = arena_alloc(s->l->arena, (n_ops + 1) * sizeof(char *));
  if (sp->operations == NULL || sp->keep == NULL) {
    nomem(s);
    return NULL;
  }
  if (node != NULL && node->kind == VAB_NODE_SCALAR) {
    bool on = true;
    if (vab_node_bool(s->ctx, node, "sysprep", &on) < 0) {
      vab_diag_hint(s->ctx, "write 'sysprep: false' to turn it off, or a "
                            "mapping with 'operations' and 'keep'");
      fail(s);
      return NULL;
    }
    sp->enabled = on;
    if (!on)
      return node_scalar(s->l, "false", &node->mark);
    node = NULL;
  }
  const struct vab_node *map = section(s, node, "sysprep");
  check(s, vab_node_check_keys(s->ctx, map, "sysprep", sysprep_keys));
  /* chosen[i]: operation i runs. */
  bool chosen[16] = {false};
  const struct vab_node *ops = vab_node_get(map, "operations");
  if (ops == NULL || ops->kind == VAB_NODE_NULL ||
      (ops->kind == VAB_NODE_SCALAR && strcmp(ops->scalar, "default") == 0)) {
    for (size_t i = 0; i < n_ops; i++)
      chosen[i] = true;
  } else {
    const char **list = NULL;
    size_t n = 0;
    if (vab_node_string_list(s->ctx, ops, "sysprep.operations", &list, &n) < 0)
      fail(s);
    for (size_t i = 0; i < n; i++) {
      const struct vab_node *at = ops->kind == VAB_NODE_SEQ ? ops->items[i] : ops;
      const char *op = NULL;
      if (strcmp(list[i], "default") == 0) {
        for (size_t j = 0; j < n_ops; j++)
          chosen[j] = true;
        continue;
      }
      if (vab_node_enum(s->ctx, at, "sysprep operation",
                        ops_table, &op) < 0)
        fail(s);
      else
        chosen[index_of(ops_table, op)] = true;
    }
    free(list);
  }
  const struct vab_node *keep = vab_node_get(map, "keep");
  const char **kept = NULL;
  size_t n_kept = 0;
  if (vab_node_string_list(s->ctx, keep, "sysprep.keep", &kept, &n_kept) < 0)
    fail(s);
  for (size_t i = 0; i < n_kept; i++) {
    const struct vab_node *at = keep->kind == VAB_NODE_SEQ ? keep->items[i] : keep;
    const char *op = NULL;
    if (vab_node_enum(s->ctx, at, "sysprep operation", ops_table,
                      &op) < 0) {
      fail(s);
      continue;
    }
    int k = index_of(ops_table, op);
    bool already = false;
    for (size_t j = 0; j < sp->n_keep; j++)
      already |= sp->keep[j] == ops_table[k];
    if (!already)
      sp->keep[sp->n_keep++] = ops_table[k];
    chosen[k] = false;
  }
  free(kept);
  for (size_t i = 0; i < n_ops; i++)
    if (chosen[i])
      sp->operations[sp->n_operations++] = ops_table[i];
  /* Canonical: the resolved list, so `keep` has been applied. */
  struct vab_node *canon = new_map(s, &sp->mark);
  struct vab_node *seq = new_seq(s, &sp->mark);
  for (size_t i = 0; seq != NULL && i < sp->n_operations; i++) {
    struct vab_node *op = node_scalar(s->l, sp->operations[i], &sp->mark);
    if (op == NULL || node_seq_add(s->l, seq, op) < 0)
      fail(s);
  }
  put(s, canon, "operations", NULL, seq);
  return canon;
}

/* tests */

static const char *const boot_keys[] = {"timeout", "http", "tcp", "serial",
                                        NULL};
static const char *const http_keys[] = {"port", "path", "status", "contains",
                                        NULL};
static const char *const tcp_keys[] = {"port", NULL};

static void read_port(struct schema *s, const struct vab_node *node,
                      const char *what, uint16_t *port) {
  uint64_t v = 0;
  if (vab_node_uint(s->ctx, node, what, 65535, &v) < 0) {
    fail(s);
  } else if (node != NULL && v == 0) {
    vab_error_at(s->ctx, VAB_E_SCHEMA, &node->mark,
                 "%s must be from 1 to 65535", what);
    fail(s);
  }
  *port = (uint16_t)v;
}

static struct vab_node *schema_boot(struct schema *s,
                                    const struct vab_node *map,
                                    struct vab_boot_test *bt) {
  struct vab_node *canon = new_map(s, &map->mark);
  bt->mark = map->mark;
  check(s, vab_node_check_keys(s->ctx, map, "a boot test", boot_keys));
  const struct vab_node *timeout = field(s, canon, map, "timeout", "300s");
  if (vab_node_duration(s->ctx, timeout, "tests.boot.timeout",
                        &bt->timeout_ms) < 0) {
    fail(s);
  } else if (bt->timeout_ms < 1000 || bt->timeout_ms > 24ull * 3600 * 1000) {
    vab_error_at(s->ctx, VAB_E_SCHEMA, &timeout->mark,
                 "tests.boot.timeout must be from 1s to 24h, not '%.200s'",
                 timeout->scalar);
    fail(s);
  }
  const struct vab_node *http = section(s, vab_node_get(map, "http"),
                                        "tests.boot.http");
  if (http != NULL) {
    struct vab_node *hc = new_map(s, &http->mark);
    bt->has_http = true;
    check(s, vab_node_check_keys(s->ctx, http, "tests.boot.http", http_keys));
    read_port(s, field(s, hc, http, "port", "80"), "tests.boot.http.port",
              &bt->http_port);
    const struct vab_node *path = field(s, hc, http, "path", "/");
    read_string(s, path, "tests.boot.http.path", &bt->http_path);
    if (bt->http_path != NULL && bt->http_path[0] != '/') {
      vab_error_at(s->ctx, VAB_E_SCHEMA, &path->mark,
                   "tests.boot.http.path must start with '/', not '%.200s'",
                   bt->http_path);
      fail(s);
    }
    uint64_t status = 200;
    const struct vab_node *st = field(s, hc, http, "status", "200");
    if (vab_node_uint(s->ctx, st, "tests.boot.http.status", 599, &status) < 0) {
      fail(s);
    } else if (status < 100) {
      vab_error_at(s->ctx, VAB_E_SCHEMA, &st->mark,
                   "tests.boot.http.status must be an HTTP status from 100 "
                   "to 599");
      fail(s);
    }
    bt->http_status = (unsigned)status;
    read_string(s, field(s, hc, http, "contains", NULL),
                "tests.boot.http.contains", &bt->http_contains);
    put(s, canon, "http", vab_node_key_mark(map, "http"), hc);
  }
  const struct vab_node *tcp = section(s, vab_node_get(map, "tcp"),
                                       "tests.boot.tcp");
  if (tcp != NULL) {
    struct vab_node *tc = new_map(s, &tcp->mark);
    bt->has_tcp = true;
    check(s, vab_node_check_keys(s->ctx, tcp, "tests.boot.tcp", tcp_keys));
    const struct vab_node *port = field(s, tc, tcp, "port", NULL);
    if (port == NULL)
      missing(s, tcp, "port", "tests.boot.tcp", "tcp: {port: 22}");
    read_port(s, port, "tests.boot.tcp.port", &bt->tcp_port);
    put(s, canon, "tcp", vab_node_key_mark(map, "tcp"), tc);
  }
  read_string(s, field(s, canon, map, "serial", NULL), "tests.boot.serial",
              &bt->serial);
  if (!bt->has_http && !bt->has_tcp && bt->serial == NULL) {
    vab_error_at(s->ctx, VAB_E_SCHEMA, &map->mark,
                 "a boot test needs at least one check: http, tcp or serial");
    vab_diag_hint(s->ctx, "for example: boot: {tcp: {port: 22}}");
    fail(s);
  }
  return canon;
}

static struct vab_node *schema_tests(struct schema *s,
                                     const struct vab_node *root,
                                     struct vab_template *t) {
  static const char *const test_kinds[] = {"boot", NULL};
  const struct vab_node *list = list_section(s, vab_node_get(root, "tests"),
                                             "tests");
  struct vab_node *canon = new_seq(s, list ? &list->mark : &root->mark);
  if (list == NULL || list->n == 0 || canon == NULL)
    return canon;
  t->tests = arena_alloc(s->l->arena, list->n * sizeof *t->tests);
  if (t->tests == NULL) {
    nomem(s);
    return NULL;
  }
  for (size_t i = 0; i < list->n; i++) {
    const struct vab_node *item = list->items[i];
    if (item->kind != VAB_NODE_MAP) {
      vab_error_at(s->ctx, VAB_E_SCHEMA, &item->mark,
                   "a test must be a mapping such as 'boot: {...}', not %s",
                   node_kind_name(item));
      fail(s);
      continue;
    }
    if (vab_node_check_keys(s->ctx, item, "a test", test_kinds) < 0) {
      fail(s);
      continue;
    }
    const struct vab_node *boot = vab_node_get(item, "boot");
    if (boot == NULL) {
      missing(s, item, "boot", "a test", "boot: {tcp: {port: 22}}");
      continue;
    }
    /* `boot:` alone is an empty mapping, which then lacks a check. */
    struct vab_node empty = {.kind = VAB_NODE_MAP, .mark = boot->mark};
    if (boot->kind == VAB_NODE_NULL)
      boot = &empty;
    if (section(s, boot, "tests.boot") == NULL)
      continue;
    struct vab_node *bc = schema_boot(s, boot, &t->tests[t->n_tests++]);
    struct vab_node *tc = new_map(s, &item->mark);
    put(s, tc, "boot", vab_node_key_mark(item, "boot"), bc);
    if (tc != NULL && node_seq_add(s->l, canon, tc) < 0)
      fail(s);
  }
  return canon;
}

/* outputs */

/* An option's value as the text its owner parses: YAML booleans become
 * on/off and sizes a byte count (what `vab convert -o` would be given);
 * anything else goes as written, for the owner's check to judge. */
static const char *output_option_text(struct schema *s,
                                      const struct vab_option_spec *spec,
                                      const struct vab_node *node,
                                      const char *what) {
  const char *text = NULL;
  if (vab_node_string(s->ctx, node, what, &text) < 0)
    return NULL;
  uint64_t size;
  bool on;
  char number[32];
  if (spec->kind == VAB_OPTION_BOOL && node_is_bool_text(text, &on))
    return on ? "on" : "off";
  if (spec->kind == VAB_OPTION_SIZE && vab_parse_size(text, &size) == 0) {
    snprintf(number, sizeof number, "%llu", (unsigned long long)size);
    return arena_strdup(s->l->arena, number);
  }
  return text;
}

/* A refused value: the owner's message at the value, and for a word out
 * of a list, the likely word or the list. */
static void output_problem(struct schema *s, const struct vab_option_spec *spec,
                           const struct vab_mark *mark, const char *value,
                           const struct vab_option_problem *problem) {
  vab_error_at(s->ctx, VAB_E_SCHEMA, mark, "%s", problem->message);
  if (spec != NULL && spec->kind == VAB_OPTION_ENUM) {
    const char *close = vab_suggest(value, spec->values);
    if (close != NULL)
      vab_diag_hint(s->ctx, "did you mean '%s'?", close);
  }
  fail(s);
}

static struct vab_node *schema_output(struct schema *s,
                                      const struct vab_node *map,
                                      struct vab_output_spec *out) {
  const struct vab_template_vocab *v = s->vocab;
  /* The slot may hold a rejected duplicate from the item before. */
  memset(out, 0, sizeof *out);
  out->mark = map->mark;
  const struct vab_node *format = vab_node_get(map, "format");
  if (format == NULL) {
    missing(s, map, "format", "an output", "format: qcow2");
    return NULL;
  }
  if (vab_node_enum(s->ctx, format, "output format", v->output_formats,
                    &out->format) < 0) {
    fail(s);
    return NULL;
  }
  const struct vab_option_spec *specs = v->output_options(out->format);
  size_t n = 0;
  while (specs != NULL && specs[n].key != NULL)
    n++;
  const char **allowed = arena_alloc(s->l->arena, (n + 2) * sizeof *allowed);
  out->options = arena_alloc(s->l->arena, (n + 1) * sizeof *out->options);
  struct vab_option *checked = arena_alloc(s->l->arena,
                                           (n + 1) * sizeof *checked);
  const struct vab_option_spec **checked_spec =
      arena_alloc(s->l->arena, (n + 1) * sizeof *checked_spec);
  if (allowed == NULL || out->options == NULL || checked == NULL ||
      checked_spec == NULL) {
    nomem(s);
    return NULL;
  }
  allowed[0] = "format";
  for (size_t i = 0; i < n; i++)
    allowed[i + 1] = specs[i].key;
  char what[64];
  snprintf(what, sizeof what, "'%s' output", out->format);
  check(s, vab_node_check_keys(s->ctx, map, what, allowed));
  struct vab_node *canon = new_map(s, &map->mark);
  put(s, canon, "format", vab_node_key_mark(map, "format"),
      (struct vab_node *)format);
  bool typed = true;
  for (size_t i = 0; i < n; i++) {
    const char *def = (specs[i].flags & VAB_OPTION_CANONICAL)
                          ? specs[i].default_value : NULL;
    const struct vab_node *value = field(s, canon, map, specs[i].key, def);
    if (value == NULL)
      continue;
    snprintf(what, sizeof what, "%s %s", out->format, specs[i].key);
    const char *text = output_option_text(s, &specs[i], value, what);
    if (text == NULL) {
      typed = false;
      fail(s);
      continue;
    }
    /* Checked as written (so messages quote it), passed on normalized. */
    checked[out->n_options].key = specs[i].key;
    checked[out->n_options].value =
        specs[i].kind == VAB_OPTION_SIZE ? value->scalar : text;
    checked_spec[out->n_options] = &specs[i];
    out->options[out->n_options].key = specs[i].key;
    out->options[out->n_options].value = text;
    out->options[out->n_options].mark = value->mark;
    out->n_options++;
  }
  /* One check per value, so that each wrong one is reported; then the set,
   * for the combinations. */
  bool each_ok = typed;
  for (size_t i = 0; i < out->n_options; i++) {
    struct vab_option_problem problem;
    if (v->check_value(out->format, &checked[i], &problem) < 0) {
      output_problem(s, checked_spec[i], &out->options[i].mark,
                     checked[i].value, &problem);
      each_ok = false;
    }
  }
  struct vab_option_problem problem;
  if (each_ok && v->check_output(out->format, checked, out->n_options,
                                 &problem) < 0) {
    size_t at = problem.index < out->n_options ? problem.index : 0;
    const struct vab_mark *mark =
        out->n_options > 0 ? &out->options[at].mark : &map->mark;
    output_problem(s, NULL, mark, NULL, &problem);
  }
  /* An OVA's target is the export's, not a writer option. */
  size_t kept = 0;
  for (size_t i = 0; i < out->n_options; i++) {
    if (strcmp(out->options[i].key, "target") == 0) {
      out->target = each_ok ? out->options[i].value : NULL;
      continue;
    }
    out->options[kept++] = out->options[i];
  }
  out->n_options = kept;
  return canon;
}

static struct vab_node *schema_outputs(struct schema *s,
                                       const struct vab_node *root,
                                       struct vab_template *t) {
  const struct vab_node *list =
      list_section(s, vab_node_get(root, "outputs"), "outputs");
  const struct vab_node *given = vab_node_get(root, "outputs");
  if (given == NULL || given->kind == VAB_NODE_NULL) {
    /* No outputs: one qcow2 image, the format every hypervisor tool reads. */
    struct vab_node *seq = new_seq(s, &root->mark);
    struct vab_node *map = new_map(s, &root->mark);
    struct vab_node *format = node_scalar(s->l, "qcow2", &root->mark);
    if (seq == NULL || map == NULL || format == NULL)
      return NULL;
    put(s, map, "format", NULL, format);
    if (node_seq_add(s->l, seq, map) < 0)
      return NULL;
    list = seq;
  }
  struct vab_node *canon = new_seq(s, list ? &list->mark : &root->mark);
  if (list == NULL || list->n == 0 || canon == NULL)
    return canon;
  t->outputs = arena_alloc(s->l->arena, list->n * sizeof *t->outputs);
  if (t->outputs == NULL) {
    nomem(s);
    return NULL;
  }
  for (size_t i = 0; i < list->n; i++) {
    const struct vab_node *item = list->items[i];
    if (item->kind == VAB_NODE_SCALAR) {
      vab_error_at(s->ctx, VAB_E_SCHEMA, &item->mark,
                   "an output must be a mapping, not a single value");
      vab_diag_hint(s->ctx, "write '- format: %s'", item->scalar);
      fail(s);
      continue;
    }
    if (item->kind != VAB_NODE_MAP) {
      vab_error_at(s->ctx, VAB_E_SCHEMA, &item->mark,
                   "an output must be a mapping such as '{format: qcow2}', "
                   "not %s",
                   node_kind_name(item));
      fail(s);
      continue;
    }
    struct vab_output_spec *out = &t->outputs[t->n_outputs];
    struct vab_node *oc = schema_output(s, item, out);
    if (oc == NULL)
      continue;
    /* Each format names one artifact: two of a kind would overwrite.  OVAs
     * are the exception, one per target: their names carry the target
     * (NAME-VERSION-vmware.ova). */
    bool duplicate = false;
    bool is_ova = strcmp(out->format, "ova") == 0;
    for (size_t j = 0; j < t->n_outputs && !duplicate; j++) {
      if (strcmp(t->outputs[j].format, out->format) != 0)
        continue;
      /* A target that failed its own check is NULL: already reported. */
      if (is_ova && (t->outputs[j].target == NULL || out->target == NULL ||
                     strcmp(t->outputs[j].target, out->target) != 0))
        continue;
      duplicate = true;
      if (is_ova)
        vab_error_at(s->ctx, VAB_E_SCHEMA, &item->mark,
                     "a second 'ova' output for target '%.200s': each target "
                     "is written once",
                     out->target);
      else
        vab_error_at(s->ctx, VAB_E_SCHEMA, &item->mark,
                     "a second '%.200s' output: each format is written once "
                     "(only 'ova' may repeat, once per target)",
                     out->format);
      vab_note_at(s->ctx, &t->outputs[j].mark, "the first '%.200s' output is here",
                  out->format);
      fail(s);
    }
    if (duplicate)
      continue;
    t->n_outputs++;
    if (node_seq_add(s->l, canon, oc) < 0)
      fail(s);
  }
  return canon;
}

/* sign and publish */

static struct vab_node *schema_sign(struct schema *s,
                                    const struct vab_node *root,
                                    struct vab_template *t) {
  static const char *const sign_keys[] = {"key", "cert", NULL};
  const struct vab_node *map = section(s, vab_node_get(root, "sign"), "sign");
  if (map == NULL)
    return NULL;
  struct vab_sign_spec *sign = arena_alloc(s->l->arena, sizeof *sign);
  struct vab_node *canon = new_map(s, &map->mark);
  if (sign == NULL) {
    nomem(s);
    return NULL;
  }
  sign->mark = map->mark;
  check(s, vab_node_check_keys(s->ctx, map, "sign", sign_keys));
  const struct vab_node *key = path_field(s, canon, map, "key");
  const char *text = NULL;
  if (key == NULL)
    missing(s, map, "key", "sign", "key: keys/release.key");
  read_string(s, key, "sign.key", &text);
  if (text != NULL)
    sign->key = resolve(s, text);
  text = NULL;
  read_string(s, path_field(s, canon, map, "cert"), "sign.cert", &text);
  if (text != NULL)
    sign->cert = resolve(s, text);
  t->sign = sign;
  return canon;
}

static bool valid_tag(const char *tag) {
  size_t len = strlen(tag);
  if (len == 0 || len > 128 || tag[0] == '.' || tag[0] == '-')
    return false;
  for (size_t i = 0; i < len; i++)
    if (!isalnum((unsigned char)tag[i]) && strchr("._-", tag[i]) == NULL)
      return false;
  return true;
}

static struct vab_node *schema_publish(struct schema *s,
                                       const struct vab_node *root,
                                       struct vab_template *t) {
  static const char *const publish_keys[] = {"ref", "tags", NULL};
  const struct vab_node *list =
      list_section(s, vab_node_get(root, "publish"), "publish");
  if (list == NULL)
    return NULL;
  struct vab_node *canon = new_seq(s, &list->mark);
  t->publish = arena_alloc(s->l->arena, (list->n + 1) * sizeof *t->publish);
  if (t->publish == NULL || canon == NULL) {
    nomem(s);
    return NULL;
  }
  for (size_t i = 0; i < list->n; i++) {
    const struct vab_node *map = section(s, list->items[i], "publish item");
    if (map == NULL) {
      if (list->items[i]->kind == VAB_NODE_NULL) {
        vab_error_at(s->ctx, VAB_E_SCHEMA, &list->items[i]->mark,
                     "an empty publish item");
        fail(s);
      }
      continue;
    }
    struct vab_publish_spec *pub = &t->publish[t->n_publish++];
    pub->mark = map->mark;
    struct vab_node *pc = new_map(s, &map->mark);
    check(s, vab_node_check_keys(s->ctx, map, "publish", publish_keys));
    const struct vab_node *ref = field(s, pc, map, "ref", NULL);
    if (ref == NULL)
      missing(s, map, "ref", "publish",
              "ref: registry.example:5000/appliances/web");
    read_string(s, ref, "publish.ref", &pub->ref);
    char why[256];
    if (pub->ref != NULL &&
        s->vocab->check_ref(pub->ref, why, sizeof why) < 0) {
      vab_error_at(s->ctx, VAB_E_SCHEMA, &ref->mark, "%s", why);
      vab_diag_hint(s->ctx, "a registry reference is HOST[:PORT]/REPO, "
                            "such as registry.example:5000/appliances/web");
      fail(s);
    }
    /* Tags default to the version alone; the version is already checked. */
    const struct vab_node *tags = vab_node_get(map, "tags");
    struct vab_node *default_tags = NULL;
    if (tags == NULL || tags->kind == VAB_NODE_NULL) {
      default_tags = new_seq(s, &map->mark);
      struct vab_node *v = node_scalar(s->l, t->version ? t->version : "0",
                                       &map->mark);
      if (default_tags == NULL || v == NULL ||
          node_seq_add(s->l, default_tags, v) < 0) {
        fail(s);
        continue;
      }
      tags = default_tags;
    }
    const char **list_tags = NULL;
    size_t n = 0;
    if (vab_node_string_list(s->ctx, tags, "publish.tags", &list_tags, &n) < 0) {
      fail(s);
    } else {
      for (size_t j = 0; j < n; j++)
        if (!valid_tag(list_tags[j])) {
          const struct vab_node *at =
              tags->kind == VAB_NODE_SEQ ? tags->items[j] : tags;
          vab_error_at(s->ctx, VAB_E_SCHEMA, &at->mark,
                       "'%.200s' is not a valid tag: up to 128 letters, digits, "
                       "'.', '_' and '-', not starting with '.' or '-'",
                       list_tags[j]);
          fail(s);
        }
      pub->tags = arena_alloc(s->l->arena, (n + 1) * sizeof *pub->tags);
      if (pub->tags == NULL)
        nomem(s);
      else
        memcpy(pub->tags, list_tags, n * sizeof *pub->tags);
      pub->n_tags = n;
    }
    free(list_tags);
    put(s, pc, "tags", vab_node_key_mark(map, "tags"), (struct vab_node *)tags);
    if (node_seq_add(s->l, canon, pc) < 0)
      fail(s);
  }
  return canon;
}

/* The whole template. */

int tpl_schema(struct loader *l, const struct vab_node *root,
               const char *dir, struct vab_template *t) {
  struct schema sc = {.l = l, .ctx = l->ctx, .dir = dir};
  struct schema *s = &sc;
  sc.vocab = l->opts != NULL ? l->opts->vocab : NULL;
  if (sc.vocab == NULL || sc.vocab->step_types == NULL)
    return vab_error(s->ctx, VAB_E_INTERNAL,
                     "the template loader was given no vocabulary "
                     "(struct vab_load_opts.vocab, with its step_types)");
  struct vab_node *canon = new_map(s, &root->mark);
  if (canon == NULL)
    return -1;
  check(s, vab_node_check_keys(s->ctx, root, "the template", top_keys));

  const struct vab_node *vab = field(s, canon, root, "vab", NULL);
  if (vab == NULL) {
    missing(s, root, "vab", "a template", "vab: 1");
  } else if (vab->kind != VAB_NODE_SCALAR || strcmp(vab->scalar, "1") != 0) {
    vab_error_at(s->ctx, VAB_E_SCHEMA, &vab->mark,
                 "unsupported template language version '%.200s': this vab reads "
                 "version 1",
                 vab->kind == VAB_NODE_SCALAR ? vab->scalar : "?");
    vab_diag_hint(s->ctx, "write 'vab: 1'");
    fail(s);
  }

  const struct vab_node *name = field(s, canon, root, "name", NULL);
  if (name == NULL)
    missing(s, root, "name", "a template", "name: web");
  read_string(s, name, "name", &t->name);
  if (t->name != NULL && !valid_name(t->name)) {
    vab_error_at(s->ctx, VAB_E_SCHEMA, &name->mark,
                 "invalid name '%.200s': use 1 to 64 of a-z, 0-9, '.', '_' and "
                 "'-', starting with a letter or digit",
                 t->name);
    vab_diag_hint(s->ctx, "the name becomes part of file names, so it cannot "
                          "hold '/' or '..'");
    fail(s);
    t->name = NULL;
  }

  const struct vab_node *version = field(s, canon, root, "version", "0");
  read_string(s, version, "version", &t->version);
  if (t->version != NULL && !valid_version(t->version)) {
    vab_error_at(s->ctx, VAB_E_SCHEMA, &version->mark,
                 "invalid version '%.200s': use 1 to 64 of letters, digits, '.', "
                 "'_', '+', '~' and '-', starting with a letter or digit",
                 t->version);
    fail(s);
    t->version = NULL;
  }
  read_string(s, field(s, canon, root, "description", NULL), "description",
              &t->description);

  /* Variables after overrides, as the canonical form records them. */
  struct vab_node *vars = new_map(s, &root->mark);
  for (size_t i = 0; vars != NULL && i < t->n_variables; i++) {
    struct vab_node *v = node_scalar(l, t->variables[i].value, &root->mark);
    if (v == NULL)
      fail(s);
    else {
      v->quoted = true;   /* values are strings, even "2.0" */
      v->shown = tpl_var_env_shown(l, t->variables[i].name);
    }
    put(s, vars, t->variables[i].name, NULL, v);
  }
  if (vars != NULL && vars->n > 0)
    put(s, canon, "variables", vab_node_key_mark(root, "variables"), vars);

  put(s, canon, "source", vab_node_key_mark(root, "source"),
      schema_source(s, root, &t->source));
  put(s, canon, "disk", vab_node_key_mark(root, "disk"),
      schema_disk(s, root, &t->disk));
  put(s, canon, "hardware", vab_node_key_mark(root, "hardware"),
      schema_hardware(s, root, &t->hardware));
  put(s, canon, "provisioners", vab_node_key_mark(root, "provisioners"),
      schema_steps(s, root, t));
  put(s, canon, "sysprep", vab_node_key_mark(root, "sysprep"),
      schema_sysprep(s, root, &t->sysprep));
  put(s, canon, "tests", vab_node_key_mark(root, "tests"),
      schema_tests(s, root, t));
  put(s, canon, "outputs", vab_node_key_mark(root, "outputs"),
      schema_outputs(s, root, t));
  put(s, canon, "sign", vab_node_key_mark(root, "sign"),
      schema_sign(s, root, t));
  put(s, canon, "publish", vab_node_key_mark(root, "publish"),
      schema_publish(s, root, t));
  t->root = canon;
  return s->status;
}
