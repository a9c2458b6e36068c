/* The fake guest (see fake-guest.h).  Out of memory aborts: it is a test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/vector.h"
#include "tests/provisioners/fake-guest.h"

enum entry_kind { ENTRY_FILE, ENTRY_DIR, ENTRY_LINK };

struct entry {
  enum entry_kind kind;
  char *path;
  char *data;        /* file: the content; link: the target */
  size_t len;
};

struct script_result {
  size_t nth;
  int status;
  char *tail;
};

DEFINE_VECTOR_TYPE(entry_list, struct entry);
DEFINE_VECTOR_TYPE(call_list, struct fake_call);
DEFINE_VECTOR_TYPE(result_list, struct script_result);

struct fake_guest {
  struct vab_guest base;
  struct entry_list entries;
  struct call_list calls;
  struct result_list results;
  size_t n_scripts;
  const char *tail;          /* of the last script */
  char *fail_op;             /* the next call of it fails */
  bool booted;               /* answers ssh_endpoint and reboot */
  struct vab_guest_ssh ssh;
};

static struct fake_guest *fake_of(struct vab_guest *g) {
  return (struct fake_guest *)g;
}

static void *must(void *p) {
  if (p == NULL) {
    fprintf(stderr, "fake guest: out of memory\n");
    abort();
  }
  return p;
}

static char *copy_bytes(const void *data, size_t len) {
  char *p = must(malloc(len + 1));
  if (len > 0)
    memcpy(p, data, len);
  p[len] = '\0';
  return p;
}

static char *copy_string(const char *s) {
  return s != NULL ? copy_bytes(s, strlen(s)) : NULL;
}

static struct fake_call *record(struct fake_guest *f, const char *op,
                                const char *path) {
  struct fake_call call = {.op = op, .path = copy_string(path)};
  if (call_list_append(&f->calls, call) < 0)
    must(NULL);
  return &f->calls.ptr[f->calls.len - 1];
}

/* A call the test asked to fail: recorded, then an error. */
static bool failing(struct fake_guest *f, const char *op) {
  if (f->fail_op == NULL || strcmp(f->fail_op, op) != 0)
    return false;
  free(f->fail_op);
  f->fail_op = NULL;
  vab_error(f->base.ctx, VAB_E_GUEST, "fake guest: %s failed", op);
  return true;
}

static struct entry *lookup(const struct fake_guest *f, const char *path) {
  for (size_t i = 0; i < f->entries.len; i++)
    if (strcmp(f->entries.ptr[i].path, path) == 0)
      return &f->entries.ptr[i];
  return NULL;
}

static void put(struct fake_guest *f, enum entry_kind kind, const char *path,
                const void *data, size_t len) {
  struct entry *e = lookup(f, path);
  if (e == NULL) {
    struct entry fresh = {.path = copy_string(path)};
    if (entry_list_append(&f->entries, fresh) < 0)
      must(NULL);
    e = &f->entries.ptr[f->entries.len - 1];
  } else {
    free(e->data);
  }
  e->kind = kind;
  e->data = data != NULL ? copy_bytes(data, len) : NULL;
  e->len = len;
}

static int fake_write(struct vab_guest *g, const char *path, const void *data,
                      size_t len) {
  struct fake_guest *f = fake_of(g);
  struct fake_call *c = record(f, "write", path);
  c->arg = copy_bytes(data, len);
  c->arg_len = len;
  if (failing(f, "write"))
    return -1;
  put(f, ENTRY_FILE, path, data, len);
  return 0;
}

static int fake_upload(struct vab_guest *g, const char *host_path,
                       const char *path) {
  struct fake_guest *f = fake_of(g);
  struct fake_call *c = record(f, "upload", path);
  c->arg = copy_string(host_path);
  c->arg_len = strlen(host_path);
  if (failing(f, "upload"))
    return -1;
  FILE *in = fopen(host_path, "rb");
  if (in == NULL)
    return vab_error(f->base.ctx, VAB_E_GUEST, "fake guest: upload: no %s",
                     host_path);
  char *data = NULL;
  size_t len = 0, alloc = 0, n;
  char chunk[4096];
  while ((n = fread(chunk, 1, sizeof chunk, in)) > 0) {
    if (len + n > alloc) {
      alloc = (len + n) * 2;
      data = must(realloc(data, alloc));
    }
    memcpy(data + len, chunk, n);
    len += n;
  }
  fclose(in);
  put(f, ENTRY_FILE, path, data != NULL ? data : "", len);
  free(data);
  return 0;
}

static int fake_copy_in(struct vab_guest *g, const char *host_path,
                        const char *dir) {
  struct fake_guest *f = fake_of(g);
  struct fake_call *c = record(f, "copy_in", dir);
  c->arg = copy_string(host_path);
  c->arg_len = strlen(host_path);
  return failing(f, "copy_in") ? -1 : 0;
}

static int fake_read(struct vab_guest *g, const char *path, char **data,
                     size_t *len) {
  struct fake_guest *f = fake_of(g);
  record(f, "read", path);
  if (failing(f, "read"))
    return -1;
  const struct entry *e = lookup(f, path);
  if (e == NULL || e->kind != ENTRY_FILE)
    return vab_error(f->base.ctx, VAB_E_GUEST, "fake guest: read: no %s",
                     path);
  *data = copy_bytes(e->data, e->len);
  if (len != NULL)
    *len = e->len;
  return 0;
}

static int fake_mkdir_p(struct vab_guest *g, const char *path) {
  struct fake_guest *f = fake_of(g);
  record(f, "mkdir_p", path);
  if (failing(f, "mkdir_p"))
    return -1;
  if (lookup(f, path) == NULL)
    put(f, ENTRY_DIR, path, NULL, 0);
  return 0;
}

static int fake_chmod(struct vab_guest *g, unsigned mode, const char *path) {
  struct fake_guest *f = fake_of(g);
  record(f, "chmod", path)->mode = mode;
  return failing(f, "chmod") ? -1 : 0;
}

static int fake_exists(struct vab_guest *g, const char *path, bool *exists) {
  struct fake_guest *f = fake_of(g);
  record(f, "exists", path);
  if (failing(f, "exists"))
    return -1;
  *exists = lookup(f, path) != NULL;
  return 0;
}

static int fake_rm_rf(struct vab_guest *g, const char *path) {
  struct fake_guest *f = fake_of(g);
  record(f, "rm_rf", path);
  if (failing(f, "rm_rf"))
    return -1;
  size_t len = strlen(path), kept = 0;
  for (size_t i = 0; i < f->entries.len; i++) {
    struct entry *e = &f->entries.ptr[i];
    bool under = strncmp(e->path, path, len) == 0 &&
                 (e->path[len] == '\0' || e->path[len] == '/');
    if (under) {
      free(e->path);
      free(e->data);
    } else {
      f->entries.ptr[kept++] = *e;
    }
  }
  f->entries.len = kept;
  return 0;
}

static int fake_symlink(struct vab_guest *g, const char *target,
                        const char *linkname) {
  struct fake_guest *f = fake_of(g);
  struct fake_call *c = record(f, "symlink", linkname);
  c->arg = copy_string(target);
  c->arg_len = strlen(target);
  if (failing(f, "symlink"))
    return -1;
  put(f, ENTRY_LINK, linkname, target, strlen(target));
  return 0;
}

static int fake_script(struct vab_guest *g, const char *script,
                       const char *const *env, int *status) {
  struct fake_guest *f = fake_of(g);
  struct fake_call *c = record(f, "script", NULL);
  c->arg = copy_string(script);
  c->arg_len = strlen(script);
  size_t n_env = 0;
  while (env != NULL && env[n_env] != NULL)
    n_env++;
  c->env = must(calloc(n_env + 1, sizeof *c->env));
  for (size_t i = 0; i < n_env; i++)
    c->env[i] = copy_string(env[i]);
  size_t nth = f->n_scripts++;
  f->tail = "";
  if (failing(f, "script"))
    return -1;
  c->status = 0;
  for (size_t i = 0; i < f->results.len; i++)
    if (f->results.ptr[i].nth == nth) {
      c->status = f->results.ptr[i].status;
      f->tail = f->results.ptr[i].tail;
    }
  *status = c->status;
  return 0;
}

static const char *fake_output_tail(const struct vab_guest *g) {
  return ((const struct fake_guest *)g)->tail;
}

static int fake_ssh_endpoint(struct vab_guest *g, struct vab_guest_ssh *ssh) {
  struct fake_guest *f = fake_of(g);
  record(f, "ssh_endpoint", NULL);
  if (failing(f, "ssh_endpoint"))
    return -1;
  if (!f->booted)
    return vab_error(g->ctx, VAB_E_GUEST, "fake guest: not booted");
  *ssh = f->ssh;
  return 0;
}

static int fake_reboot(struct vab_guest *g) {
  struct fake_guest *f = fake_of(g);
  record(f, "reboot", NULL);
  if (failing(f, "reboot"))
    return -1;
  if (!f->booted)
    return vab_error(g->ctx, VAB_E_GUEST, "fake guest: not booted");
  return 0;
}

static const struct vab_guest_ops fake_ops = {
  .name = "fake",
  .write = fake_write,
  .upload = fake_upload,
  .copy_in = fake_copy_in,
  .read = fake_read,
  .mkdir_p = fake_mkdir_p,
  .chmod = fake_chmod,
  .exists = fake_exists,
  .rm_rf = fake_rm_rf,
  .symlink = fake_symlink,
  .script = fake_script,
  .output_tail = fake_output_tail,
  .ssh_endpoint = fake_ssh_endpoint,
  .reboot = fake_reboot,
};

void fake_guest_set_booted(struct fake_guest *f,
                           const struct vab_guest_ssh *ssh) {
  f->booted = true;
  f->ssh = *ssh;
}

struct fake_guest *fake_guest_new(struct vab_ctx *ctx) {
  struct fake_guest *f = must(calloc(1, sizeof *f));
  f->base.ops = &fake_ops;
  f->base.ctx = ctx;
  f->tail = "";
  return f;
}

void fake_guest_free(struct fake_guest *f) {
  if (f == NULL)
    return;
  for (size_t i = 0; i < f->entries.len; i++) {
    free(f->entries.ptr[i].path);
    free(f->entries.ptr[i].data);
  }
  entry_list_reset(&f->entries);
  for (size_t i = 0; i < f->calls.len; i++) {
    struct fake_call *c = &f->calls.ptr[i];
    free(c->path);
    free(c->arg);
    for (size_t j = 0; c->env != NULL && c->env[j] != NULL; j++)
      free(c->env[j]);
    free(c->env);
  }
  call_list_reset(&f->calls);
  for (size_t i = 0; i < f->results.len; i++)
    free(f->results.ptr[i].tail);
  result_list_reset(&f->results);
  free(f->fail_op);
  free(f);
}

struct vab_guest *fake_guest_handle(struct fake_guest *f) { return &f->base; }

void fake_guest_add_file(struct fake_guest *f, const char *path,
                         const char *text) {
  put(f, ENTRY_FILE, path, text, strlen(text));
}

const char *fake_guest_file(const struct fake_guest *f, const char *path,
                            size_t *len) {
  const struct entry *e = lookup(f, path);
  if (e == NULL || e->kind != ENTRY_FILE)
    return NULL;
  if (len != NULL)
    *len = e->len;
  return e->data;
}

void fake_guest_script_result(struct fake_guest *f, size_t nth, int status,
                              const char *tail) {
  struct script_result r = {nth, status, copy_string(tail ? tail : "")};
  if (result_list_append(&f->results, r) < 0)
    must(NULL);
}

void fake_guest_fail(struct fake_guest *f, const char *op) {
  free(f->fail_op);
  f->fail_op = copy_string(op);
}

size_t fake_guest_call_count(const struct fake_guest *f) {
  return f->calls.len;
}

const struct fake_call *fake_guest_call(const struct fake_guest *f,
                                        size_t i) {
  return i < f->calls.len ? &f->calls.ptr[i] : NULL;
}

const struct fake_call *fake_guest_find(const struct fake_guest *f,
                                        const char *op, size_t nth) {
  for (size_t i = 0; i < f->calls.len; i++)
    if (strcmp(f->calls.ptr[i].op, op) == 0 && nth-- == 0)
      return &f->calls.ptr[i];
  return NULL;
}

size_t fake_guest_count(const struct fake_guest *f, const char *op) {
  size_t n = 0;
  for (size_t i = 0; i < f->calls.len; i++)
    n += strcmp(f->calls.ptr[i].op, op) == 0;
  return n;
}
