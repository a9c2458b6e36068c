/* vab build: the orchestration (see build.h). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vab/provisioner.h"
#include "common/clock.h"
#include "vab/version.h"
#include "common/buf.h"
#include "common/fsutil.h"
#include "common/io.h"
#include "common/cleanup.h"
#include "builder/boottest.h"
#include "builder/cache.h"
#include "builder/chain.h"
#include "builder/build.h"
#include "builder/guest.h"
#include "builder/layout.h"
#include "builder/plan.h"
#include "builder/reproducible.h"
#include "builder/source.h"
#include "builder/sysprep.h"
#include "builder/vocab.h"
#include "builder/booted.h"
#include "publish/publish.h"
#include "signing/digest.h"
#include "signing/manifest.h"
#include "signing/signing.h"

/* Keeps package scripts from starting services inside the builder VM
 * while apt runs (Debian's policy-rc.d protocol: 101 = not allowed).  A
 * daemon started there would hold the guest's filesystem busy. */
#define POLICY_RC_D "/usr/sbin/policy-rc.d"
static const char policy_rc_d[] =
  "#!/bin/sh\n"
  "# Written by vab for the build only: no service starts in the builder.\n"
  "exit 101\n";




void vab_build_free(struct vab_build *b) {
  if (b == NULL)
    return;
  vab_template_free(b->template);
  vab_artifacts_free(b->artifacts, b->n_artifacts);
  free(b->manifest_path);
  free(b->signature_path);
  free(b->output_dir);
  free(b->log_path);
  free(b->serial_log_path);
  free(b->cache_dir);
  vab_remote_cache_free(b->cache_from);
  vab_remote_cache_free(b->cache_to);
  free(b->kept_work_dir);
  free(b->steps);
  free(b);
}

int vab_build_load(struct vab_ctx *ctx, const struct vab_build_opts *opts,
                   struct vab_build **out) {
  *out = NULL;
  struct vab_build *b = calloc(1, sizeof *b);
  if (b == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  b->opts = *opts;
  double start = now_seconds();
  struct vab_load_opts load = {
    .vars = opts->vars, .n_vars = opts->n_vars, .use_environment = true,
    .vocab = vab_template_vocab(),
  };
  if (vab_template_load(ctx, opts->template_path, &load, &b->template) < 0) {
    vab_build_free(b);
    return -1;
  }
  const struct vab_template *t = b->template;
  CLEANUP_FREE char *log_name = NULL;
  int r = 0;
  if (opts->output_dir != NULL)
    b->output_dir = strdup(opts->output_dir);
  else if (asprintf(&b->output_dir, "output/%s", t->name) < 0)
    b->output_dir = NULL;
  if (b->output_dir == NULL)
    r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  if (r == 0)
    r = vab_artifact_name(ctx, t, NULL, "log", &log_name);
  if (r == 0) {
    /* NAME-VERSION.log and NAME-VERSION.serial.log */
    size_t base = strlen(log_name) - strlen(".log");
    if (asprintf(&b->log_path, "%s/%s", b->output_dir, log_name) < 0 ||
        asprintf(&b->serial_log_path, "%s/%.*s.serial.log", b->output_dir,
                 (int)base, log_name) < 0)
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  if (r == 0) {
    b->cache_dir = opts->cache_dir != NULL ? strdup(opts->cache_dir)
                                           : vab_default_cache_dir();
    if (b->cache_dir == NULL)
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  /* A bad limit or reference fails now, not after the build. */
  if (r == 0)
    r = vab_cache_default_max_size(ctx, &b->cache_max_size);
  if (r == 0 && opts->cache_from != NULL)
    r = vab_remote_cache_new(ctx, opts->cache_from, &b->opts.cache_registry,
                             false, &b->cache_from);
  if (r == 0 && opts->cache_to != NULL)
    r = vab_remote_cache_new(ctx, opts->cache_to, &b->opts.cache_registry,
                             true, &b->cache_to);
  char failed[4096];
  if (r == 0 && mkdir_p(b->output_dir, 0755, failed, sizeof failed) < 0)
    r = vab_error_errno(ctx, VAB_E_IO, errno, "cannot create '%s'", failed);
  if (r < 0) {
    vab_build_free(b);
    return -1;
  }
  b->phase_seconds[VAB_PHASE_LOAD] = now_seconds() - start;
  b->phase_ran[VAB_PHASE_LOAD] = true;
  *out = b;
  return 0;
}

/* State of one run, shared by the phases below. */
struct run {
  struct vab_ctx *ctx;
  struct vab_build *b;
  const struct vab_template *t;
  struct vab_plan plan;
  char *work_dir;
  char *disk_path;
  struct vab_guest *guest;
  struct vab_booted *booted;   /* the booted appliance, during a segment */
  struct vab_layout layout;
  double phase_start;
  enum vab_phase phase;
  bool exporting;
  struct vab_signer *signer;   /* `sign:`, loaded before the build starts */
  size_t step;                 /* the step being timed, or SIZE_MAX */
  double step_start;
  size_t source_index;         /* for source_decided() */
  int announced;               /* its announce()'s result */

  /* The step cache (builder/chain.h for the disk entries). */
  struct vab_cache *cache;
  bool *hit;                   /* per plan step: not run, the cache had it */
  char (*cache_keys)[65];      /* per plan step: its entry's key ("" none) */
  char *steps_dir;             /* WORK/steps: disk entries linked out */
  char *stage_dir;             /* OUTPUT/.vab-cache-XXXXXX: test and export
                                  entries linked out, renamed when used */
  int stage_fd;                /* its flock: this build is alive */
  size_t resume;               /* the disk step the session starts on, or
                                  SIZE_MAX: from the source */
  bool need_disk;              /* a test or export runs */
  bool have_final;             /* sysprep's entry is the finished disk */
  char base_key[65];           /* the entry the work overlay is backed by */
  char base_sha256[65];
  char *overlay_path;          /* WORK/disk.qcow2 */
  char *final_path;            /* the finished disk, a standalone qcow2 */
  struct vab_cache_lock held;  /* the running step's key (fd -1: none) */
  struct fetched {
    char key[65];
    char sha256[65];
  } *fetched;                  /* disk entries linked out, verified */
  size_t n_fetched;
  bool base_in_cache;          /* the base is the cache's entry */
  struct vab_cache_meta *staged_meta;  /* per plan step, when staged */
};

static void phase_begin(struct run *run, enum vab_phase phase) {
  run->phase = phase;
  run->phase_start = now_seconds();
  run->b->phase_ran[phase] = true;
}

static void phase_end(struct run *run) {
  run->b->phase_seconds[run->phase] += now_seconds() - run->phase_start;
}

/* Each step's seconds run from its start to the next step's (or the end
 * of the last phase that has steps). */
static void step_close(struct run *run) {
  if (run->step != SIZE_MAX && run->b->steps != NULL)
    run->b->steps[run->step].seconds += now_seconds() - run->step_start;
  run->step = SIZE_MAX;
}

static void step_open(struct run *run, size_t index) {
  step_close(run);
  run->step = index;
  run->step_start = now_seconds();
}

/* "step N/M: label", once per plan step (labels name the template
 * line). */
static int announce_line(struct run *run, size_t index, const char *extra) {
  const struct vab_plan_step *s = &run->plan.steps[index];
  vab_log(run->ctx, VAB_LOG_INFO, "step %zu/%zu: %s%s", index + 1,
          run->plan.n_steps, s->label, extra);
  vab_log(run->ctx, VAB_LOG_DEBUG, "step key %s", s->key);
  return vab_progress(run->ctx, run->phase, s->label, 0, 0);
}

static int announce(struct run *run, size_t index, const char *extra) {
  step_open(run, index);
  return announce_line(run, index, extra);
}

/* The source tells, before its work, whether the cache has it: its step
 * line says "cached" when the step does not run. */
static void source_decided(void *opaque, bool cached) {
  struct run *run = opaque;
  run->b->steps[run->source_index].cached = cached;
  run->announced = announce_line(run, run->source_index,
                                 cached ? ": cached" : "");
}

/* The --json steps, from the plan. */
static int init_steps(struct run *run) {
  struct vab_build *b = run->b;
  b->steps = calloc(run->plan.n_steps + 1, sizeof *b->steps);
  if (b->steps == NULL)
    return vab_error(run->ctx, VAB_E_NOMEM, "out of memory");
  b->n_steps = run->plan.n_steps;
  for (size_t i = 0; i < run->plan.n_steps; i++) {
    const struct vab_plan_step *ps = &run->plan.steps[i];
    b->steps[i].kind = vab_plan_kind_name(ps->kind);
    snprintf(b->steps[i].label, sizeof b->steps[i].label, "%s", ps->label);
    memcpy(b->steps[i].key, ps->key, sizeof b->steps[i].key);
    b->steps[i].booted = ps->kind == VAB_PLAN_PROVISION && ps->provision->booted;
  }
  return 0;
}

static int make_work_dir(struct run *run) {
  const char *tmp = getenv("TMPDIR");
  if (tmp == NULL || tmp[0] == '\0')
    tmp = "/var/tmp";
  if (asprintf(&run->work_dir, "%s/vab-build-XXXXXX", tmp) < 0) {
    run->work_dir = NULL;
    return vab_error(run->ctx, VAB_E_NOMEM, "out of memory");
  }
  if (mkdtemp(run->work_dir) == NULL) {
    int e = errno;
    free(run->work_dir);
    run->work_dir = NULL;
    return vab_error_errno(run->ctx, VAB_E_IO, e,
                           "cannot create a work folder in '%s'", tmp);
  }
  if (asprintf(&run->disk_path, "%s/disk.raw", run->work_dir) < 0) {
    run->disk_path = NULL;
    return vab_error(run->ctx, VAB_E_NOMEM, "out of memory");
  }
  vab_log(run->ctx, VAB_LOG_DEBUG, "work folder %s", run->work_dir);
  return 0;
}

static const struct vab_plan_step *plan_find(const struct run *run,
                                             enum vab_plan_kind kind,
                                             size_t *index) {
  for (size_t i = 0; i < run->plan.n_steps; i++)
    if (run->plan.steps[i].kind == kind) {
      *index = i;
      return &run->plan.steps[i];
    }
  return NULL;
}

/* ---- the step cache ----
 *
 * A build reuses the longest cached prefix of its plan: first the test
 * and export entries (when they all hit, nothing else is needed and no VM
 * starts), then sysprep's (the finished disk), then the last provisioner
 * or layout entry whose qcow2 chain is complete.  A step that runs holds
 * its key's lock from its start to its entry's commit, taking the next
 * step's lock before it lets go of this one, so a second build of the
 * same template waits in its lookup and then hits. */

static bool step_is_disk(enum vab_plan_kind kind) {
  return kind == VAB_PLAN_LAYOUT || kind == VAB_PLAN_PROVISION ||
         kind == VAB_PLAN_SYSPREP;
}

static void release_held(struct run *run) {
  if (run->held.fd >= 0)
    vab_cache_unlock(&run->held);
  run->held.fd = -1;
}

/* Take index's lock (waiting for another build's step), then let go of
 * the one held. */
static int hold_step(struct run *run, size_t index) {
  /* flock: a second descriptor of this process would wait for the first. */
  if (run->held.fd >= 0 &&
      strcmp(run->held.key, run->cache_keys[index]) == 0)
    return 0;
  struct vab_cache_lock lock;
  char waiting[192];
  snprintf(waiting, sizeof waiting, "waiting for another build's %s",
           run->plan.steps[index].label);
  if (vab_cache_lock(run->cache, run->cache_keys[index], waiting, &lock) < 0)
    return -1;
  release_held(run);
  run->held = lock;
  return 0;
}

static int read_small_file(struct vab_ctx *ctx, const char *path, char *buf,
                           size_t cap, size_t *len) {
  struct stat st;
  bool not_regular = false;
  CLEANUP_CLOSE int fd = open_regular_file_nofollow(path, &st, &not_regular);
  if (fd < 0)
    return vab_error_errno(ctx, VAB_E_IO, not_regular ? EINVAL : errno,
                           "cannot read '%s'", path);
  ssize_t n = read_full(fd, buf, cap);
  if (n < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot read '%s'", path);
  *len = (size_t)n;
  return 0;
}

static int write_small_file(struct vab_ctx *ctx, const char *path,
                            const char *data, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                0644);
  int r = 0;
  if (fd < 0 || write_full(fd, data, len) < 0)
    r = vab_error_errno(ctx, VAB_E_IO, errno, "cannot write '%s'", path);
  if (fd >= 0)
    close(fd);
  return r;
}

static const char *meta_sha256(const struct vab_cache_meta *meta,
                               const char *name) {
  for (size_t i = 0; i < meta->n_files; i++)
    if (strcmp(meta->files[i].name, name) == 0)
      return meta->files[i].sha256;
  return NULL;
}

/* An entry that verified but cannot be used (its state is wrong, or its
 * base was rebuilt since): a warning, and it goes. */
static void drop_entry(struct run *run, const char *key, const char *why) {
  vab_warn_at(run->ctx, NULL, "cache entry %s is unusable: %s; discarded", key,
              why);
  struct vab_cache_lock lock;
  if (vab_cache_lock(run->cache, key, NULL, &lock) == 0) {
    CLEANUP_FREE char *dir = NULL;
    if (asprintf(&dir, "%s/steps/%s", vab_cache_dir(run->cache), key) >= 0)
      remove_tree(dir);
    vab_cache_unlock(&lock);
  }
}

/* Link a disk entry and, recursively, the entries its qcow2 is backed by
 * into WORK/steps/KEY/.  1 every link of the chain verified, 0 a miss, -1
 * error; state gets the entry's state. */
static int fetch_disk(struct run *run, const char *key, const char *kind,
                      unsigned depth, struct vab_chain_state *state,
                      char sha256[65]) {
  struct vab_ctx *ctx = run->ctx;
  CLEANUP_FREE char *dir = NULL, *state_path = NULL;
  if (asprintf(&dir, "%s/%s", run->steps_dir, key) < 0 ||
      asprintf(&state_path, "%s/%s", dir, VAB_CHAIN_STATE) < 0)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  bool have = false;
  for (size_t i = 0; i < run->n_fetched && !have; i++)
    if (strcmp(run->fetched[i].key, key) == 0) {
      memcpy(sha256, run->fetched[i].sha256, 65);
      have = true;
    }
  if (!have) {
    if (depth > run->plan.n_steps)
      return 0;
    if (mkdir(dir, 0700) < 0)
      return vab_error_errno(ctx, VAB_E_IO, errno, "cannot create '%s'", dir);
    struct vab_cache_lock lock;
    struct vab_cache_meta meta;
    char waiting[160];
    snprintf(waiting, sizeof waiting, "waiting for another build's entry %.16s",
             key);
    if (vab_cache_lock(run->cache, key, waiting, &lock) < 0)
      return -1;
    int r = vab_cache_get(run->cache, &lock, dir, &meta);
    vab_cache_unlock(&lock);
    const char *sum = r == 1 ? meta_sha256(&meta, VAB_CHAIN_DISK) : NULL;
    bool kind_ok = kind != NULL ? strcmp(meta.kind, kind) == 0
                                : strcmp(meta.kind, "layout") == 0 ||
                                      strcmp(meta.kind, "provision") == 0;
    if (r == 1 && (sum == NULL || !kind_ok)) {
      remove_tree(dir);
      drop_entry(run, key, "not a disk entry of its kind");
      return 0;
    }
    if (r != 1) {
      remove_tree(dir);
      return r;
    }
    memcpy(sha256, sum, 65);
  }
  char text[VAB_CHAIN_MAX_STATE + 1], why[128];
  size_t len = 0;
  if (read_small_file(ctx, state_path, text, sizeof text, &len) < 0)
    return -1;
  if (vab_chain_state_parse(text, len, state, why, sizeof why) < 0) {
    remove_tree(dir);
    char what[200];
    snprintf(what, sizeof what, "state %s", why);
    drop_entry(run, key, what);
    return 0;
  }
  if (!have) {
    struct fetched *grown = realloc(run->fetched, (run->n_fetched + 1) *
                                                      sizeof *run->fetched);
    if (grown == NULL)
      return vab_error(ctx, VAB_E_NOMEM, "out of memory");
    run->fetched = grown;
    memcpy(grown[run->n_fetched].key, key, 65);
    memcpy(grown[run->n_fetched].sha256, sha256, 65);
    run->n_fetched++;
  }
  if (state->base[0] == '\0')
    return 1;
  struct vab_chain_state base_state;
  char base_sha[65];
  /* A provisioner's base is layout's entry or another provisioner's. */
  int r = fetch_disk(run, state->base, NULL, depth + 1, &base_state,
                     base_sha);
  if (r != 1)
    return r;
  /* Made on an entry that --no-cache has replaced since. */
  if (strcmp(base_sha, state->base_sha256) != 0) {
    remove_tree(dir);
    drop_entry(run, key, "its base entry was rebuilt since");
    return 0;
  }
  return 1;
}

/* An export's entry is keyed by its plan key, its file name (which
 * depends on the other outputs), the output folder (a libvirt
 * definition names its disk's path) and, for an OVA of a signed build,
 * the signer's identity (its .cert holds the certificate and a signature
 * by that key; any signature by the same key is as good). */
static int export_cache_key(struct run *run, size_t index, char out[65]) {
  struct vab_ctx *ctx = run->ctx;
  const struct vab_output_spec *o = run->plan.steps[index].output;
  CLEANUP_FREE char *name = NULL;
  CLEANUP_FREE char *dir = realpath(run->b->output_dir, NULL);
  if (dir == NULL)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot resolve '%s'",
                           run->b->output_dir);
  if (vab_export_file_name(ctx, run->t, (size_t)(o - run->t->outputs),
                           &name) < 0)
    return -1;
  struct vab_sha256 *h = vab_sha256_new(ctx);
  if (h == NULL)
    return -1;
  char signer[65] = "";
  if (run->signer != NULL && strcmp(o->format, "ova") == 0 &&
      vab_signer_identity(ctx, run->signer, signer) < 0)
    return -1;
  const char *parts[] = {"vab-export-cache-1", run->plan.steps[index].key,
                         name, dir, signer};
  for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
    if (vab_sha256_update(h, parts[i], strlen(parts[i]) + 1) < 0) {
      vab_sha256_free(h);
      return -1;
    }
  uint8_t digest[32];
  if (vab_sha256_final(h, digest) < 0)
    return -1;
  vab_hex(digest, sizeof digest, out);
  return 0;
}

static bool output_kept(const struct run *run, const struct vab_output_spec *o) {
  if (run->b->opts.n_only == 0)
    return true;
  for (size_t i = 0; i < run->b->opts.n_only; i++)
    if (strcmp(run->b->opts.only[i], o->format) == 0)
      return true;
  return false;
}

static int init_cache(struct run *run) {
  struct vab_ctx *ctx = run->ctx;
  size_t n = run->plan.n_steps;
  run->held.fd = -1;
  run->resume = SIZE_MAX;
  run->hit = calloc(n + 1, sizeof *run->hit);
  run->cache_keys = calloc(n + 1, sizeof *run->cache_keys);
  run->staged_meta = calloc(n + 1, sizeof *run->staged_meta);
  if (run->hit == NULL || run->cache_keys == NULL || run->staged_meta == NULL ||
      asprintf(&run->steps_dir, "%s/steps", run->work_dir) < 0 ||
      asprintf(&run->overlay_path, "%s/disk.qcow2", run->work_dir) < 0) {
    run->steps_dir = NULL;
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  if (mkdir(run->steps_dir, 0700) < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot create '%s'",
                           run->steps_dir);
  /* Locked for the build's life, so that the next build removes the
   * stage folder of one that was killed, never a live one's. */
  run->stage_fd = create_locked_folder(run->b->output_dir, "vab-cache",
                                       &run->stage_dir);
  if (run->stage_fd < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno,
                           "cannot create a folder in '%s'",
                           run->b->output_dir);
  for (size_t i = 0; i < n; i++) {
    const struct vab_plan_step *s = &run->plan.steps[i];
    if (s->kind == VAB_PLAN_EXPORT) {
      if (export_cache_key(run, i, run->cache_keys[i]) < 0)
        return -1;
    } else {
      memcpy(run->cache_keys[i], s->key, 65);
    }
  }
  if (vab_cache_open(ctx, run->b->cache_dir, true, &run->cache) < 0)
    return -1;
  vab_cache_set_remote(run->cache, run->b->cache_from);
  return 0;
}

/* A test or export entry, linked into the stage folder's KEY/. */
static int fetch_staged(struct run *run, size_t index) {
  struct vab_ctx *ctx = run->ctx;
  const char *key = run->cache_keys[index];
  CLEANUP_FREE char *dir = NULL;
  if (asprintf(&dir, "%s/%s", run->stage_dir, key) < 0)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  if (mkdir(dir, 0755) < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot create '%s'", dir);
  struct vab_cache_lock lock;
  struct vab_cache_meta *meta = &run->staged_meta[index];
  char waiting[192];
  snprintf(waiting, sizeof waiting, "waiting for another build's %s",
           run->plan.steps[index].label);
  if (vab_cache_lock(run->cache, key, waiting, &lock) < 0)
    return -1;
  int r = vab_cache_get(run->cache, &lock, dir, meta);
  vab_cache_unlock(&lock);
  const char *kind = vab_plan_kind_name(run->plan.steps[index].kind);
  if (r == 1 && strcmp(meta->kind, kind) != 0) {
    remove_tree(dir);
    drop_entry(run, key, "not an entry of its kind");
    return 0;
  }
  if (r != 1)
    rmdir(dir);
  return r;
}

/* The longest cached prefix (see above).  Sets hit[], resume, need_disk,
 * have_final; run->held is the lock of the first step that runs. */
static int find_cached(struct run *run) {
  struct vab_ctx *ctx = run->ctx;
  const struct vab_plan *plan = &run->plan;
  size_t first_disk = SIZE_MAX;
  for (size_t i = 0; i < plan->n_steps; i++)
    if (step_is_disk(plan->steps[i].kind) && first_disk == SIZE_MAX)
      first_disk = i;
  run->need_disk = true;
  if (run->b->opts.no_cache) {
    run->resume = SIZE_MAX;
    return hold_step(run, first_disk);
  }
  for (;;) {
    bool later_all = true;
    for (size_t i = plan->n_steps; i-- > 0;) {
      const struct vab_plan_step *s = &plan->steps[i];
      if (s->kind == VAB_PLAN_EXPORT && !output_kept(run, s->output))
        continue;
      if (s->kind != VAB_PLAN_EXPORT && s->kind != VAB_PLAN_TEST)
        continue;
      if (s->kind == VAB_PLAN_TEST && run->b->opts.no_test)
        continue;
      if (!run->hit[i] && run->cache_keys[i][0] != '\0') {
        int r = fetch_staged(run, i);
        if (r < 0)
          return -1;
        run->hit[i] = r == 1;
      }
      later_all &= run->hit[i];
    }
    size_t sysprep = SIZE_MAX;
    (void)plan_find(run, VAB_PLAN_SYSPREP, &sysprep);
    if (later_all) {
      run->need_disk = false;
      for (size_t i = 0; i <= sysprep && i < plan->n_steps; i++)
        run->hit[i] = true;
      return 0;
    }
    /* The finished disk, then the disk steps from the last one back. */
    size_t resume = SIZE_MAX;
    for (size_t i = sysprep + 1; i-- > first_disk && resume == SIZE_MAX;) {
      struct vab_chain_state state;
      char sha[65];
      int r = fetch_disk(run, plan->steps[i].key,
                         vab_plan_kind_name(plan->steps[i].kind), 0, &state,
                         sha);
      if (r < 0)
        return -1;
      if (r == 0)
        continue;
      resume = i;
      if (i == sysprep) {
        run->have_final = true;
        snprintf(run->b->guest_os, sizeof run->b->guest_os, "%s",
                 state.guest_os);
        free(run->final_path);
        if (asprintf(&run->final_path, "%s/%s/%s", run->steps_dir,
                     plan->steps[i].key, VAB_CHAIN_DISK) < 0) {
          run->final_path = NULL;
          return vab_error(ctx, VAB_E_NOMEM, "out of memory");
        }
      } else {
        run->layout = state.layout;
        memcpy(run->base_key, plan->steps[i].key, 65);
        memcpy(run->base_sha256, sha, 65);
        run->base_in_cache = true;
      }
    }
    run->resume = resume;
    for (size_t i = 0; resume != SIZE_MAX && i <= resume; i++)
      run->hit[i] = true;
    if (run->have_final)
      return 0;
    /* The first step to run: wait for it if another build runs it now,
     * and look again if that build then stored it. */
    size_t next = resume == SIZE_MAX ? first_disk : resume + 1;
    if (hold_step(run, next) < 0)
      return -1;
    if (!vab_cache_has(run->cache, run->cache_keys[next]))
      return 0;
    release_held(run);
    vab_log(ctx, VAB_LOG_INFO, "cache: another build stored %s meanwhile",
            plan->steps[next].label);
  }
}

/* Store a disk entry: WORK disk file as disk.qcow2 (backed by base, or
 * standalone), and the state.  An entry another build stored while this
 * one ran is kept (entries made on it stay valid); --no-cache replaces
 * it.  1 stored, 0 not (kept, or its base is not the cache's). */
static int store_disk(struct run *run, size_t index, const char *disk,
                      bool link_ok, const struct vab_chain_state *state) {
  struct vab_ctx *ctx = run->ctx;
  const struct vab_plan_step *s = &run->plan.steps[index];
  if (vab_cache_has(run->cache, s->key) && !run->b->opts.no_cache)
    return 0;
  /* An overlay on a base that is not the cache's entry would be stale. */
  if (state->base[0] != '\0' && !run->base_in_cache)
    return 0;
  struct vab_cache_writer *w = NULL;
  CLEANUP_FREE char *disk_dst = NULL, *state_dst = NULL;
  struct buf text = BUF_INIT;
  int r = vab_cache_begin(run->cache, &run->held, vab_plan_kind_name(s->kind),
                          s->label, &w);
  if (r == 0)
    r = vab_cache_writer_path(w, VAB_CHAIN_DISK, &disk_dst);
  if (r == 0)
    r = vab_chain_copy(ctx, disk, disk_dst, link_ok);
  if (r == 0 && state->base[0] != '\0') {
    char backing[96];
    snprintf(backing, sizeof backing, "../%s/%s", state->base, VAB_CHAIN_DISK);
    r = vab_chain_rebase(ctx, disk_dst, backing);
  }
  if (r == 0 && vab_chain_state_format(state, &text) < 0)
    r = vab_error(ctx, VAB_E_INTERNAL, "cache: cannot record the state of %s",
                  s->label);
  if (r == 0)
    r = vab_cache_writer_path(w, VAB_CHAIN_STATE, &state_dst);
  if (r == 0)
    r = write_small_file(ctx, state_dst, text.data, text.len);
  if (r == 0)
    r = vab_cache_writer_add(w, VAB_CHAIN_DISK);
  if (r == 0)
    r = vab_cache_writer_add(w, VAB_CHAIN_STATE);
  buf_release(&text);
  if (r == 0) {
    r = vab_cache_commit(w);
    w = NULL;
  }
  vab_cache_abort(w);
  if (r < 0)
    return -1;
  return 1;
}

/* disk.qcow2's sha256 as key's meta records it; -1 when unreadable. */
static int stored_sha256(struct run *run, const char *key, char out[65]) {
  CLEANUP_FREE char *path = NULL;
  if (asprintf(&path, "%s/steps/%s/meta", vab_cache_dir(run->cache), key) < 0)
    return -1;
  char text[VAB_CACHE_MAX_META + 1], why[128];
  size_t len = 0;
  struct vab_cache_meta meta;
  struct stat st;
  bool not_regular;
  CLEANUP_CLOSE int fd = open_regular_file_nofollow(path, &st, &not_regular);
  ssize_t n = fd < 0 ? -1 : read_full(fd, text, sizeof text);
  if (n < 0)
    return -1;
  len = (size_t)n;
  if (vab_cache_meta_parse(text, len, &meta, why, sizeof why) < 0)
    return -1;
  const char *sum = meta_sha256(&meta, VAB_CHAIN_DISK);
  if (sum == NULL)
    return -1;
  memcpy(out, sum, 65);
  return 0;
}

/* Steps the cache made unnecessary still get their line. */
static int announce_cached(struct run *run, enum vab_plan_kind kind) {
  for (size_t i = 0; i < run->plan.n_steps; i++)
    if (run->plan.steps[i].kind == kind && run->hit[i]) {
      run->b->steps[i].cached = true;
      if (announce(run, i, ": cached") < 0)
        return -1;
      step_close(run);
    }
  return 0;
}

static int do_source_and_layout(struct run *run) {
  struct vab_ctx *ctx = run->ctx;
  size_t index = 0;
  const struct vab_plan_step *step = plan_find(run, VAB_PLAN_SOURCE, &index);
  if (step == NULL)
    return vab_error(ctx, VAB_E_INTERNAL, "the plan has no source step");
  if (!run->need_disk || run->have_final || run->resume != SIZE_MAX) {
    run->b->source_cached = true;
    if (announce_cached(run, VAB_PLAN_SOURCE) < 0 ||
        announce_cached(run, VAB_PLAN_LAYOUT) < 0)
      return -1;
    return 0;
  }

  phase_begin(run, VAB_PHASE_SOURCE);
  step_open(run, index);
  run->source_index = index;
  struct vab_source_opts sopts = {
    .cache_dir = run->b->cache_dir, .work_dir = run->work_dir,
    .key = step->key, .disk_path = run->disk_path, .label = step->label,
    .refresh = run->b->opts.no_cache, .cache_remote = run->b->cache_from,
    .decided = source_decided, .opaque = run,
  };
  struct vab_source_result src;
  memset(&src, 0, sizeof src);
  int r = vab_source_prepare(ctx, run->t, &sopts, &src);
  if (r == 0 && run->announced < 0)
    r = -1;
  run->b->source_cached = src.cached;
  /* Layout writes its entry's disk, WORK/steps/KEY/disk.qcow2, itself; an
   * image source's raw disk is converted to it afterwards. */
  size_t layout_index = 0;
  CLEANUP_FREE char *dir = NULL, *disk = NULL;
  if (plan_find(run, VAB_PLAN_LAYOUT, &layout_index) == NULL && r == 0)
    r = vab_error(ctx, VAB_E_INTERNAL, "the plan has no layout step");
  const char *key = run->plan.steps[layout_index].key;
  if (r == 0 && (asprintf(&dir, "%s/%s", run->steps_dir, key) < 0 ||
                 asprintf(&disk, "%s/%s", dir, VAB_CHAIN_DISK) < 0))
    r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  if (r == 0 && mkdir(dir, 0700) < 0)
    r = vab_error_errno(ctx, VAB_E_IO, errno, "cannot create '%s'", dir);
  if (r == 0 && !src.disk_ready)
    r = vab_chain_create(ctx, disk, run->t->disk.size);
  phase_end(run);
  if (r < 0) {
    vab_source_result_release(&src);
    return -1;
  }

  phase_begin(run, VAB_PHASE_LAYOUT);
  index = layout_index;
  r = announce(run, index, "");
  /* The layout's ids derive from its key (builder/reproducible.h). */
  snprintf(run->layout.seed, sizeof run->layout.seed, "%s",
           run->plan.steps[index].key);
  struct vab_guest_opts gopts = {
    .disk_path = src.disk_ready ? run->disk_path : disk,
    .disk_format = src.disk_ready ? "raw" : "qcow2",
    .accel = run->b->accel, .network = false,
  };
  if (r == 0)
    r = vab_guest_launch(ctx, &gopts, &run->guest);
  if (r == 0 && src.tarball != NULL)
    r = vab_layout_create(ctx, run->t, run->guest, src.tarball, &run->layout);
  else if (r == 0)
    r = vab_layout_adopt(ctx, run->t, run->guest, &run->layout);
  bool image_source = src.disk_ready;
  vab_source_result_release(&src);
  /* Layout's result is its entry: the builder VM stops, and the next
   * session runs on an overlay of the disk. */
  if (r == 0) {
    r = vab_guest_close(run->guest);
    run->guest = NULL;
  }
  if (r == 0 && image_source) {
    r = vab_chain_flatten(ctx, run->disk_path, "raw", disk);
    if (r == 0)
      unlink(run->disk_path);
  }
  struct vab_chain_state state;
  memset(&state, 0, sizeof state);
  state.layout = run->layout;
  if (r == 0)
    r = store_disk(run, index, disk, true, &state);
  if (r >= 0)
    run->base_in_cache = r == 1;
  /* The base's digest for the checkpoints' state: the one its entry
   * recorded (hashing 1 GB again costs seconds), else its own. */
  if (r == 1 && stored_sha256(run, key, run->base_sha256) < 0)
    r = 0;
  if (r == 0) {
    uint8_t sum[32];
    r = vab_sha256_file(ctx, disk, sum);
    vab_hex(sum, sizeof sum, run->base_sha256);
  }
  if (r >= 0) {
    r = 0;
    memcpy(run->base_key, key, 65);
    run->resume = index;
  }
  phase_end(run);
  return r;
}

/* Mount the guest's file systems where layout put them. */
static int mount_layout(struct run *run) {
  if (vab_guest_mount(run->guest, run->layout.root_device, "/") < 0)
    return -1;
  if (run->layout.esp_device[0] != '\0' &&
      vab_guest_mount(run->guest, run->layout.esp_device, "/boot/efi") < 0)
    return -1;
  return 0;
}

/* A provisioner step that runs in the booted appliance, not here. */
static bool step_booted(const struct run *run, size_t i) {
  return run->plan.steps[i].kind == VAB_PLAN_PROVISION &&
         run->plan.steps[i].provision->booted;
}

/* The builder VM on the work overlay as it is, mounted as layout left it.
 * Its network is on when an offline step from first on needs it: a
 * relaunch costs as much as the launch, and the network changes nothing
 * for the steps that do not use it. */
static int launch_session(struct run *run, size_t first) {
  bool network = false;
  for (size_t i = first; i < run->plan.n_steps; i++)
    if (run->plan.steps[i].kind == VAB_PLAN_PROVISION && !step_booted(run, i) &&
        (run->plan.steps[i].provision->step_type->flags &
         VAB_STEP_NEEDS_NETWORK))
      network = true;
  struct vab_guest_opts gopts = {
    .disk_path = run->overlay_path, .disk_format = "qcow2",
    .accel = run->b->accel, .network = network,
  };
  if (vab_guest_launch(run->ctx, &gopts, &run->guest) < 0)
    return -1;
  return mount_layout(run);
}

/* The builder VM on a new overlay of the base entry. */
static int open_session(struct run *run, size_t first) {
  struct vab_ctx *ctx = run->ctx;
  char backing[96];
  snprintf(backing, sizeof backing, "steps/%s/%s", run->base_key,
           VAB_CHAIN_DISK);
  unlink(run->overlay_path);
  if (vab_chain_overlay(ctx, backing, run->overlay_path) < 0)
    return -1;
  return launch_session(run, first);
}

/* After a provisioner: its entry is the overlay so far, over the base. */
static int checkpoint(struct run *run, size_t index) {
  if (vab_guest_umount_all(run->guest) < 0 || vab_guest_sync(run->guest) < 0)
    return -1;
  struct vab_chain_state state;
  memset(&state, 0, sizeof state);
  memcpy(state.base, run->base_key, 65);
  memcpy(state.base_sha256, run->base_sha256, 65);
  state.layout = run->layout;
  if (store_disk(run, index, run->overlay_path, false, &state) < 0)
    return -1;
  return mount_layout(run);
}

static int run_provisioner(struct run *run, size_t index) {
  struct vab_ctx *ctx = run->ctx;
  const struct vab_plan_step *ps = &run->plan.steps[index];
  const struct vab_step *step = ps->provision;
  /* Every step type has a run half (tests/unit/test-registration.c). */
  const struct vab_provisioner *p = vab_provisioner_by_name(step->type);
  bool network = step->step_type->flags & VAB_STEP_NEEDS_NETWORK;
  if (announce(run, index, network ? ", network on" : "") < 0)
    return -1;
  /* The appliance's network is fixed at launch: turning it on relaunches
   * the builder VM, so it stays on for the steps after. */
  int r = network ? vab_guest_set_network(run->guest, true) : 0;
  vab_guest_set_phase(run->guest, VAB_PHASE_PROVISION);
  if (r == 0)
    r = p->run(ctx, step->config, run->guest);
  if (r == 0)
    return checkpoint(run, index);
  if (vab_cancelled(ctx))
    return r;
  /* Provisioners point at their own keys; anything else (the builder VM
   * failing under them) gets the step's location here. */
  const struct vab_diag *last = vab_last_error(ctx);
  if (last == NULL || last->file == NULL)
    vab_error_at(ctx, VAB_E_PROVISION, &step->mark, "%s failed", ps->name);
  return -1;
}

/* One booted step, in the booted appliance. */
static int run_booted_step(struct run *run, size_t index) {
  struct vab_ctx *ctx = run->ctx;
  const struct vab_plan_step *ps = &run->plan.steps[index];
  const struct vab_step *step = ps->provision;
  const struct vab_provisioner *p = vab_provisioner_by_name(step->type);
  vab_booted_begin_step(run->booted, ps->label, step->timeout_ms);
  int r = p->run(ctx, step->config, vab_booted_guest(run->booted));
  if (r == 0 || vab_cancelled(ctx))
    return r;
  const struct vab_diag *last = vab_last_error(ctx);
  if (last == NULL || last->file == NULL)
    vab_error_at(ctx, VAB_E_PROVISION, &step->mark, "%s failed", ps->name);
  return -1;
}

/* Consecutive booted steps from *index on share one boot: the builder VM
 * prepares the image for SSH and stops, qemu boots the work overlay, the
 * steps run over SSH, the appliance powers off, and the builder VM comes
 * back on the same disk to remove what vab added.  Only the segment's
 * last step gets a cache entry, taken after that clean-up, so that no
 * entry (and no image made from one) holds vab's key or sshd.  *index
 * becomes the segment's last step. */
static int run_booted_segment(struct run *run, size_t *index) {
  struct vab_ctx *ctx = run->ctx;
  size_t first = *index, last = first;
  while (last + 1 < run->plan.n_steps && step_booted(run, last + 1))
    last++;
  /* Preparing and booting count as the first booted step's time. */
  if (announce(run, first, ", booted") < 0)
    return -1;
  /* Kept beside the boot test's: OUTPUT/NAME-VERSION.booted-serial.log. */
  const char *test_log = run->b->serial_log_path;
  size_t stem = strlen(test_log);
  if (stem > strlen(".serial.log") &&
      strcmp(test_log + stem - strlen(".serial.log"), ".serial.log") == 0)
    stem -= strlen(".serial.log");
  CLEANUP_FREE char *serial = NULL;
  if (asprintf(&serial, "%.*s.booted-serial.log", (int)stem, test_log) < 0) {
    serial = NULL;
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  struct vab_booted_opts bo = {
    .disk_path = run->overlay_path, .disk_format = "qcow2",
    .firmware = run->t->disk.firmware, .accel = run->b->accel,
    .cpus = run->t->hardware.cpus, .memory = run->t->hardware.memory,
    .work_dir = run->work_dir, .serial_log_path = serial,
  };
  int r = vab_booted_new(ctx, &bo, &run->booted);
  if (r == 0)
    r = vab_booted_prepare(run->booted, run->guest);
  /* qemu writes the disk now: the builder VM lets go of it first. */
  if (r == 0 && (r = vab_guest_umount_all(run->guest)) == 0) {
    r = vab_guest_close(run->guest);
    run->guest = NULL;
  }
  if (r == 0)
    r = vab_booted_boot(run->booted, run->plan.steps[first].provision->timeout_ms);
  for (size_t i = first; i <= last && r == 0; i++) {
    if (i > first && ((r = hold_step(run, i)) < 0 ||
                      (r = announce(run, i, ", booted")) < 0))
      break;
    r = run_booted_step(run, i);
  }
  if (r == 0)
    r = vab_booted_shutdown(run->booted);
  if (r == 0)
    r = launch_session(run, last + 1);
  if (r == 0)
    r = vab_booted_restore(run->booted, run->guest);
  if (r == 0)
    vab_log(ctx, VAB_LOG_INFO, "booted steps: boot to SSH took %.1f s",
            vab_booted_boot_seconds(run->booted));
  vab_booted_free(run->booted);
  run->booted = NULL;
  if (r == 0)
    r = checkpoint(run, last);
  *index = last;
  return r;
}

static int do_provision(struct run *run) {
  if (!run->need_disk || run->have_final)
    return announce_cached(run, VAB_PLAN_PROVISION);
  if (announce_cached(run, VAB_PLAN_PROVISION) < 0)
    return -1;
  phase_begin(run, VAB_PHASE_PROVISION);
  size_t first = run->resume + 1;
  int r = open_session(run, first);
  bool any = false;
  for (size_t i = first; i < run->plan.n_steps && r == 0; i++)
    any |= run->plan.steps[i].kind == VAB_PLAN_PROVISION;
  /* Removed again by sysprep: checkpoints keep it, so a build that
   * resumes from one runs its next steps under it too. */
  if (r == 0 && any) {
    r = vab_guest_write(run->guest, POLICY_RC_D, policy_rc_d,
                        strlen(policy_rc_d));
    if (r == 0)
      r = vab_guest_chmod(run->guest, 0755, POLICY_RC_D);
  }
  for (size_t i = first; i < run->plan.n_steps && r == 0; i++)
    if (run->plan.steps[i].kind == VAB_PLAN_PROVISION) {
      r = hold_step(run, i);
      if (r == 0 && step_booted(run, i))
        r = run_booted_segment(run, &i);
      else if (r == 0)
        r = run_provisioner(run, i);
    }
  phase_end(run);
  return r;
}

/* The OVF descriptor names the guest's OS type ("debian12"): read it from
 * os-release, which is one file read where libguestfs's inspection takes
 * minutes under TCG.  An unknown OS only leaves the type generic. */
static int guest_os_from_release(struct run *run) {
  char *text = NULL;
  bool exists = false;
  run->b->guest_os[0] = '\0';
  if (vab_guest_exists(run->guest, "/etc/os-release", &exists) < 0)
    return -1;
  if (!exists) {
    vab_log(run->ctx, VAB_LOG_INFO, "guest OS: not recognised");
    return 0;
  }
  if (vab_guest_read(run->guest, "/etc/os-release", &text, NULL) < 0)
    return -1;
  char id[32] = "", version[32] = "";
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line != NULL;
       line = strtok_r(NULL, "\n", &save)) {
    char *target = strncmp(line, "ID=", 3) == 0           ? id
                   : strncmp(line, "VERSION_ID=", 11) == 0 ? version
                                                          : NULL;
    if (target == NULL)
      continue;
    const char *value = strchr(line, '=') + 1;
    size_t n = 0;
    for (; *value != '\0' && n + 1 < sizeof id; value++)
      if (*value != '"' && *value != '\'' && (unsigned char)*value > 0x20 &&
          (unsigned char)*value < 0x7f)
        target[n++] = *value;
    target[n] = '\0';
  }
  free(text);
  /* VERSION_ID "12" or "22.04": the major number is what OVF types use. */
  version[strspn(version, "0123456789")] = '\0';
  /* At most 16 + 15 characters: the field holds 31 and a NUL. */
  snprintf(run->b->guest_os, sizeof run->b->guest_os, "%.16s%.15s", id,
           version);
  vab_log(run->ctx, VAB_LOG_INFO, "guest OS: %s",
          run->b->guest_os[0] != '\0' ? run->b->guest_os : "not recognised");
  return 0;
}

/* The ESP's first byte on the disk, from its partition number. */
static int esp_start(struct run *run, uint64_t *offset) {
  const char *disk = vab_guest_disk(run->guest);
  size_t len = strlen(disk);
  const char *dev = run->layout.esp_device;
  int n = strncmp(dev, disk, len) == 0 ? atoi(dev + len) : 0;
  if (n <= 0)
    return vab_error(run->ctx, VAB_E_INTERNAL, "the ESP %s is not a "
                     "partition of %s", dev, disk);
  return vab_guest_part_start(run->guest, n, offset);
}

static int do_sysprep(struct run *run) {
  struct vab_ctx *ctx = run->ctx;
  if (!run->need_disk || run->have_final)
    return announce_cached(run, VAB_PLAN_SYSPREP);
  phase_begin(run, VAB_PHASE_SYSPREP);
  size_t index = 0;
  int r = 0;
  bool any = false;
  for (size_t i = 0; i < run->plan.n_steps; i++)
    any |= run->plan.steps[i].kind == VAB_PLAN_PROVISION;
  if (plan_find(run, VAB_PLAN_SYSPREP, &index) == NULL)
    return vab_error(ctx, VAB_E_INTERNAL, "the plan has no sysprep step");
  r = hold_step(run, index);
  if (r == 0)
    r = announce(run, index, "");
  /* No provisioner ran in a session that starts on sysprep. */
  if (r == 0 && run->guest == NULL)
    r = open_session(run, index);
  /* Written before the first provisioner; no image keeps it. */
  if (r == 0 && any)
    r = vab_guest_rm_rf(run->guest, POLICY_RC_D);
  if (r == 0)
    r = vab_sysprep_run(ctx, &run->t->sysprep, run->guest);
  if (r == 0)
    r = guest_os_from_release(run);
  if (r == 0)
    r = vab_layout_finish(ctx, run->guest, &run->layout);
  /* With SOURCE_DATE_EPOCH, the ext4 root's files go to the host, which
   * makes the file system anew from them (builder/reproducible.h). */
  bool repro = false;
  int64_t epoch = 0;
  if (r == 0)
    r = vab_repro_epoch(ctx, &repro, &epoch);
  CLEANUP_FREE char *root_tar = NULL;
  if (r == 0 && repro && strcmp(run->layout.root_fstype, "ext4") == 0 &&
      run->layout.root_offset != 0) {
    if (asprintf(&root_tar, "%s/root.tar", run->work_dir) < 0) {
      root_tar = NULL;
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
    }
    if (r == 0) {
      vab_log(ctx, VAB_LOG_INFO, "reproducible: copying out the root's files");
      r = vab_guest_mount_ro(run->guest, run->layout.root_device, "/");
    }
    if (r == 0)
      r = vab_guest_tar_out(run->guest, "/", root_tar);
    if (r == 0)
      r = vab_guest_umount_all(run->guest);
  }
  /* And the ESP's (FAT times are the builder VM's clock). */
  CLEANUP_FREE char *esp_tar = NULL;
  uint64_t esp_offset = 0;
  if (r == 0 && root_tar != NULL && run->layout.esp_device[0] != '\0') {
    r = esp_start(run, &esp_offset);
    if (r == 0 && asprintf(&esp_tar, "%s/esp.tar", run->work_dir) < 0) {
      esp_tar = NULL;
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
    }
    if (r == 0)
      r = vab_guest_mount_ro(run->guest, run->layout.esp_device, "/");
    if (r == 0)
      r = vab_guest_tar_out(run->guest, "/", esp_tar);
    if (r == 0)
      r = vab_guest_umount_all(run->guest);
  }
  if (r == 0) {
    vab_log(ctx, VAB_LOG_INFO, "stopping the builder VM");
    r = vab_guest_close(run->guest);
    run->guest = NULL;
  }
  /* The finished disk, one standalone qcow2 (what tests and exports
   * read, and sysprep's entry).  With SOURCE_DATE_EPOCH it goes through a
   * raw disk first, which the host normalises (builder/reproducible.h). */
  if (r == 0 && asprintf(&run->final_path, "%s/final.qcow2", run->work_dir) < 0) {
    run->final_path = NULL;
    r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  CLEANUP_FREE char *raw = NULL;
  if (r == 0 && repro && asprintf(&raw, "%s/final.raw", run->work_dir) < 0) {
    raw = NULL;
    r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  if (r == 0 && repro) {
    r = vab_chain_convert(ctx, run->overlay_path, "qcow2", raw, "raw");
    if (r == 0)
      r = vab_repro_finish(ctx, raw, "raw", &run->layout, root_tar,
                           esp_offset, esp_tar);
    if (r == 0)
      r = vab_chain_flatten(ctx, raw, "raw", run->final_path);
    unlink(raw);
  } else if (r == 0) {
    r = vab_chain_flatten(ctx, run->overlay_path, "qcow2", run->final_path);
  }
  /* Unpacked and removed by vab_repro_finish, unless a step before failed. */
  if (root_tar != NULL)
    unlink(root_tar);
  if (esp_tar != NULL)
    unlink(esp_tar);
  if (r == 0)
    unlink(run->overlay_path);
  struct vab_chain_state state;
  memset(&state, 0, sizeof state);
  state.layout = run->layout;
  snprintf(state.guest_os, sizeof state.guest_os, "%s", run->b->guest_os);
  if (r == 0)
    r = store_disk(run, index, run->final_path, true, &state) < 0 ? -1 : 0;
  release_held(run);
  phase_end(run);
  return r;
}

/* Put a staged entry's file at its place in the output folder.  A copy,
 * never the entry's own inode: a user who boots an output in place must
 * not change the cache under it. */
static int unstage(struct run *run, size_t index, const char *name,
                   const char *dst) {
  CLEANUP_FREE char *src = NULL;
  CLEANUP_FREE char *copy = NULL;
  if (asprintf(&src, "%s/%s/%s", run->stage_dir, run->cache_keys[index],
               name) < 0 ||
      asprintf(&copy, "%s.copy", src) < 0)
    return vab_error(run->ctx, VAB_E_NOMEM, "out of memory");
  if (vab_chain_copy(run->ctx, src, copy, false) < 0) {
    unlink(copy);
    return -1;
  }
  if (rename(copy, dst) < 0) {
    int e = errno;
    unlink(copy);
    return vab_error_errno(run->ctx, VAB_E_IO, e,
                           "cannot rename '%s' to '%s'", copy, dst);
  }
  return 0;
}

/* Store a test's or an export's files under the step's held lock. */
static int store_files(struct run *run, size_t index, const char *const *src,
                       const char *const *names, size_t n, bool link_ok,
                       const char *extra_name, const char *extra) {
  struct vab_ctx *ctx = run->ctx;
  const struct vab_plan_step *s = &run->plan.steps[index];
  if (vab_cache_has(run->cache, run->cache_keys[index]) &&
      !run->b->opts.no_cache)
    return 0;
  struct vab_cache_writer *w = NULL;
  int r = vab_cache_begin(run->cache, &run->held, vab_plan_kind_name(s->kind),
                          s->label, &w);
  for (size_t i = 0; r == 0 && i < n; i++) {
    CLEANUP_FREE char *dst = NULL;
    r = vab_cache_writer_path(w, names[i], &dst);
    if (r == 0)
      r = vab_chain_copy(ctx, src[i], dst, link_ok);
    if (r == 0)
      r = vab_cache_writer_add(w, names[i]);
  }
  if (r == 0 && extra_name != NULL) {
    CLEANUP_FREE char *dst = NULL;
    r = vab_cache_writer_path(w, extra_name, &dst);
    if (r == 0)
      r = write_small_file(ctx, dst, extra, strlen(extra));
    if (r == 0)
      r = vab_cache_writer_add(w, extra_name);
  }
  if (r == 0) {
    r = vab_cache_commit(w);
    w = NULL;
  }
  vab_cache_abort(w);
  return r;
}

static int do_tests(struct run *run) {
  struct vab_ctx *ctx = run->ctx;
  phase_begin(run, VAB_PHASE_TEST);
  int r = 0;
  for (size_t i = 0; i < run->plan.n_steps && r == 0; i++) {
    const struct vab_plan_step *s = &run->plan.steps[i];
    if (s->kind != VAB_PLAN_TEST)
      continue;
    if (run->b->opts.no_test) {
      r = announce(run, i, ": skipped (--no-test)");
      continue;
    }
    if (run->hit[i]) {
      run->b->steps[i].cached = true;
      r = announce(run, i, ": cached");
      if (r == 0)
        r = unstage(run, i, "serial.log", run->b->serial_log_path);
      if (r == 0)
        run->b->tested = true;
      continue;
    }
    r = hold_step(run, i);
    if (r == 0)
      r = announce(run, i, "");
    struct vab_boottest_opts topts = {
      .disk_path = run->final_path, .disk_format = "qcow2",
      .firmware = run->t->disk.firmware, .accel = run->b->accel,
      .cpus = run->t->hardware.cpus, .memory = run->t->hardware.memory,
      .work_dir = run->work_dir, .serial_log_path = run->b->serial_log_path,
    };
    struct vab_boottest_result res;
    memset(&res, 0, sizeof res);
    if (r == 0)
      r = vab_boottest_run(ctx, &topts, s->test, &res);
    if (r == 0) {
      run->b->tested = true;
      vab_log(ctx, VAB_LOG_INFO, "boot test passed in %.1f s", res.seconds);
      const char *src[] = {run->b->serial_log_path};
      const char *names[] = {"serial.log"};
      /* A copy: the next boot test rewrites the log. */
      r = store_files(run, i, src, names, 1, false, NULL, NULL);
    } else if (vab_last_error(ctx) == NULL ||
               vab_last_error(ctx)->code != VAB_E_CANCELLED) {
      vab_error_at(ctx, VAB_E_TEST, &s->mark, "boot test failed (serial log: %s)",
                   run->b->serial_log_path);
    }
    release_held(run);
  }
  phase_end(run);
  return r;
}

static int append_artifacts(struct run *run, struct vab_artifact *list,
                            size_t n) {
  struct vab_build *b = run->b;
  struct vab_artifact *grown =
      realloc(b->artifacts, (b->n_artifacts + n + 1) * sizeof *grown);
  if (grown == NULL) {
    vab_artifacts_free(list, n);
    return vab_error(run->ctx, VAB_E_NOMEM, "out of memory");
  }
  memcpy(grown + b->n_artifacts, list, n * sizeof *list);
  b->artifacts = grown;
  b->n_artifacts += n;
  free(list);
  return 0;
}

/* An export's entry: its files as a0, a1... and "artifacts", a line per
 * file: "a0 FORMAT TARGET|- NAME" (NAME last: it may hold spaces). */
static int export_from_cache(struct run *run, size_t index) {
  struct vab_ctx *ctx = run->ctx;
  CLEANUP_FREE char *list_path = NULL;
  if (asprintf(&list_path, "%s/%s/artifacts", run->stage_dir,
               run->cache_keys[index]) < 0)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  char text[4096];
  size_t len = 0;
  if (read_small_file(ctx, list_path, text, sizeof text - 1, &len) < 0)
    return -1;
  text[len] = '\0';
  struct vab_artifact *list = calloc(VAB_CACHE_MAX_FILES, sizeof *list);
  if (list == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  size_t n = 0;
  int r = 0;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line != NULL && r == 0;
       line = strtok_r(NULL, "\n", &save)) {
    char file[8], format[32], target[64];
    int used = 0;
    if (n == VAB_CACHE_MAX_FILES ||
        sscanf(line, "%7s %31s %63s %n", file, format, target, &used) != 3 ||
        used <= 0 || line[used] == '\0' || strchr(line + used, '/') != NULL) {
      r = vab_error(ctx, VAB_E_FORMAT, "cache: '%s' line %zu is not an "
                    "artifact", list_path, n + 1);
      break;
    }
    struct vab_artifact *a = &list[n++];
    a->file_name = strdup(line + used);
    a->format = strdup(format);
    a->target = strcmp(target, "-") != 0 ? strdup(target) : NULL;
    if (a->file_name == NULL || a->format == NULL ||
        asprintf(&a->path, "%s/%s", run->b->output_dir, a->file_name) < 0) {
      a->path = NULL;
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
      break;
    }
    CLEANUP_FREE char *src = NULL;
    if (asprintf(&src, "%s/%s/%s", run->stage_dir, run->cache_keys[index],
                 file) < 0) {
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
      break;
    }
    /* Verified when linked out: its size and digest, for the manifest. */
    const struct vab_cache_meta *m = &run->staged_meta[index];
    bool found = false;
    for (size_t f = 0; f < m->n_files && !found; f++)
      if (strcmp(m->files[f].name, file) == 0) {
        a->size = m->files[f].size;
        memcpy(a->sha256, m->files[f].sha256, sizeof a->sha256);
        found = true;
      }
    if (!found)
      r = vab_error(ctx, VAB_E_FORMAT, "cache: '%s' names '%s', which the "
                    "entry does not hold", list_path, file);
    if (r == 0)
      r = unstage(run, index, file, a->path);
  }
  if (r < 0) {
    vab_artifacts_free(list, n);
    return -1;
  }
  return append_artifacts(run, list, n);
}

static int do_export(struct run *run) {
  struct vab_ctx *ctx = run->ctx;
  phase_begin(run, VAB_PHASE_EXPORT);
  size_t first = 0;
  int r = 0;
  if (plan_find(run, VAB_PLAN_EXPORT, &first) != NULL) {
    struct buf names = BUF_INIT;
    for (size_t i = first; i < run->plan.n_steps; i++)
      if (run->plan.steps[i].kind == VAB_PLAN_EXPORT &&
          run->plan.steps[i].output != NULL)
        buf_printf(&names, "%s%s%s", names.len > 0 ? ", " : "",
                   run->plan.steps[i].output->format,
                   run->hit[i] ? " (cached)" : "");
    vab_log(ctx, VAB_LOG_INFO, "step %zu/%zu: export %s", first + 1,
            run->plan.n_steps, names.data != NULL ? names.data : "");
    buf_release(&names);
    r = vab_progress(ctx, VAB_PHASE_EXPORT, "export", 0, 0);
  }
  step_close(run);
  size_t n_out = run->t->n_outputs;
  double *output_seconds = calloc(n_out + 1, sizeof *output_seconds);
  bool *skip = calloc(n_out + 1, sizeof *skip);
  if (output_seconds == NULL || skip == NULL) {
    free(output_seconds);
    free(skip);
    phase_end(run);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  run->exporting = true;
  for (size_t i = 0; i < run->plan.n_steps && r == 0; i++) {
    const struct vab_output_spec *o = run->plan.steps[i].output;
    if (run->plan.steps[i].kind != VAB_PLAN_EXPORT || o == NULL ||
        !output_kept(run, o))
      continue;
    size_t oi = (size_t)(o - run->t->outputs);
    double start = now_seconds();
    if (run->hit[i]) {
      run->b->steps[i].cached = true;
      vab_log(ctx, VAB_LOG_INFO, "%s: cached", run->plan.steps[i].label);
      r = export_from_cache(run, i);
      run->b->steps[i].seconds = now_seconds() - start;
      continue;
    }
    if (run->cache_keys[i][0] != '\0')
      r = hold_step(run, i);
    for (size_t j = 0; j < n_out; j++)
      skip[j] = j != oi;
    struct vab_export_opts eopts = {
      .output_seconds = output_seconds,
      .disk_path = run->final_path, .disk_format = "qcow2",
      .output_dir = run->b->output_dir, .only = run->b->opts.only,
      .n_only = run->b->opts.n_only,
      .guest_os = run->b->guest_os[0] != '\0' ? run->b->guest_os : NULL,
      .signer = run->signer, .skip = skip,
    };
    struct vab_artifact *list = NULL;
    size_t n = 0;
    if (r == 0)
      r = vab_export_outputs(ctx, run->t, &eopts, &list, &n);
    if (r == 0 && run->cache_keys[i][0] != '\0') {
      const char *src[VAB_CACHE_MAX_FILES];
      const char *names[VAB_CACHE_MAX_FILES];
      static const char *const slot[] = {"a0", "a1", "a2", "a3"};
      struct buf record = BUF_INIT;
      size_t k = 0;
      for (; k < n && k < 4; k++) {
        src[k] = list[k].path;
        names[k] = slot[k];
        buf_printf(&record, "%s %s %s %s\n", slot[k], list[k].format,
                   list[k].target != NULL ? list[k].target : "-",
                   list[k].file_name);
      }
      r = record.data == NULL
              ? vab_error(ctx, VAB_E_INTERNAL, "export wrote no artifact")
              : store_files(run, i, src, names, k, false, "artifacts",
                            record.data);
      buf_release(&record);
    }
    release_held(run);
    if (r == 0 || n > 0) {
      int a = append_artifacts(run, list, n);
      if (r == 0)
        r = a;
    }
    run->b->steps[i].seconds = output_seconds[oi];
  }
  free(skip);
  free(output_seconds);
  phase_end(run);
  return r;
}

/* The build manifest lists every artifact; the template digest ties it to
 * the exact expanded template (what `vab validate --print` shows). */
static int write_manifest(struct run *run) {
  struct vab_ctx *ctx = run->ctx;
  struct vab_build *b = run->b;
  char *yaml = vab_template_to_yaml(ctx, run->t);
  if (yaml == NULL)
    return -1;
  uint8_t digest[32];
  char hex[65];
  struct vab_sha256 *h = vab_sha256_new(ctx);
  int r = h == NULL ? -1 : vab_sha256_update(h, yaml, strlen(yaml));
  if (r == 0)
    r = vab_sha256_final(h, digest);
  else
    vab_sha256_free(h);
  free(yaml);
  if (r < 0)
    return -1;
  vab_hex(digest, sizeof digest, hex);
  snprintf(b->template_digest, sizeof b->template_digest, "sha256:%s", hex);

  struct vab_manifest m;
  memset(&m, 0, sizeof m);
  m.name = (char *)run->t->name;
  m.version = (char *)run->t->version;
  m.vab_version = (char *)vab_version();
  m.template_digest = b->template_digest;
  if (vab_build_time(ctx, &m.build_time) < 0)
    return -1;
  m.n_artifacts = b->n_artifacts;
  m.artifacts = calloc(b->n_artifacts + 1, sizeof *m.artifacts);
  if (m.artifacts == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  for (size_t i = 0; i < b->n_artifacts; i++) {
    const struct vab_artifact *a = &b->artifacts[i];
    m.artifacts[i].name = a->file_name;
    m.artifacts[i].format = a->format;
    m.artifacts[i].target = a->target;
    m.artifacts[i].size = a->size;
    memcpy(m.artifacts[i].sha256, a->sha256, sizeof a->sha256);
  }
  char *name = NULL;
  r = vab_artifact_name(ctx, run->t, NULL, "manifest.json", &name);
  if (r == 0 && asprintf(&b->manifest_path, "%s/%s", b->output_dir, name) < 0) {
    b->manifest_path = NULL;
    r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  free(name);
  if (r == 0)
    r = vab_manifest_write(ctx, b->manifest_path, &m);
  free(m.artifacts);
  if (r == 0)
    vab_log(ctx, VAB_LOG_INFO, "wrote %s", b->manifest_path);
  return r;
}

/* `sign:` signs the manifest with the template's key.  An encrypted key's
 * passphrase comes from VAB_SIGN_PASSPHRASE: a template never holds it. */
static int load_signer(struct run *run, struct vab_signer **signer) {
  const struct vab_sign_spec *spec = run->t->sign;
  const struct vab_build_opts *opts = &run->b->opts;
  *signer = NULL;
  const char *pass = getenv("VAB_SIGN_PASSPHRASE");
  if (pass != NULL && *pass == '\0')
    pass = NULL;
  if (opts->sign_key != NULL) {
    if (vab_signer_load(run->ctx, opts->sign_key, opts->sign_cert, pass,
                        signer) < 0)
      return vab_error(run->ctx, VAB_E_SIGNATURE,
                       "cannot sign the build with '%s' (--sign-key)",
                       opts->sign_key);
    return 0;
  }
  if (spec == NULL)
    return 0;
  if (vab_signer_load(run->ctx, spec->key, spec->cert, pass, signer) < 0)
    return vab_error_at(run->ctx, VAB_E_SIGNATURE, &spec->mark,
                        "cannot sign the build with '%s'", spec->key);
  return 0;
}

static int do_sign(struct run *run, struct vab_signer *signer) {
  struct vab_build *b = run->b;
  phase_begin(run, VAB_PHASE_SIGN);
  int r = write_manifest(run);
  if (r == 0 && signer != NULL) {
    if (asprintf(&b->signature_path, "%s.sig", b->manifest_path) < 0) {
      b->signature_path = NULL;
      r = vab_error(run->ctx, VAB_E_NOMEM, "out of memory");
    }
    if (r == 0)
      r = vab_sign_file(run->ctx, signer, b->manifest_path, b->signature_path);
    if (r == 0)
      vab_log(run->ctx, VAB_LOG_INFO, "signed: %s", b->signature_path);
  }
  phase_end(run);
  return r;
}

/* `publish:` pushes the finished build.  A failed push keeps the build:
 * it is complete and signed, and `vab publish DIR REF` can push it later. */
static int do_publish(struct run *run, struct vab_signer *signer) {
  struct vab_ctx *ctx = run->ctx;
  struct vab_build *b = run->b;
  if (run->t->n_publish == 0)
    return 0;
  phase_begin(run, VAB_PHASE_PUBLISH);
  int r = 0;
  for (size_t i = 0; i < run->t->n_publish && r == 0; i++) {
    const struct vab_publish_spec *spec = &run->t->publish[i];
    struct vab_publish_opts popts;
    memset(&popts, 0, sizeof popts);
    popts.tags = spec->tags;
    popts.n_tags = spec->n_tags;
    popts.signer = signer;
    struct vab_publish_result res;
    vab_log(ctx, VAB_LOG_INFO, "publish %s", spec->ref);
    r = vab_publish_dir(ctx, b->manifest_path, spec->ref, &popts, &res);
    if (r < 0) {
      vab_error_at(ctx, VAB_E_NETWORK, &spec->mark,
                   "publishing to '%s' failed; the build is kept in %s",
                   spec->ref, b->output_dir);
      break;
    }
    b->n_published++;
    memcpy(b->published_digest, res.digest, sizeof b->published_digest);
    vab_log(ctx, VAB_LOG_INFO, "published %s@%s (%zu blobs uploaded, %zu "
            "already there)", spec->ref, res.digest, res.blobs_uploaded,
            res.blobs_skipped);
  }
  phase_end(run);
  return r;
}

/* After a failed export, outputs that were completed before the failure
 * must not stay behind under their final names. */
static void remove_artifacts(struct run *run) {
  struct vab_build *b = run->b;
  if (b->signature_path != NULL)
    unlink(b->signature_path);
  if (b->manifest_path != NULL)
    unlink(b->manifest_path);
  for (size_t i = 0; i < b->n_artifacts; i++)
    if (b->artifacts[i].path != NULL)
      unlink(b->artifacts[i].path);
  vab_artifacts_free(b->artifacts, b->n_artifacts);
  b->artifacts = NULL;
  b->n_artifacts = 0;
}

/* The size limit, after every build that used the cache.  Its own
 * context: a cache that cannot be pruned is a warning, never the build's
 * error. */
static void prune_cache(struct vab_ctx *ctx, struct vab_build *b) {
  struct vab_ctx *quiet = vab_ctx_new();
  if (quiet == NULL)
    return;
  struct vab_cache *cache = NULL;
  struct vab_cache_prune_opts popts = {
    .max_size = b->cache_max_size, .older_than = -1,
  };
  struct vab_cache_prune_result res;
  if (vab_cache_open(quiet, b->cache_dir, false, &cache) < 0 ||
      vab_cache_prune(cache, &popts, &res) < 0) {
    const struct vab_diag *d = vab_last_error(quiet);
    vab_warn_at(ctx, NULL, "cannot prune the cache '%s': %s", b->cache_dir,
                d != NULL ? d->message : "unknown error");
  } else if (res.removed > 0) {
    vab_log(ctx, VAB_LOG_INFO, "cache: removed %zu least recently used "
            "entries (%llu bytes) to stay within %llu bytes", res.removed,
            (unsigned long long)res.freed,
            (unsigned long long)b->cache_max_size);
  }
  vab_cache_close(cache);
  vab_ctx_free(quiet);
}

static void forward_log(void *opaque, enum vab_log_level level,
                        const char *line) {
  vab_log(opaque, level, "%s", line);
}

/* --cache-to, after a successful build: every planned step's entry that
 * the store holds, made or reused.  Its own context: a registry that
 * fails is a warning, and the build's artifacts stay. */
static void push_cache(struct run *run) {
  struct vab_ctx *ctx = run->ctx;
  struct vab_build *b = run->b;
  struct vab_ctx *quiet = vab_ctx_new();
  if (quiet == NULL)
    return;
  b->cache_push_ran = true;
  vab_ctx_set_log(quiet, forward_log, ctx);
  struct vab_cache *cache = NULL;
  const char *ref = vab_remote_cache_ref(b->cache_to);
  int r = vab_cache_open(quiet, b->cache_dir, false, &cache);
  for (size_t i = 0; r == 0 && i < run->plan.n_steps; i++) {
    const struct vab_plan_step *ps = &run->plan.steps[i];
    char key[65];
    /* The entry's key: an export's is not its plan key. */
    memcpy(key, run->cache_keys != NULL ? run->cache_keys[i] : ps->key,
           sizeof key);
    if (key[0] == '\0')
      continue;
    if (vab_cache_push(cache, key, b->cache_to,
                                 &b->cache_pushed) < 0) {
      const struct vab_diag *d = vab_last_error(quiet);
      vab_warn_at(ctx, NULL, "%s", d != NULL ? d->message : "unknown error");
      b->cache_push_failed = true;
      vab_diag_clear(quiet);
      /* A dead registry: the other entries would fail the same way. */
      if (!vab_remote_cache_alive(b->cache_to))
        break;
    }
  }
  if (r < 0) {
    const struct vab_diag *d = vab_last_error(quiet);
    vab_warn_at(ctx, NULL, "registry cache %s: cannot push: %s", ref,
                d != NULL ? d->message : "unknown error");
    b->cache_push_failed = true;
  }
  const struct vab_remote_cache_stats *s = &b->cache_pushed;
  vab_log(ctx, VAB_LOG_INFO, "registry cache %s: %zu entries pushed, %zu "
          "there already; %zu blobs uploaded, %zu skipped (the registry had "
          "them)%s", ref, s->entries_pushed, s->entries_present,
          s->blobs_uploaded, s->blobs_skipped,
          b->cache_push_failed ? "; some entries were not pushed" : "");
  if (b->cache_push_failed)
    vab_warn_at(ctx, NULL, "registry cache %s is incomplete; the build and "
                "its artifacts are fine", ref);
  vab_cache_close(cache);
  vab_ctx_free(quiet);
}

int vab_build_run(struct vab_ctx *ctx, struct vab_build *b) {
  struct run run;
  memset(&run, 0, sizeof run);
  run.ctx = ctx;
  run.b = b;
  run.t = b->template;
  double start = now_seconds();

  run.step = SIZE_MAX;
  run.held.fd = -1;
  run.stage_fd = -1;
  phase_begin(&run, VAB_PHASE_PLAN);
  int r = vab_plan_build(ctx, run.t, &run.plan);
  if (r == 0)
    r = init_steps(&run);
  if (r == 0)
    vab_log(ctx, VAB_LOG_INFO, "%s %s: %zu steps", run.t->name,
            run.t->version, run.plan.n_steps);
  phase_end(&run);
  /* A key that cannot be used fails the build before hours of work. */
  if (r == 0)
    r = load_signer(&run, &run.signer);
  if (r == 0)
    r = make_work_dir(&run);
  if (r == 0)
    r = init_cache(&run);
  if (r == 0)
    r = find_cached(&run);
  /* The KVM probe (seconds where nested KVM hangs) only when a VM runs:
   * a rebuild that the cache has whole starts none. */
  if (r == 0 && run.need_disk) {
    phase_begin(&run, VAB_PHASE_PLAN);
    r = vab_accel_resolve(ctx, b->opts.accel, &b->accel, b->accel_reason,
                          sizeof b->accel_reason);
    if (r == 0)
      vab_log(ctx, VAB_LOG_INFO, "accelerator %s%s%s%s",
              vab_accel_name(b->accel), b->accel_reason[0] ? " (" : "",
              b->accel_reason, b->accel_reason[0] ? ")" : "");
    phase_end(&run);
  }
  if (r == 0)
    r = do_source_and_layout(&run);
  if (r == 0)
    r = do_provision(&run);
  if (r == 0)
    r = do_sysprep(&run);
  if (r == 0)
    r = vab_check_cancel(ctx);
  if (r == 0)
    r = do_tests(&run);
  step_close(&run);
  if (r == 0)
    r = vab_check_cancel(ctx);
  if (r == 0)
    r = do_export(&run);
  if (r == 0)
    r = vab_check_cancel(ctx);
  if (r == 0)
    r = do_sign(&run, run.signer);
  if (r == 0)
    r = vab_check_cancel(ctx);
  step_close(&run);   /* a failed step's seconds too */
  bool built = r == 0;
  if (r == 0)
    r = do_publish(&run, run.signer);
  if (built && b->cache_to != NULL)
    push_cache(&run);
  vab_signer_free(run.signer);

  if (r < 0) {
    /* Kills the appliance at once; its disk no longer matters. */
    vab_guest_abort(run.guest);
    run.guest = NULL;
    /* Its qemu killed, its key folder removed. */
    vab_booted_free(run.booted);
    run.booted = NULL;
    if (run.exporting && !built)
      remove_artifacts(&run);
  }
  release_held(&run);
  if (run.stage_dir != NULL)
    remove_tree(run.stage_dir);
  if (run.stage_fd >= 0)
    close(run.stage_fd);
  bool cache_used = run.cache != NULL;
  vab_cache_close(run.cache);
  if (run.work_dir != NULL) {
    if (r < 0 && b->opts.keep_on_error) {
      b->kept_work_dir = run.work_dir;
      run.work_dir = NULL;
      vab_log(ctx, VAB_LOG_INFO, "kept the work folder %s", b->kept_work_dir);
    } else {
      remove_tree(run.work_dir);
    }
  }
  free(run.work_dir);
  free(run.disk_path);
  free(run.hit);
  free(run.cache_keys);
  free(run.staged_meta);
  free(run.steps_dir);
  free(run.stage_dir);
  free(run.overlay_path);
  free(run.final_path);
  free(run.fetched);
  vab_plan_release(&run.plan);
  if (cache_used)
    prune_cache(ctx, b);
  b->total_seconds = now_seconds() - start + b->phase_seconds[VAB_PHASE_LOAD];
  return r;
}
