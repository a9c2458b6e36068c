/* The source stage (see source.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>

#include "vab/format.h"
#include "vab/progress.h"
#include "common/buf.h"
#include "common/fsutil.h"
#include "common/cleanup.h"
#include "common/debian.h"
#include "common/subprocess.h"
#include "signing/digest.h"
#include "builder/cache.h"
#include "builder/source.h"

/* Changing this list changes what a bootstrap produces: builder/plan.c
 * hashes it into the source step's key, which is the entry's key. */
const char *const vab_bootstrap_base_packages[] = {
  "linux-image-amd64",    /* the kernel and its initramfs */
  "grub-pc-bin",          /* GRUB for BIOS */
  "grub-efi-amd64-bin",   /* GRUB for UEFI */
  "grub2-common",         /* grub-install, update-grub */
  "systemd-sysv",         /* systemd as init */
  "systemd-resolved",     /* DNS for the DHCP that systemd-networkd does */
  NULL,
};

#define TAIL_LINES 12

char *vab_default_cache_dir(void) {
  const char *xdg = getenv("XDG_CACHE_HOME");
  char *out = NULL;
  if (xdg != NULL && xdg[0] == '/') {
    if (asprintf(&out, "%s/vab", xdg) < 0)
      return NULL;
    return out;
  }
  const char *home = getenv("HOME");
  if (home == NULL || home[0] != '/')
    home = "/var/tmp";
  if (asprintf(&out, "%s/.cache/vab", home) < 0)
    return NULL;
  return out;
}

void vab_source_result_release(struct vab_source_result *result) {
  free(result->tarball);
  result->tarball = NULL;
}


/* "sha256:<64 hex>" against the file's digest. */
static int verify_checksum(struct vab_ctx *ctx, const struct vab_source *src,
                           const char *what) {
  if (src->checksum == NULL) {
    vab_warn_at(ctx, &src->mark, "%s '%s' has no checksum: not verified", what,
                src->path);
    return 0;
  }
  if (strncmp(src->checksum, "sha256:", 7) != 0 ||
      strlen(src->checksum + 7) != 64)
    return vab_error_at(ctx, VAB_E_SCHEMA, &src->mark,
                        "checksum must be 'sha256:' and 64 hex digits");
  vab_log(ctx, VAB_LOG_INFO, "verifying the checksum of %s", src->path);
  uint8_t digest[32];
  char hex[65];
  if (vab_sha256_file(ctx, src->path, digest) < 0)
    return -1;
  vab_hex(digest, sizeof digest, hex);
  if (strcasecmp(hex, src->checksum + 7) != 0) {
    vab_error_at(ctx, VAB_E_FORMAT, &src->mark,
                 "checksum mismatch for %s '%s'", what, src->path);
    vab_diag_hint(ctx, "expected sha256:%s, the file has sha256:%s",
                  src->checksum + 7, hex);
    return -1;
  }
  return 0;
}

/* mmdebstrap's output: everything to the log, the last lines kept for an
 * error, and its "I: ..." milestones as progress. */
struct bootstrap_watch {
  struct vab_ctx *ctx;
  char *tail[TAIL_LINES];
  size_t next;
};

static void bootstrap_line(void *opaque, const char *line) {
  struct bootstrap_watch *w = opaque;
  vab_log(w->ctx, VAB_LOG_DEBUG, "mmdebstrap: %s", line);
  free(w->tail[w->next]);
  w->tail[w->next] = strdup(line);
  w->next = (w->next + 1) % TAIL_LINES;
  if (strncmp(line, "I: ", 3) == 0 && !vab_cancelled(w->ctx) &&
      vab_progress(w->ctx, VAB_PHASE_SOURCE, line + 3, 0, 0) < 0)
    vab_ctx_cancel(w->ctx);
}

static int bootstrap_cancel(void *opaque) {
  return vab_cancelled(opaque);
}

/* mmdebstrap writes the tarball itself, so a full cache folder reaches vab
 * only as its message ("cannot copy to TARGET: No space left on device"). */
static bool watch_saw_full_target(const struct bootstrap_watch *w,
                                  const char *target) {
  const char *full = strerror(ENOSPC);
  for (size_t i = 0; i < TAIL_LINES; i++)
    if (w->tail[i] != NULL && strstr(w->tail[i], target) != NULL &&
        strstr(w->tail[i], full) != NULL)
      return true;
  return false;
}

static void watch_release(struct bootstrap_watch *w, struct buf *tail) {
  for (size_t i = 0; i < TAIL_LINES; i++) {
    const char *line = w->tail[(w->next + i) % TAIL_LINES];
    if (line != NULL && tail != NULL) {
      if (tail->len > 0)
        buf_putc(tail, '\n');
      buf_puts(tail, line);
    }
  }
  for (size_t i = 0; i < TAIL_LINES; i++)
    free(w->tail[i]);
}

/* Append "a,b,c": vab's packages, then the template's. */
static int join_packages(struct buf *b, const struct vab_source *src) {
  for (size_t i = 0; vab_bootstrap_base_packages[i] != NULL; i++)
    if ((i > 0 && buf_putc(b, ',') < 0) ||
        buf_puts(b, vab_bootstrap_base_packages[i]) < 0)
      return -1;
  for (size_t i = 0; i < src->n_packages; i++)
    if (buf_putc(b, ',') < 0 || buf_puts(b, src->packages[i]) < 0)
      return -1;
  return 0;
}

/* The schema checked these with their locations; this is the last line
 * before they reach a root process's command line. */
static int check_bootstrap_values(struct vab_ctx *ctx,
                                  const struct vab_source *src,
                                  const char *suite, const char *mirror,
                                  const char *variant) {
  if (!deb_valid_suite(suite))
    return vab_error_at(ctx, VAB_E_SCHEMA, &src->mark,
                        "'%.200s' is not a suite name such as bookworm",
                        suite);
  if (!deb_valid_mirror(mirror))
    return vab_error_at(ctx, VAB_E_SCHEMA, &src->mark,
                        "'%.200s' is not a mirror URL", mirror);
  if (!deb_valid_variant(variant))
    return vab_error_at(ctx, VAB_E_SCHEMA, &src->mark,
                        "'%.200s' is not an mmdebstrap variant", variant);
  for (size_t i = 0; i < src->n_packages; i++)
    if (!deb_valid_package(src->packages[i]))
      return vab_error_at(ctx, VAB_E_SCHEMA, &src->mark,
                          "'%.200s' is not a valid package name",
                          src->packages[i]);
  return 0;
}

static const char *bootstrap_suite(const struct vab_source *src) {
  return src->suite != NULL ? src->suite : "bookworm";
}

static const char *bootstrap_mirror(const struct vab_source *src) {
  return src->mirror != NULL ? src->mirror : "http://deb.debian.org/debian";
}

void vab_bootstrap_argv_free(char **argv) {
  for (size_t i = 0; argv != NULL && argv[i] != NULL; i++)
    free(argv[i]);
  free(argv);
}

int vab_bootstrap_argv(struct vab_ctx *ctx, const struct vab_source *src,
                       const char *target, char ***out) {
  *out = NULL;
  const char *suite = bootstrap_suite(src), *mirror = bootstrap_mirror(src);
  const char *variant = src->variant != NULL ? src->variant : "minbase";
  if (check_bootstrap_values(ctx, src, suite, mirror, variant) < 0)
    return -1;
  struct buf option = BUF_INIT, include = BUF_INIT;
  char **argv = calloc(11, sizeof *argv);
  size_t n = 0;
  int r = argv == NULL || buf_printf(&option, "--variant=%s", variant) < 0 ||
          buf_puts(&include, "--include=") < 0 ||
          join_packages(&include, src) < 0 ? -1 : 0;
  if (r == 0) {
    /* "--" ends mmdebstrap's options: SUITE, TARGET and MIRROR are never
     * read as one (a suite "--setup-hook=..." would run a host command). */
    const char *args[] = {
      "mmdebstrap", option.data, include.data, "--format=tar",
      "--aptopt=Acquire::Retries \"3\"", "--", suite, target, mirror, NULL,
    };
    for (; args[n] != NULL && r == 0; n++)
      if ((argv[n] = strdup(args[n])) == NULL)
        r = -1;
  }
  buf_release(&option);
  buf_release(&include);
  if (r < 0) {
    vab_bootstrap_argv_free(argv);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  *out = argv;
  return 0;
}

/* mmdebstrap runs with a TMPDIR of its own, beside the build's work
 * folder.  Killed (Ctrl-C, SIGTERM: its process group gets SIGKILL after a
 * grace), it leaves its chroot there with /proc, /sys and /dev mounted in
 * it.  Afterwards vab detaches whatever is still mounted under that folder,
 * deepest first, so that removing the folder never reaches into a mount. */
static int make_bootstrap_tmp(struct vab_ctx *ctx, const char *work_dir,
                              char **out) {
  const char *slash = strrchr(work_dir, '/');
  int parent = slash != NULL ? (int)(slash - work_dir) : 1;
  if (asprintf(out, "%.*s/vab-mmdebstrap-XXXXXX", parent,
               slash != NULL ? work_dir : ".") < 0) {
    *out = NULL;
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  /* 0755: apt downloads as the _apt user, which must reach inside. */
  if (mkdtemp(*out) == NULL || chmod(*out, 0755) < 0) {
    int e = errno;
    rmdir(*out);
    vab_error_errno(ctx, VAB_E_IO, e, "cannot create '%s'", *out);
    free(*out);
    *out = NULL;
    return -1;
  }
  return 0;
}

/* A mount point as /proc/self/mountinfo spells it: octal escapes (\040
 * for a space) undone in place. */
static void unescape_mount_point(char *s) {
  char *out = s;
  for (char *in = s; *in != '\0'; in++) {
    if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' &&
        in[2] <= '7' && in[3] >= '0' && in[3] <= '7') {
      *out++ = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
      in += 3;
    } else {
      *out++ = *in;
    }
  }
  *out = '\0';
}

/* The longest mount point under dir ("" when there is none). */
static void deepest_mount_under(const char *dir, char *point, size_t len) {
  size_t dir_len = strlen(dir);
  point[0] = '\0';
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (f == NULL)
    return;
  char *line = NULL;
  size_t cap = 0;
  while (getline(&line, &cap, f) >= 0) {
    /* ID PARENT MAJ:MIN ROOT MOUNT-POINT ... */
    char found[4096];
    if (sscanf(line, "%*s %*s %*s %*s %4095s", found) != 1)
      continue;
    unescape_mount_point(found);
    if (strncmp(found, dir, dir_len) == 0 && found[dir_len] == '/' &&
        strlen(found) > strlen(point) && strlen(found) < len)
      snprintf(point, len, "%s", found);
  }
  free(line);
  fclose(f);
}

static void remove_bootstrap_tmp(struct vab_ctx *ctx, const char *dir) {
  char point[4096];
  for (int i = 0; i < 64; i++) {
    deepest_mount_under(dir, point, sizeof point);
    if (point[0] == '\0')
      break;
    if (umount2(point, MNT_DETACH) < 0) {
      /* Removing the folder would reach into it: leave it all. */
      vab_log(ctx, VAB_LOG_WARNING, "cannot unmount '%s' left by mmdebstrap: %s",
              point, strerror(errno));
      return;
    }
    vab_log(ctx, VAB_LOG_DEBUG, "unmounted '%s' left by mmdebstrap", point);
  }
  remove_tree(dir);
}

/* The environment with TMPDIR set to dir (NULL when out of memory). */
static char **environment_with_tmpdir(const char *dir, char **tmpdir_var) {
  extern char **environ;
  size_t n = 0;
  while (environ[n] != NULL)
    n++;
  char **env = calloc(n + 2, sizeof *env);
  if (env == NULL || asprintf(tmpdir_var, "TMPDIR=%s", dir) < 0) {
    free(env);
    *tmpdir_var = NULL;
    return NULL;
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "TMPDIR=", 7) != 0)
      env[k++] = environ[i];
  env[k++] = *tmpdir_var;
  env[k] = NULL;
  return env;
}

/* subprocess_kill() waits for the group's leader only: let the rest of
 * the group, SIGKILLed with it, go before their folder is removed. */
static void wait_group_gone(pid_t group) {
  for (int i = 0; i < 50 && kill(-group, 0) == 0; i++) {
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

static int run_mmdebstrap(struct vab_ctx *ctx, const struct vab_source *src,
                          const char *target, const char *tmp_dir) {
  if (!subprocess_have_program("mmdebstrap"))
    return vab_error_at(ctx, VAB_E_SUBPROCESS, &src->mark,
                        "the bootstrap source needs mmdebstrap; install the "
                        "'mmdebstrap' package");
  char **argv = NULL;
  if (vab_bootstrap_argv(ctx, src, target, &argv) < 0)
    return -1;
  const char *suite = bootstrap_suite(src), *mirror = bootstrap_mirror(src);
  struct buf line = BUF_INIT;
  for (size_t i = 0; argv[i] != NULL; i++)
    buf_printf(&line, "%s%s", i > 0 ? " " : "", argv[i]);
  vab_log(ctx, VAB_LOG_DEBUG, "running: %s",
          line.data != NULL ? line.data : "");
  buf_release(&line);
  int r = 0, status = 0;
  struct bootstrap_watch watch = {.ctx = ctx};
  char *tmpdir_var = NULL;
  char **env = environment_with_tmpdir(tmp_dir, &tmpdir_var);
  if (env == NULL)
    r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  if (r == 0) {
    struct subprocess p;
    struct subprocess_opts opts = SUBPROCESS_OPTS_INIT;
    opts.envp = env;
    if (subprocess_start(&p, argv, &opts) < 0) {
      r = vab_error_errno(ctx, VAB_E_SUBPROCESS, errno,
                          "cannot start mmdebstrap");
    } else {
      pid_t group = p.pid;
      if (subprocess_wait(&p, bootstrap_line, &watch, bootstrap_cancel, ctx, 0,
                          &status) < 0) {
        int e = errno;
        wait_group_gone(group);
        r = e == ECANCELED
                ? vab_error(ctx, VAB_E_CANCELLED, "interrupted during bootstrap")
                : vab_error_errno(ctx, VAB_E_SUBPROCESS, e,
                                  "waiting for mmdebstrap");
      }
    }
  }
  free(env);
  free(tmpdir_var);
  bool cache_full = watch_saw_full_target(&watch, target);
  struct buf tail = BUF_INIT;
  watch_release(&watch, &tail);
  if (r == 0 && vab_check_cancel(ctx) < 0)
    r = -1;
  if (r == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    if (cache_full) {
      r = vab_error_errno(ctx, VAB_E_IO, ENOSPC,
                          "cannot write the bootstrap cache entry '%s'",
                          target);
      vab_diag_hint(ctx, "the bootstrap of %s did not fit in the cache "
                    "folder: free some space there or pick another one "
                    "with --cache-dir; mmdebstrap's last lines:\n%s",
                    suite, tail.data != NULL ? tail.data : "");
    } else {
      char how[64];
      subprocess_describe_status(status, how, sizeof how);
      r = vab_error_at(ctx, VAB_E_SUBPROCESS, &src->mark,
                       "bootstrap of %s from %s failed: mmdebstrap %s", suite,
                       mirror, how);
      if (tail.len > 0)
        vab_diag_hint(ctx, "mmdebstrap's last lines:\n%s", tail.data);
    }
  }
  buf_release(&tail);
  vab_bootstrap_argv_free(argv);
  return r;
}

/* mmdebstrap into a new entry of the step cache. */
static int bootstrap_into(struct vab_ctx *ctx, const struct vab_source *src,
                          const struct vab_source_opts *opts,
                          struct vab_cache *cache,
                          const struct vab_cache_lock *lock) {
  vab_log(ctx, VAB_LOG_INFO, "bootstrap: mmdebstrap %s (%s)",
          src->suite != NULL ? src->suite : "bookworm",
          src->variant != NULL ? src->variant : "minbase");
  /* mmdebstrap writes by name: into the writer's fresh private folder,
   * where no link can be planted. */
  struct vab_cache_writer *w = NULL;
  if (vab_cache_begin(cache, lock, "source",
                      opts->label != NULL ? opts->label : "bootstrap", &w) < 0)
    return -1;
  CLEANUP_FREE char *partial = NULL, *tmp_dir = NULL;
  int r = vab_cache_writer_path(w, "rootfs.tar", &partial);
  if (r == 0)
    r = make_bootstrap_tmp(ctx, opts->work_dir, &tmp_dir);
  if (r == 0) {
    r = run_mmdebstrap(ctx, src, partial, tmp_dir);
    remove_bootstrap_tmp(ctx, tmp_dir);
  }
  if (r == 0)
    r = vab_cache_writer_add(w, "rootfs.tar");
  if (r < 0) {
    vab_cache_abort(w);
    return -1;
  }
  return vab_cache_commit(w);
}

static int prepare_bootstrap(struct vab_ctx *ctx, const struct vab_template *t,
                             const struct vab_source_opts *opts,
                             struct vab_source_result *result) {
  const struct vab_source *src = &t->source;
  if (src->distro != NULL && strcmp(src->distro, "debian") != 0)
    return vab_error_at(ctx, VAB_E_UNSUPPORTED, &src->mark,
                        "bootstrap supports distro 'debian', not '%s'",
                        src->distro);
  const char *key = opts->key;
  CLEANUP_FREE char *tar = NULL;
  if (asprintf(&tar, "%s/rootfs.tar", opts->work_dir) < 0)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  struct vab_cache *cache = NULL;
  if (vab_cache_open(ctx, opts->cache_dir, true, &cache) < 0)
    return -1;
  vab_cache_set_remote(cache, opts->cache_remote);
  struct vab_cache_lock lock;
  if (vab_cache_lock(cache, key, "waiting for another build bootstrapping "
                     "the same source", &lock) < 0) {
    vab_cache_close(cache);
    return -1;
  }
  struct vab_cache_meta meta;
  int hit = opts->refresh ? 0 : vab_cache_get(cache, &lock, opts->work_dir,
                                              &meta);
  if (opts->decided != NULL && hit >= 0)
    opts->decided(opts->opaque, hit == 1);
  int r = hit < 0 ? -1 : 0;
  if (hit == 1) {
    vab_log(ctx, VAB_LOG_INFO, "bootstrap: using the cached rootfs (cache "
            "entry %s)", key);
    result->cached = true;
  } else if (hit == 0) {
    if (opts->refresh)
      vab_log(ctx, VAB_LOG_INFO, "bootstrap: --no-cache: building the cache "
              "entry %s again", key);
    r = bootstrap_into(ctx, src, opts, cache, &lock);
    /* What the build unpacks is the entry as stored, verified. */
    if (r == 0 && (r = vab_cache_get(cache, &lock, opts->work_dir, &meta)) == 0)
      r = vab_error(ctx, VAB_E_IO, "the bootstrap cache entry %s vanished "
                    "after it was written", key);
    r = r < 0 ? -1 : 0;
  }
  vab_cache_unlock(&lock);
  vab_cache_close(cache);
  if (r < 0)
    return -1;
  result->tarball = strdup(tar);
  if (result->tarball == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  return 0;
}

/* Decompress a tarball on the host into out_path (gzip, xz, zstd, bzip2:
 * whatever libarchive's filters know).  An uncompressed tar is used as is
 * and *used_as_is is set. */
static int decompress_tarball(struct vab_ctx *ctx, const char *path,
                              const char *out_path, bool *used_as_is) {
  struct archive *a = archive_read_new();
  if (a == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  archive_read_support_filter_all(a);
  archive_read_support_format_raw(a);
  struct archive_entry *entry;
  int r = 0;
  if (archive_read_open_filename(a, path, 1 << 20) != ARCHIVE_OK ||
      archive_read_next_header(a, &entry) != ARCHIVE_OK) {
    r = vab_error(ctx, VAB_E_FORMAT, "cannot read '%s': %s", path,
                  archive_error_string(a));
    archive_read_free(a);
    return r;
  }
  if (archive_filter_count(a) <= 1 ||
      archive_filter_code(a, 0) == ARCHIVE_FILTER_NONE) {
    archive_read_free(a);
    *used_as_is = true;
    return 0;
  }
  *used_as_is = false;
  vab_log(ctx, VAB_LOG_INFO, "decompressing %s (%s)", path,
          archive_filter_name(a, 0));
  int fd = open(out_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                0600);
  if (fd < 0) {
    archive_read_free(a);
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot create '%s'",
                           out_path);
  }
  size_t block_size = 1 << 20;
  char *block = malloc(block_size);
  if (block == NULL) {
    close(fd);
    archive_read_free(a);
    unlink(out_path);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  uint64_t total = 0;
  for (;;) {
    la_ssize_t n = archive_read_data(a, block, block_size);
    if (n == 0)
      break;
    if (n < 0) {
      r = vab_error(ctx, VAB_E_FORMAT, "cannot decompress '%s': %s", path,
                    archive_error_string(a));
      break;
    }
    if (write(fd, block, (size_t)n) != n) {
      r = vab_error_errno(ctx, VAB_E_IO, errno, "cannot write '%s'", out_path);
      break;
    }
    total += (uint64_t)n;
    if (vab_progress(ctx, VAB_PHASE_SOURCE, "decompress", total, 0) < 0) {
      r = -1;
      break;
    }
  }
  free(block);
  archive_read_free(a);
  if (close(fd) < 0 && r == 0)
    r = vab_error_errno(ctx, VAB_E_IO, errno, "cannot write '%s'", out_path);
  if (r < 0)
    unlink(out_path);
  return r;
}

static int prepare_rootfs(struct vab_ctx *ctx, const struct vab_template *t,
                          const struct vab_source_opts *opts,
                          struct vab_source_result *result) {
  const struct vab_source *src = &t->source;
  if (verify_checksum(ctx, src, "rootfs") < 0)
    return -1;
  CLEANUP_FREE char *out = NULL;
  if (asprintf(&out, "%s/rootfs.tar", opts->work_dir) < 0)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  bool as_is = false;
  if (decompress_tarball(ctx, src->path, out, &as_is) < 0) {
    vab_error_at(ctx, VAB_E_FORMAT, &src->mark, "unusable rootfs '%s'",
                 src->path);
    return -1;
  }
  result->tarball = strdup(as_is ? src->path : out);
  if (result->tarball == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  return 0;
}

static int prepare_image(struct vab_ctx *ctx, const struct vab_template *t,
                         const struct vab_source_opts *opts,
                         struct vab_source_result *result) {
  const struct vab_source *src = &t->source;
  if (verify_checksum(ctx, src, "image") < 0)
    return -1;
  vab_log(ctx, VAB_LOG_INFO, "converting %s to the work disk", src->path);
  struct vab_convert_opts copts = {
    .src_format = src->format, .dst_format = "raw",
    /* A template's image is not a name given on the command line: no
     * block device, and its chain confined unless the template trusts it. */
    .open_flags = VAB_OPEN_REGULAR_ONLY |
                  (src->trust_backing ? VAB_OPEN_TRUST_BACKING : 0u),
  };
  struct vab_convert_result cres;
  memset(&cres, 0, sizeof cres);
  if (vab_convert(ctx, src->path, opts->disk_path, &copts, &cres) < 0) {
    vab_error_at(ctx, VAB_E_FORMAT, &src->mark, "cannot use image '%s'",
                 src->path);
    return -1;
  }
  if (cres.virtual_size > t->disk.size)
    return vab_error_at(ctx, VAB_E_USAGE, &t->disk.mark,
                        "disk.size (%llu bytes) is smaller than the source "
                        "image (%llu bytes)",
                        (unsigned long long)t->disk.size,
                        (unsigned long long)cres.virtual_size);
  /* Grow the raw disk; the layout stage grows the partition and the
   * filesystem into the new space. */
  if (truncate(opts->disk_path, (off_t)t->disk.size) < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot grow '%s'",
                           opts->disk_path);
  result->disk_ready = true;
  return 0;
}

int vab_source_prepare(struct vab_ctx *ctx, const struct vab_template *t,
                       const struct vab_source_opts *opts,
                       struct vab_source_result *result) {
  memset(result, 0, sizeof *result);
  /* Only a bootstrap comes from the cache; the others always run. */
  if (t->source.kind != VAB_SOURCE_BOOTSTRAP && opts->decided != NULL)
    opts->decided(opts->opaque, false);
  switch (t->source.kind) {
  case VAB_SOURCE_BOOTSTRAP:
    return prepare_bootstrap(ctx, t, opts, result);
  case VAB_SOURCE_ROOTFS:
    return prepare_rootfs(ctx, t, opts, result);
  case VAB_SOURCE_IMAGE:
    return prepare_image(ctx, t, opts, result);
  }
  return vab_error(ctx, VAB_E_INTERNAL, "unknown source kind");
}
