/* The export stage.
 *
 * For every output of the template (or those --only keeps), in template
 * order: pick its file name, convert the finished disk with the format's
 * writer (which writes a temporary file and renames it when complete),
 * check the result with the format's own reader, and hash it.  When any
 * output fails, the artifacts this run already wrote are removed, so a
 * failed export never leaves a partial set under final names. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/files.h"
#include "builder/export.h"
#include "common/clock.h"
#include "common/cleanup.h"
#include "common/fsutil.h"
#include "builder/vmdef.h"
#include "signing/signing.h"
#include "formats/ova/ova.h"
#include "signing/digest.h"
#include "vab/format.h"
#include "vab/progress.h"


static const char *output_option(const struct vab_output_spec *o,
                                 const char *key) {
  for (size_t i = 0; i < o->n_options; i++)
    if (strcmp(o->options[i].key, key) == 0)
      return o->options[i].value;
  return NULL;
}

/* The file extension an output gets: the format's, "ova", or "raw.zst"
 * for a zstd-compressed raw image (a .zst stream, not a raw disk). */
static const char *output_extension(const struct vab_output_spec *o) {
  if (strcmp(o->format, "ova") == 0)
    return "ova";
  if (strcmp(o->format, "raw") == 0) {
    const char *c = output_option(o, "compression");
    if (c != NULL && strcmp(c, "zstd") == 0)
      return "raw.zst";
  }
  const struct vab_format *f = vab_format_by_name(o->format);
  return f ? f->extension : o->format;
}

static bool plain_part(const char *s) {
  if (s == NULL || *s == '\0')
    return false;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p < 0x20 || *p == 0x7f || *p == '/' || *p == '\\')
      return false;
  return true;
}

int vab_artifact_name(struct vab_ctx *ctx, const struct vab_template *t,
                      const char *suffix, const char *ext, char **out) {
  *out = NULL;
  const char *bad = NULL;
  if (!plain_part(t->name))
    bad = "name";
  else if (!plain_part(t->version))
    bad = "version";
  else if (suffix != NULL && !plain_part(suffix))
    bad = "output target";
  else if (!plain_part(ext))
    bad = "extension";
  if (bad != NULL)
    return vab_error(ctx, VAB_E_USAGE,
                     "cannot name an artifact: the template's %s is empty or "
                     "holds '/', '\\' or control characters",
                     bad);
  char *name = NULL;
  if (asprintf(&name, "%s-%s%s%s.%s", t->name, t->version,
               suffix ? "-" : "", suffix ? suffix : "", ext) < 0)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  /* ".." anywhere, or a leading dot or dash, could be read as something
   * other than a plain file in the output folder. */
  if (strstr(name, "..") != NULL || name[0] == '.' || name[0] == '-') {
    vab_error(ctx, VAB_E_USAGE,
              "artifact name '%s' is not a plain file name "
              "(it starts with '.' or '-', or holds '..')",
              name);
    free(name);
    return -1;
  }
  *out = name;
  return 0;
}

/* The suffix that keeps output i's name apart from others with the same
 * extension: its target when that is unique among them, else its index
 * among them (1-based).  NULL when the extension is unique.  Computed on
 * the template's whole list, so --only never renames a file. */
static void output_suffix(const struct vab_template *t, size_t i, char *buf,
                          size_t len, const char **suffix) {
  const struct vab_output_spec *o = &t->outputs[i];
  const char *ext = output_extension(o);
  size_t same = 0, index = 0, same_target = 0;
  for (size_t j = 0; j < t->n_outputs; j++) {
    const struct vab_output_spec *p = &t->outputs[j];
    if (strcmp(output_extension(p), ext) != 0)
      continue;
    same++;
    if (j <= i)
      index = same;
    if (o->target != NULL && p->target != NULL &&
        strcmp(o->target, p->target) == 0)
      same_target++;
  }
  *suffix = NULL;
  if (same <= 1)
    return;
  if (o->target != NULL && same_target == 1) {
    *suffix = o->target;
    return;
  }
  snprintf(buf, len, "%zu", index);
  *suffix = buf;
}

static bool kept_by_only(const struct vab_export_opts *opts,
                         const struct vab_output_spec *o) {
  if (opts->n_only == 0)
    return true;
  for (size_t i = 0; i < opts->n_only; i++)
    if (strcmp(opts->only[i], o->format) == 0)
      return true;
  return false;
}

/* Every --only FORMAT must name a format the template outputs. */
static int check_only(struct vab_ctx *ctx, const struct vab_template *t,
                      const struct vab_export_opts *opts) {
  int r = 0;
  for (size_t i = 0; i < opts->n_only; i++) {
    bool found = false;
    for (size_t j = 0; j < t->n_outputs && !found; j++)
      found = strcmp(t->outputs[j].format, opts->only[i]) == 0;
    if (!found) {
      vab_error(ctx, VAB_E_USAGE, "--only %s: the template has no %s output",
                opts->only[i], opts->only[i]);
      r = -1;
    }
  }
  return r;
}

static int make_folder(struct vab_ctx *ctx, const char *path) {
  char failed[4096];
  if (mkdir_p(path, 0755, failed, sizeof failed) < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot create '%s'", failed);
  struct stat st;
  if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
    return vab_error(ctx, VAB_E_IO, "'%s' is not a folder", path);
  return 0;
}

/* Re-open what was written with vab's reader for that format, compare its
 * size with the source's, and run the reader's check() if it has one.
 * Formats vab cannot read back (a .zst stream) are not checked here. */
static int verify_artifact(struct vab_ctx *ctx, const char *path,
                           const char *format, uint64_t virtual_size) {
  const struct vab_format *f = vab_format_by_name(format);
  if (f == NULL || !(f->caps & VAB_FMT_READ)) {
    vab_log(ctx, VAB_LOG_DEBUG, "export: vab has no %s reader to check '%s'",
            format, path);
    return 0;
  }
  struct vab_reader *r = NULL;
  if (vab_image_open(ctx, path, format, 0, &r) < 0)
    return vab_error(ctx, VAB_E_FORMAT,
                     "'%s' was written but cannot be read back as %s", path,
                     format);
  int rc = 0;
  if (r->info.virtual_size != virtual_size)
    rc = vab_error(ctx, VAB_E_FORMAT,
                   "'%s' reads back as %llu bytes, the disk has %llu", path,
                   (unsigned long long)r->info.virtual_size,
                   (unsigned long long)virtual_size);
  if (rc == 0 && f->check != NULL) {
    struct vab_check_result check;
    memset(&check, 0, sizeof check);
    if (f->check(r, &check) < 0)
      rc = -1;
    else if (check.errors > 0)
      rc = vab_error(ctx, VAB_E_FORMAT,
                     "'%s' failed its %s check: %llu errors in %llu entries",
                     path, format, (unsigned long long)check.errors,
                     (unsigned long long)check.checked);
  }
  vab_image_close(r);
  return rc;
}

/* formats/ova asks for its .cert through this; signing/ makes it. */
static int make_ova_cert(void *opaque, struct vab_ctx *ctx, const char *mf_name,
                         const char *mf, size_t mf_len, char **cert) {
  return vab_signer_ova_cert(ctx, opaque, mf_name, mf, mf_len, cert);
}

static int convert_output(struct vab_ctx *ctx, const struct vab_template *t,
                          const struct vab_export_opts *opts,
                          const struct vab_output_spec *o, const char *path,
                          struct vab_convert_result *res) {
  struct vab_option *options = NULL;
  if (o->n_options > 0) {
    options = calloc(o->n_options, sizeof *options);
    if (options == NULL)
      return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  /* `vm` is the export stage's own (a definition beside the disk), not
   * the format writer's. */
  size_t n_options = 0;
  for (size_t i = 0; i < o->n_options; i++) {
    if (strcmp(o->options[i].key, "vm") == 0)
      continue;
    options[n_options].key = o->options[i].key;
    options[n_options].value = o->options[i].value;
    n_options++;
  }
  int r;
  if (strcmp(o->format, "ova") == 0) {
    const struct vab_hardware *thw = &t->hardware;
    struct vab_ova_hardware hw = {
        .cpus = thw->cpus,
        .memory = thw->memory,
        .nics = thw->nics,
        .disk_bus = thw->disk_bus,
        .nic_model = thw->nic_model,
        .uefi_only = t->disk.firmware == VAB_FW_UEFI,
    };
    struct vab_ova_opts ova = {
        .disk_path = opts->disk_path,
        .disk_format = opts->disk_format,
        .name = t->name,
        .target = o->target ? o->target : "vmware",
        .hardware = &hw,
        .guest_os = opts->guest_os,
        .vmdk_options = options,
        .n_vmdk_options = n_options,
        .make_cert = opts->signer != NULL ? make_ova_cert : NULL,
        .cert_opaque = opts->signer,
    };
    r = vab_ova_write(ctx, &ova, path, res);
  } else {
    struct vab_convert_opts copts = {
        .src_format = opts->disk_format,
        .dst_format = o->format,
        .options = options,
        .n_options = n_options,
    };
    r = vab_convert(ctx, opts->disk_path, path, &copts, res);
  }
  free(options);
  return r;
}

/* The `vm` definition an output asks for, or NULL. */
static const char *vm_kind(const struct vab_output_spec *o) {
  const char *vm = output_option(o, "vm");
  return vm != NULL && strcmp(vm, "none") != 0 ? vm : NULL;
}

/* Workstation opens monolithicSparse disks, not streamOptimized ones. */
static int check_vm_definition(struct vab_ctx *ctx,
                               const struct vab_output_spec *o) {
  const char *vm = vm_kind(o);
  const char *sub = output_option(o, "subformat");
  if (vm != NULL && strcmp(vm, "vmx") == 0 &&
      (sub == NULL || strcmp(sub, "monolithicSparse") != 0))
    return vab_error_at(ctx, VAB_E_SCHEMA, &o->mark, "%s",
                        VAB_VMX_NEEDS_SPARSE);
  return 0;
}

/* Write the VM definition of disk artifact `disk` as artifact `def`. */
static int write_vm_definition(struct vab_ctx *ctx,
                               const struct vab_template *t,
                               const struct vab_export_opts *opts,
                               const struct vab_output_spec *o,
                               const struct vab_artifact *disk,
                               struct vab_artifact *def) {
  const char *vm = vm_kind(o);
  const char *hw = output_option(o, "hwversion");
  struct vab_vmdef_input in = {
    .t = t, .disk_path = disk->path, .disk_format = o->format,
    .guest_os = opts->guest_os, .hwversion = hw ? (unsigned)atoi(hw) : 0,
  };
  char *text = NULL;
  const char *ext;
  int r;
  if (strcmp(vm, "libvirt") == 0) {
    ext = "xml";
    r = vab_vmdef_libvirt(ctx, &in, &text);
  } else if (strcmp(vm, "vmx") == 0) {
    ext = "vmx";
    r = vab_vmdef_vmx(ctx, &in, &text);
  } else {
    ext = "hyperv.md";
    r = vab_vmdef_hyperv(ctx, &in, &text);
  }
  if (r < 0)
    return -1;
  /* Beside its disk, named like it: web-1.0.vmdk -> web-1.0.vmx. */
  const char *dot = strrchr(disk->file_name, '.');
  size_t stem = dot ? (size_t)(dot - disk->file_name) : strlen(disk->file_name);
  if (asprintf(&def->file_name, "%.*s.%s", (int)stem, disk->file_name, ext) < 0 ||
      asprintf(&def->path, "%s/%s", opts->output_dir, def->file_name) < 0 ||
      (def->format = strdup(vm)) == NULL) {
    free(text);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  size_t len = strlen(text);
  r = vab_write_file_atomic(ctx, def->path, text, len, 0644);
  if (r == 0) {
    uint8_t sum[32];
    struct vab_sha256 *h = vab_sha256_new(ctx);
    r = h == NULL ? -1 : vab_sha256_update(h, text, len);
    if (r == 0)
      r = vab_sha256_final(h, sum);
    else
      vab_sha256_free(h);
    if (r == 0) {
      vab_hex(sum, 32, def->sha256);
      def->size = len;
      vab_log(ctx, VAB_LOG_INFO, "export: %s (%s definition)", def->file_name,
              vm);
    }
  }
  free(text);
  return r;
}

int vab_export_file_name(struct vab_ctx *ctx, const struct vab_template *t,
                         size_t index, char **out) {
  char index_buf[32];
  const char *suffix;
  output_suffix(t, index, index_buf, sizeof index_buf, &suffix);
  return vab_artifact_name(ctx, t, suffix, output_extension(&t->outputs[index]),
                           out);
}

static int export_one(struct vab_ctx *ctx, const struct vab_template *t,
                      const struct vab_export_opts *opts, size_t index,
                      uint64_t virtual_size, struct vab_artifact *a) {
  const struct vab_output_spec *o = &t->outputs[index];
  char index_buf[32];
  const char *suffix;
  output_suffix(t, index, index_buf, sizeof index_buf, &suffix);
  if (vab_artifact_name(ctx, t, suffix, output_extension(o), &a->file_name) <
      0)
    return -1;
  if (asprintf(&a->path, "%s/%s", opts->output_dir, a->file_name) < 0) {
    a->path = NULL;
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  if (check_vm_definition(ctx, o) < 0)
    return -1;
  a->format = strdup(o->format);
  a->target = o->target ? strdup(o->target) : NULL;
  if (a->format == NULL || (o->target != NULL && a->target == NULL))
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");

  vab_log(ctx, VAB_LOG_INFO, "export: writing %s", a->file_name);
  double start = now_seconds();
  struct vab_convert_result res;
  memset(&res, 0, sizeof res);
  if (convert_output(ctx, t, opts, o, a->path, &res) < 0) {
    vab_error_at(ctx, VAB_E_FORMAT, &o->mark, "export of %s failed",
                 a->file_name);
    return -1;
  }
  /* From here on the file exists under its final name. */
  const char *read_back = strcmp(o->format, "ova") == 0 ||
                                  strcmp(output_extension(o), "raw.zst") == 0
                              ? NULL
                              : o->format;
  if (read_back != NULL &&
      verify_artifact(ctx, a->path, read_back, virtual_size) < 0)
    return 1;
  struct stat st;
  if (stat(a->path, &st) < 0) {
    vab_error_errno(ctx, VAB_E_IO, errno, "cannot stat '%s'", a->path);
    return 1;
  }
  a->size = (uint64_t)st.st_size;
  uint8_t sum[32];
  if (vab_sha256_file(ctx, a->path, sum) < 0)
    return 1;
  vab_hex(sum, 32, a->sha256);
  a->seconds = now_seconds() - start;
  vab_log(ctx, VAB_LOG_INFO, "export: %s, %llu bytes, sha256 %s, %.1f s",
          a->file_name, (unsigned long long)a->size, a->sha256, a->seconds);
  return 0;
}

int vab_export_outputs(struct vab_ctx *ctx, const struct vab_template *t,
                       const struct vab_export_opts *opts,
                       struct vab_artifact **artifacts, size_t *n_artifacts) {
  *artifacts = NULL;
  *n_artifacts = 0;
  if (check_only(ctx, t, opts) < 0)
    return -1;
  if (make_folder(ctx, opts->output_dir) < 0)
    return -1;

  struct vab_reader *src = NULL;
  if (vab_image_open(ctx, opts->disk_path, opts->disk_format, 0, &src) < 0)
    return -1;
  uint64_t virtual_size = src->info.virtual_size;
  vab_image_close(src);

  /* Room for each output and its VM definition. */
  struct vab_artifact *list = calloc(t->n_outputs ? 2 * t->n_outputs : 1,
                                     sizeof *list);
  if (list == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  size_t n = 0;
  bool failed = false;
  for (size_t i = 0; i < t->n_outputs && !failed; i++) {
    if (!kept_by_only(opts, &t->outputs[i]) ||
        (opts->skip != NULL && opts->skip[i]))
      continue;
    if (vab_check_cancel(ctx) < 0) {
      failed = true;
      break;
    }
    struct vab_artifact *a = &list[n];
    double started = now_seconds();
    int r = export_one(ctx, t, opts, i, virtual_size, a);
    /* r == 1: written under its final name, then found wrong. */
    if (r == 0 || r == 1)
      n++;
    if (r != 0)
      failed = true;
    if (r < 0) {
      free(a->path);
      free(a->file_name);
      free(a->format);
      free(a->target);
      memset(a, 0, sizeof *a);
    }
    if (r == 0 && vm_kind(&t->outputs[i]) != NULL) {
      struct vab_artifact *def = &list[n];
      if (write_vm_definition(ctx, t, opts, &t->outputs[i], a, def) < 0) {
        failed = true;
        if (def->path != NULL)
          unlink(def->path);
        free(def->path);
        free(def->file_name);
        free(def->format);
        memset(def, 0, sizeof *def);
      } else {
        n++;
      }
    }
    if (opts->output_seconds != NULL)
      opts->output_seconds[i] = now_seconds() - started;
  }
  if (failed) {
    for (size_t i = 0; i < n; i++) {
      if (unlink(list[i].path) == 0)
        vab_log(ctx, VAB_LOG_INFO, "export: removed %s", list[i].file_name);
    }
    vab_artifacts_free(list, n);
    return -1;
  }
  *artifacts = list;
  *n_artifacts = n;
  return 0;
}

void vab_artifacts_free(struct vab_artifact *a, size_t n) {
  if (a == NULL)
    return;
  for (size_t i = 0; i < n; i++) {
    free(a[i].path);
    free(a[i].file_name);
    free(a[i].format);
    free(a[i].target);
  }
  free(a);
}
