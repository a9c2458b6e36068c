/* VHDX through `qemu-img convert -O vhdx` (docs/formats.md, VHDX: its
 * CRC-32C headers, region tables, metadata and interleaved BAT are a lot
 * of code for what qemu-img already writes correctly).
 *
 * The core hands convert_file() the temporary output path and removes it
 * if this fails.  qemu-img runs in its own process group; its `-p`
 * progress ("    (42.00/100%)") becomes vab progress, its other output
 * is kept for the error message, and a cancel kills it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/qemu-name.h"
#include "common/subprocess.h"
#include "formats/vhd/vhd.h"
#include "vab/error.h"
#include "vab/progress.h"

struct vhdx_writer {
  char subformat[16];
};

struct run_state {
  struct vab_writer *w;
  bool cancel;           /* the progress callback asked to stop */
  char output[1024];     /* qemu-img's last non-progress lines */
};

static const char *const vhdx_subformats[] = {"dynamic", "fixed", NULL};

static const struct vab_option_spec vhdx_options[] = {
  {"subformat", VAB_OPTION_ENUM, vhdx_subformats, 0, 0, "dynamic", 0,
   "qemu-img's vhdx subformat"},
  {NULL, VAB_OPTION_STRING, NULL, 0, 0, NULL, 0, NULL},
};

static struct vhdx_writer *writer_state(struct vab_writer *w) {
  if (w->priv == NULL) {
    struct vhdx_writer *s = calloc(1, sizeof *s);
    if (s == NULL) {
      vab_error(w->ctx, VAB_E_NOMEM, "vhdx: out of memory");
      return NULL;
    }
    snprintf(s->subformat, sizeof s->subformat, "dynamic");
    w->priv = s;
  }
  return w->priv;
}

/* subformat, its one option, after vhdx_options checked it. */
static int vhdx_set_option(struct vab_writer *w,
                           const struct vab_option_value *v) {
  struct vhdx_writer *s = writer_state(w);
  if (s == NULL)
    return -1;
  snprintf(s->subformat, sizeof s->subformat, "%s", v->text);
  return 0;
}

/* vab's format names as qemu-img spells them. */
static const char *qemu_format_name(const char *name) {
  if (strcmp(name, "vhd") == 0)
    return "vpc";
  return name;
}

/* Parse "    (12.34/100%)"; false for any other line. */
bool vhdx_parse_progress(const char *line, double *percent) {
  while (*line == ' ' || *line == '\t')
    line++;
  double p;
  char tail[8];
  if (sscanf(line, "(%lf/100%1[%])", &p, tail) != 2 || p < 0 || p > 100)
    return false;
  *percent = p;
  return true;
}

static void on_line(void *opaque, const char *line) {
  struct run_state *st = opaque;
  double percent;
  if (vhdx_parse_progress(line, &percent)) {
    uint64_t total = st->w->virtual_size ? st->w->virtual_size : 10000;
    uint64_t done = (uint64_t)((double)total * percent / 100.0);
    if (vab_progress(st->w->ctx, VAB_PHASE_CONVERT, "vhdx", done, total) < 0)
      st->cancel = true;
    return;
  }
  /* Keep the tail of the rest: qemu-img's error is its last line. */
  size_t have = strlen(st->output), add = strlen(line);
  if (add + 2 > sizeof st->output)
    add = sizeof st->output - 2;
  if (have + add + 2 > sizeof st->output) {
    st->output[0] = '\0';
    have = 0;
  }
  if (have > 0)
    st->output[have++] = '\n';
  memcpy(st->output + have, line, add);
  st->output[have + add] = '\0';
  vab_log(st->w->ctx, VAB_LOG_DEBUG, "qemu-img: %s", line);
}

static int should_cancel(void *opaque) {
  struct run_state *st = opaque;
  return st->cancel || vab_cancelled(st->w->ctx);
}

static int vhdx_convert_file(struct vab_writer *w, const char *src_path,
                             const char *src_format, const char *dst_path) {
  struct vhdx_writer *s = writer_state(w);
  if (s == NULL)
    return -1;
  if (!subprocess_have_program("qemu-img"))
    return vab_error(w->ctx, VAB_E_SUBPROCESS,
                     "vhdx: qemu-img is not installed (Debian: qemu-utils); "
                     "vab writes VHDX through it");
  char options[64];
  snprintf(options, sizeof options, "subformat=%s", s->subformat);
  /* "--", then names that qemu-img cannot read as options or protocols
   * ("nbd:x", "json:{...}"). */
  struct buf src = BUF_INIT, dst = BUF_INIT;
  if (qemu_file_name(&src, src_path) < 0 ||
      qemu_file_name(&dst, dst_path) < 0) {
    buf_release(&src);
    buf_release(&dst);
    return vab_error(w->ctx, VAB_E_NOMEM, "out of memory");
  }
  const char *argv[16];
  size_t n = 0;
  argv[n++] = "qemu-img";
  argv[n++] = "convert";
  argv[n++] = "-p";
  if (src_format != NULL) {
    argv[n++] = "-f";
    argv[n++] = qemu_format_name(src_format);
  }
  argv[n++] = "-O";
  argv[n++] = "vhdx";
  argv[n++] = "-o";
  argv[n++] = options;
  argv[n++] = "--";
  argv[n++] = src.data;
  argv[n++] = dst.data;
  argv[n] = NULL;

  struct run_state st = {.w = w};
  struct subprocess proc;
  struct subprocess_opts opts = SUBPROCESS_OPTS_INIT;
  int started = subprocess_start(&proc, (char *const *)argv, &opts);
  int start_errno = errno;
  buf_release(&src);
  buf_release(&dst);
  if (started < 0)
    return vab_error_errno(w->ctx, VAB_E_SUBPROCESS, start_errno,
                           "vhdx: cannot start qemu-img");
  int status = 0;
  if (subprocess_wait(&proc, on_line, &st, should_cancel, &st, 0, &status) <
      0) {
    if (errno == ECANCELED)  /* vab_progress() recorded it if st.cancel */
      return st.cancel ? -1
                       : vab_error(w->ctx, VAB_E_CANCELLED,
                                   "vhdx: qemu-img convert cancelled");
    return vab_error_errno(w->ctx, VAB_E_SUBPROCESS, errno,
                           "vhdx: waiting for qemu-img failed");
  }
  if (status != 0) {
    char how[128];
    subprocess_describe_status(status, how, sizeof how);
    return vab_error(w->ctx, VAB_E_SUBPROCESS,
                     "vhdx: qemu-img convert of '%s' to '%s' failed (%s)%s%s",
                     src_path, w->path, how, st.output[0] ? ": " : "", st.output);
  }
  if (vab_progress(w->ctx, VAB_PHASE_CONVERT, "vhdx", w->virtual_size,
                   w->virtual_size) < 0)
    return -1;
  return 0;
}

static void vhdx_free(struct vab_writer *w) {
  free(w->priv);
  w->priv = NULL;
}

const struct vab_format vab_format_vhdx = {
    .name = "vhdx",
    .extension = "vhdx",
    .description = "Microsoft VHDX (Hyper-V generation 2), via qemu-img",
    .caps = VAB_FMT_WRITE | VAB_FMT_SPARSE | VAB_FMT_EXTERNAL,
    .options = vhdx_options,
    .set_option = vhdx_set_option,
    .free = vhdx_free,
    .convert_file = vhdx_convert_file,
};
