/* Disk checkpoints (see chain.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "builder/chain.h"
#include "builder/cache.h"
#include "common/cleanup.h"
#include "common/qemu-name.h"
#include "common/subprocess.h"

/* ---- state ---- */

static const char *const state_fields[] = {
  "base", "base-sha256", "root-device", "root-fstype", "root-uuid",
  "esp-device", "esp-uuid", "guest-os", "root-offset",
};
#define N_STATE_FIELDS (sizeof state_fields / sizeof *state_fields)

struct state_slot {
  char *value;
  size_t size;
};

static void state_slots(struct vab_chain_state *s, struct state_slot *slots) {
  struct state_slot all[N_STATE_FIELDS] = {
    {s->base, sizeof s->base},
    {s->base_sha256, sizeof s->base_sha256},
    {s->layout.root_device, sizeof s->layout.root_device},
    {s->layout.root_fstype, sizeof s->layout.root_fstype},
    {s->layout.root_uuid, sizeof s->layout.root_uuid},
    {s->layout.esp_device, sizeof s->layout.esp_device},
    {s->layout.esp_uuid, sizeof s->layout.esp_uuid},
    {s->guest_os, sizeof s->guest_os},
    {s->root_offset, sizeof s->root_offset},
  };
  memcpy(slots, all, sizeof all);
}

/* A value is one printable word. */
static bool word_valid(const char *s, size_t len) {
  if (len == 0)
    return false;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
      return false;
  return true;
}

int vab_chain_state_parse(const char *text, size_t len,
                          struct vab_chain_state *state, char *err,
                          size_t err_len) {
  memset(state, 0, sizeof *state);
  struct state_slot slots[N_STATE_FIELDS];
  state_slots(state, slots);
  if (len > VAB_CHAIN_MAX_STATE || memchr(text, '\0', len) != NULL) {
    snprintf(err, err_len, "not a state record");
    return -1;
  }
  const char *p = text, *end = text + len;
  for (size_t line = 1; line <= N_STATE_FIELDS + 1; line++) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL) {
      snprintf(err, err_len, "line %zu: missing or unterminated", line);
      return -1;
    }
    size_t n = (size_t)(nl - p);
    if (line == 1) {
      if (n != strlen("vab-disk 1") || memcmp(p, "vab-disk 1", n) != 0) {
        snprintf(err, err_len, "line 1: not 'vab-disk 1'");
        return -1;
      }
    } else {
      struct state_slot *slot = &slots[line - 2];
      const char *name = state_fields[line - 2];
      size_t name_len = strlen(name);
      if (n <= name_len + 1 || memcmp(p, name, name_len) != 0 ||
          p[name_len] != ' ') {
        snprintf(err, err_len, "line %zu: expected '%s VALUE'", line, name);
        return -1;
      }
      const char *v = p + name_len + 1;
      size_t vlen = n - name_len - 1;
      if (!word_valid(v, vlen) || vlen >= slot->size) {
        snprintf(err, err_len, "line %zu: bad %s", line, name);
        return -1;
      }
      if (!(vlen == 1 && v[0] == '-')) {
        memcpy(slot->value, v, vlen);
        slot->value[vlen] = '\0';
      }
    }
    p = nl + 1;
  }
  if (p != end) {
    snprintf(err, err_len, "line %zu: unexpected", N_STATE_FIELDS + 2);
    return -1;
  }
  /* The root's first byte, for the host's e2fsprogs (reproducible.h). */
  if (state->root_offset[0] != '\0') {
    char *num_end = NULL;
    errno = 0;
    unsigned long long off = strtoull(state->root_offset, &num_end, 10);
    if (errno != 0 || *num_end != '\0' || state->root_offset[0] == '-' ||
        state->root_offset[0] == '+') {
      snprintf(err, err_len, "line %zu: bad root-offset", N_STATE_FIELDS + 1);
      return -1;
    }
    state->layout.root_offset = (uint64_t)off;
  }
  if (state->base[0] != '\0' && !vab_cache_key_valid(state->base)) {
    snprintf(err, err_len, "line 2: base is not a key");
    return -1;
  }
  if ((state->base[0] == '\0') != (state->base_sha256[0] == '\0') ||
      (state->base_sha256[0] != '\0' &&
       !vab_cache_key_valid(state->base_sha256))) {
    snprintf(err, err_len, "line 3: bad base-sha256");
    return -1;
  }
  return 0;
}

int vab_chain_state_format(const struct vab_chain_state *state,
                           struct buf *out) {
  struct vab_chain_state copy = *state;
  if (copy.layout.root_offset != 0)
    snprintf(copy.root_offset, sizeof copy.root_offset, "%llu",
             (unsigned long long)copy.layout.root_offset);
  else
    copy.root_offset[0] = '\0';
  struct state_slot slots[N_STATE_FIELDS];
  state_slots(&copy, slots);
  if (buf_printf(out, "vab-disk 1\n") < 0)
    return -1;
  for (size_t i = 0; i < N_STATE_FIELDS; i++) {
    size_t n = strnlen(slots[i].value, slots[i].size);
    if (n == slots[i].size || (n > 0 && !word_valid(slots[i].value, n)) ||
        (n == 1 && slots[i].value[0] == '-'))
      return -1;
    if (buf_printf(out, "%s %s\n", state_fields[i],
                   n > 0 ? slots[i].value : "-") < 0)
      return -1;
  }
  return 0;
}

/* ---- qemu-img ---- */

static int cancel_cb(void *opaque) { return vab_cancelled(opaque); }

static void log_line_cb(void *opaque, const char *line) {
  vab_log(opaque, VAB_LOG_DEBUG, "qemu-img: %s", line);
}

static int run_qemu_img(struct vab_ctx *ctx, char *const argv[],
                        const char *what) {
  struct subprocess p;
  if (subprocess_start(&p, argv, NULL) < 0)
    return vab_error_errno(ctx, VAB_E_SUBPROCESS, errno,
                           "cannot run qemu-img");
  int status = 0;
  if (subprocess_wait(&p, log_line_cb, ctx, cancel_cb, ctx, 0, &status) < 0) {
    if (errno == ECANCELED)
      return vab_check_cancel(ctx);
    return vab_error_errno(ctx, VAB_E_SUBPROCESS, errno, "qemu-img %s failed",
                           what);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    char how[96];
    subprocess_describe_status(status, how, sizeof how);
    return vab_error(ctx, VAB_E_SUBPROCESS,
                     "qemu-img %s failed (%s); the build log has its output",
                     what, how);
  }
  return 0;
}

int vab_chain_create(struct vab_ctx *ctx, const char *path, uint64_t size) {
  struct buf name = BUF_INIT;
  char size_arg[32];
  snprintf(size_arg, sizeof size_arg, "%llu", (unsigned long long)size);
  if (qemu_file_name(&name, path) < 0)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  char *argv[] = {"qemu-img", "create", "-q", "-f", "qcow2", "--", name.data,
                  size_arg, NULL};
  CLEANUP_FREE char *what = NULL;
  int r = asprintf(&what, "create of '%s'", path) < 0
              ? vab_error(ctx, VAB_E_NOMEM, "out of memory")
              : run_qemu_img(ctx, argv, what);
  buf_release(&name);
  return r;
}

int vab_chain_overlay(struct vab_ctx *ctx, const char *backing,
                      const char *overlay) {
  struct buf name = BUF_INIT;
  if (qemu_file_name(&name, overlay) < 0)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  char *argv[] = {"qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
                  "-b", (char *)backing, "--", name.data, NULL};
  CLEANUP_FREE char *what = NULL;
  int r = asprintf(&what, "create of an overlay '%s' of '%s'", overlay,
                   backing) < 0
              ? vab_error(ctx, VAB_E_NOMEM, "out of memory")
              : run_qemu_img(ctx, argv, what);
  buf_release(&name);
  return r;
}

int vab_chain_rebase(struct vab_ctx *ctx, const char *image,
                     const char *backing) {
  struct buf name = BUF_INIT;
  if (qemu_file_name(&name, image) < 0)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  char *argv[] = {"qemu-img", "rebase", "-q", "-u", "-f", "qcow2", "-F",
                  "qcow2", "-b", (char *)backing, "--", name.data, NULL};
  CLEANUP_FREE char *what = NULL;
  int r = asprintf(&what, "rebase of '%s' onto '%s'", image, backing) < 0
              ? vab_error(ctx, VAB_E_NOMEM, "out of memory")
              : run_qemu_img(ctx, argv, what);
  buf_release(&name);
  return r;
}

int vab_chain_flatten(struct vab_ctx *ctx, const char *src,
                      const char *src_format, const char *dst) {
  return vab_chain_convert(ctx, src, src_format, dst, "qcow2");
}

int vab_chain_convert(struct vab_ctx *ctx, const char *src,
                      const char *src_format, const char *dst,
                      const char *dst_format) {
  struct buf in = BUF_INIT, out = BUF_INIT;
  if (qemu_file_name(&in, src) < 0 || qemu_file_name(&out, dst) < 0) {
    buf_release(&in);
    buf_release(&out);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  char *argv[] = {"qemu-img", "convert", "-f", (char *)src_format, "-O",
                  (char *)dst_format, "--", in.data, out.data, NULL};
  CLEANUP_FREE char *what = NULL;
  int r = asprintf(&what, "convert of '%s' to '%s'", src, dst) < 0
              ? vab_error(ctx, VAB_E_NOMEM, "out of memory")
              : run_qemu_img(ctx, argv, what);
  buf_release(&in);
  buf_release(&out);
  return r;
}

/* ---- copies ---- */

/* Copy [off, off+len) with copy_file_range, falling back to read/write. */
static int copy_range(int in, int out, off_t off, off_t len) {
  while (len > 0) {
    off_t in_off = off, out_off = off;
    ssize_t n = copy_file_range(in, &in_off, out, &out_off, (size_t)len, 0);
    if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL ||
                  errno == EOPNOTSUPP)) {
      char block[1 << 16];
      size_t want = len < (off_t)sizeof block ? (size_t)len : sizeof block;
      n = pread(in, block, want, off);
      /* A short write (a full disk) advances by what was written; the
       * next write then fails with the real errno (ENOSPC). */
      if (n > 0)
        n = pwrite(out, block, (size_t)n, off);
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    if (n == 0) {
      errno = EIO;   /* the file shrank under us */
      return -1;
    }
    off += n;
    len -= n;
  }
  return 0;
}

int vab_chain_copy(struct vab_ctx *ctx, const char *src, const char *dst,
                   bool link_ok) {
  if (link_ok && link(src, dst) == 0)
    return 0;
  CLEANUP_CLOSE int in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot open '%s'", src);
  struct stat st;
  if (fstat(in, &st) < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot stat '%s'", src);
  CLEANUP_CLOSE int out =
      open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (out < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot create '%s'", dst);
  /* Only the data extents: a qcow2 being written has holes in it. */
  off_t off = 0;
  int r = 0;
  while (r == 0 && off < st.st_size) {
    off_t data = lseek(in, off, SEEK_DATA);
    if (data < 0 && errno == ENXIO)
      break;
    if (data < 0) {
      data = off;   /* no SEEK_DATA: copy everything */
    }
    off_t hole = lseek(in, data, SEEK_HOLE);
    if (hole < 0)
      hole = st.st_size;
    if (copy_range(in, out, data, hole - data) < 0)
      r = vab_error_errno(ctx, VAB_E_IO, errno, "cannot copy '%s' to '%s'",
                          src, dst);
    off = hole;
    if (r == 0 && vab_check_cancel(ctx) < 0)
      r = -1;
  }
  if (r == 0 && ftruncate(out, st.st_size) < 0)
    r = vab_error_errno(ctx, VAB_E_IO, errno, "cannot size '%s'", dst);
  if (r < 0)
    unlink(dst);
  return r;
}
