/* file: put a file or a folder from the host, or inline content, into the
 * guest, with a mode and an owner. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "provisioners/util.h"
#include "vab/guest.h"
#include "common/buf.h"
#include "common/shell-quote.h"
#include "common/vector.h"

DEFINE_VECTOR_TYPE(path_list, char *);

struct file_config {
  struct vab_mark mark;              /* the step */
  char *source;                      /* absolute host path, or NULL */
  const char *source_written;        /* as the template wrote it */
  struct vab_mark source_mark;
  bool source_is_dir;
  const char *content;               /* inline text, or NULL */
  const char *destination;           /* absolute guest path */
  struct vab_mark destination_mark;
  bool has_mode;                     /* folders keep their modes without */
  unsigned mode;                     /* default 0644 */
  const char *mode_text;             /* as written, or NULL */
  struct vab_mark mode_mark;
  const char *owner;                 /* "user[:group]", default "root:root" */
  struct vab_mark owner_mark;
  struct path_list inputs;           /* the host files read, sorted */
};

/* A folder source is copied whole; this keeps a mistaken `source: /` from
 * listing the host. */
#define FILE_MAX_INPUTS 10000

static const char *const file_keys[] = {
  "source", "content", "destination", "mode", "owner", NULL,
};
static const char *const file_path_keys[] = {"source", NULL};

static void file_free(void *opaque) {
  struct file_config *c = opaque;
  if (c == NULL)
    return;
  for (size_t i = 0; i < c->inputs.len; i++)
    free(c->inputs.ptr[i]);
  path_list_reset(&c->inputs);
  free(c->source);
  free(c);
}

static int add_input(struct file_config *c, const char *path) {
  if (c->inputs.len >= FILE_MAX_INPUTS)
    return -1;
  char *copy = strdup(path);
  if (copy == NULL || path_list_append(&c->inputs, copy) < 0) {
    free(copy);
    return -1;
  }
  return 0;
}

/* Every regular file under dir, in name order, so step keys are stable. */
static int list_folder(struct file_config *c, const char *dir, unsigned depth) {
  struct dirent **entries = NULL;
  if (depth > 32)
    return -1;
  int n = scandir(dir, &entries, NULL, alphasort);
  if (n < 0)
    return -1;
  int r = 0;
  for (int i = 0; i < n; i++) {
    const char *name = entries[i]->d_name;
    char *path = NULL;
    struct stat st;
    if (r == 0 && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
        asprintf(&path, "%s/%s", dir, name) >= 0 && lstat(path, &st) == 0) {
      if (S_ISDIR(st.st_mode))
        r = list_folder(c, path, depth + 1);
      else if (S_ISREG(st.st_mode))
        r = add_input(c, path);
    }
    free(path);
    free(entries[i]);
  }
  free(entries);
  return r;
}

static int file_config(struct vab_ctx *ctx, const struct vab_node *spec,
                       const char *template_dir, void **out) {
  struct file_config *c = calloc(1, sizeof *c);
  if (c == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  c->mark = spec->mark;
  c->mode = 0644;
  c->owner = "root:root";
  int r = prov_exactly_one(ctx, spec, "file", "source", "content");
  if (prov_host_path(ctx, spec, "source", "source", template_dir, &c->source,
                     &c->source_written, &c->source_mark) < 0)
    r = -1;
  if (prov_string(ctx, spec, "content", "content", &c->content, NULL) < 0)
    r = -1;
  if (prov_string(ctx, spec, "destination", "destination", &c->destination,
                  &c->destination_mark) < 0)
    r = -1;
  if (prov_string(ctx, spec, "mode", "mode", &c->mode_text, &c->mode_mark) < 0)
    r = -1;
  /* A bad mode is check()'s to report, with the step's other problems. */
  if (c->mode_text != NULL)
    c->has_mode = prov_parse_mode(c->mode_text, &c->mode);
  if (prov_string(ctx, spec, "owner", "owner", &c->owner, &c->owner_mark) < 0)
    r = -1;
  if (c->source != NULL) {
    struct stat st;
    if (stat(c->source, &st) == 0 && S_ISDIR(st.st_mode)) {
      c->source_is_dir = true;
      if (list_folder(c, c->source, 0) < 0)
        r = vab_error_at(ctx, VAB_E_IO, &c->source_mark,
                         "cannot list the folder '%.200s' (more than %d files, "
                         "too deep, or unreadable)",
                         c->source_written, FILE_MAX_INPUTS);
    } else if (add_input(c, c->source) < 0) {
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
    }
  }
  if (r < 0) {
    file_free(c);
    return -1;
  }
  /* A folder keeps its files' modes unless the step gives one. */
  if (!c->source_is_dir)
    c->has_mode = true;
  *out = c;
  return 0;
}

/* user, user:group, or numeric ids. */
static bool valid_owner(const char *owner) {
  char user[64];
  const char *colon = strchr(owner, ':');
  size_t len = colon ? (size_t)(colon - owner) : strlen(owner);
  if (len == 0 || len >= sizeof user)
    return false;
  memcpy(user, owner, len);
  user[len] = '\0';
  bool numeric = strspn(user, "0123456789") == len;
  if (!numeric && !prov_valid_unix_name(user))
    return false;
  if (colon == NULL)
    return true;
  const char *group = colon + 1;
  return (group[0] != '\0' && strspn(group, "0123456789") == strlen(group)) ||
         prov_valid_unix_name(group);
}

static int file_check(struct vab_ctx *ctx, const void *opaque) {
  const struct file_config *c = opaque;
  int r = 0;
  if (c->destination == NULL)
    r = vab_error_at(ctx, VAB_E_SCHEMA, &c->mark,
                     "a file step needs 'destination', the path in the guest");
  else if (prov_check_guest_path(ctx, c->destination, &c->destination_mark,
                                 "destination") < 0)
    r = -1;
  if (c->source != NULL) {
    struct stat st;
    if (stat(c->source, &st) < 0) {
      r = vab_error_at(ctx, VAB_E_IO, &c->source_mark,
                       "source '%.200s' cannot be read: %s", c->source_written,
                       strerror(errno));
      vab_diag_hint(ctx, "relative paths start from the template's folder");
    } else if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
      r = vab_error_at(ctx, VAB_E_IO, &c->source_mark,
                       "source '%.200s' is neither a file nor a folder",
                       c->source_written);
    }
  }
  unsigned mode;
  if (c->mode_text != NULL && !prov_parse_mode(c->mode_text, &mode)) {
    r = vab_error_at(ctx, VAB_E_SCHEMA, &c->mode_mark,
                     "mode must be an octal string such as \"0644\", not '%.200s'",
                     c->mode_text);
    vab_diag_hint(ctx, "three or four digits from 0 to 7, quoted");
  }
  if (!valid_owner(c->owner)) {
    r = vab_error_at(ctx, VAB_E_SCHEMA, &c->owner_mark,
                     "owner must be USER or USER:GROUP (names or numbers), "
                     "not '%.200s'",
                     c->owner);
  }
  return r;
}

static size_t file_inputs(const void *opaque, const char **paths, size_t max) {
  const struct file_config *c = opaque;
  for (size_t i = 0; i < c->inputs.len && i < max; i++)
    paths[i] = c->inputs.ptr[i];
  return c->inputs.len;
}

/* Where a folder source is staged before it is merged into destination. */
#define FILE_STAGE "/tmp/.vab-file"

static int file_run(struct vab_ctx *ctx, const void *opaque,
                    struct vab_guest *guest) {
  const struct file_config *c = opaque;
  struct buf script = BUF_INIT;
  char *parent = strdup(c->destination);
  if (parent == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  char *slash = strrchr(parent, '/');
  if (slash == parent)
    slash[1] = '\0';
  else if (slash != NULL)
    *slash = '\0';
  int r = vab_guest_mkdir_p(guest, parent);
  free(parent);
  if (r < 0)
    return -1;

  /* The folder case copies into a staging folder (copy_in keeps the
   * source's name) and merges from there, so destination names the
   * folder that receives the source's contents. */
  const char *base = NULL;
  if (c->content != NULL) {
    r = vab_guest_write(guest, c->destination, c->content,
                        strlen(c->content));
  } else if (c->source_is_dir) {
    base = strrchr(c->source, '/');
    base = base != NULL ? base + 1 : c->source;
    r = vab_guest_mkdir_p(guest, FILE_STAGE);
    if (r == 0)
      r = vab_guest_copy_in(guest, c->source, FILE_STAGE);
  } else {
    r = vab_guest_upload(guest, c->source, c->destination);
  }
  if (r < 0)
    return vab_error_at(ctx, VAB_E_PROVISION, &c->destination_mark,
                        "file: cannot write '%.200s' in the guest",
                        c->destination);

  /* Owner names are the guest's, so chown runs in the guest.  Every value
   * is quoted and follows "--". */
  if (c->source_is_dir) {
    r = buf_puts(&script, "set -e\nmkdir -p -- ") < 0 ||
        shell_quote(&script, c->destination) < 0 ||
        buf_printf(&script, "\ncp -a -- " FILE_STAGE "/") < 0 ||
        shell_quote(&script, base) < 0 ||
        buf_puts(&script, "/. ") < 0 ||
        shell_quote(&script, c->destination) < 0 ||
        buf_puts(&script, "\nrm -rf " FILE_STAGE "\nchown -R -- ") < 0;
  } else {
    r = buf_puts(&script, "set -e\nchown -- ") < 0;
  }
  if (r == 0)
    r = shell_quote(&script, c->owner) < 0 || buf_putc(&script, ' ') < 0 ||
        shell_quote(&script, c->destination) < 0 ||
        buf_putc(&script, '\n') < 0;
  if (r == 0 && c->has_mode)
    r = buf_printf(&script, "chmod %04o -- ", c->mode) < 0 ||
        shell_quote(&script, c->destination) < 0 ||
        buf_putc(&script, '\n') < 0;
  if (r < 0) {
    buf_release(&script);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  r = vab_guest_script_at(guest, script.data, NULL, &c->mark, "file");
  buf_release(&script);
  return r;
}

const struct vab_step_type vab_step_type_file = {
  .name = "file",
  .summary = "copy a file, a folder or inline content into the guest",
  .keys = file_keys,
  .path_keys = file_path_keys,
  .flags = VAB_STEP_MAY_BOOT,   /* `booted: true`: copied over SSH */
  .config = file_config,
  .check = file_check,
  .inputs = file_inputs,
  .free = file_free,
};

const struct vab_provisioner vab_provisioner_file = {
  .name = "file",
  .run = file_run,
};
