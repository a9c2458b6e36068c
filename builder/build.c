/* vab build: the orchestration (see build.h). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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
#include "common/cleanup.h"
#include "builder/boottest.h"
#include "builder/cache.h"
#include "builder/build.h"
#include "builder/guest.h"
#include "builder/layout.h"
#include "builder/plan.h"
#include "builder/reproducible.h"
#include "builder/source.h"
#include "builder/sysprep.h"
#include "builder/vocab.h"
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
  /* A bad limit fails now, not after the build. */
  if (r == 0)
    r = vab_cache_default_max_size(ctx, &b->cache_max_size);
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
  struct vab_layout layout;
  double phase_start;
  enum vab_phase phase;
  bool exporting;
  struct vab_signer *signer;   /* `sign:`, loaded before the build starts */
  size_t step;                 /* the step being timed, or SIZE_MAX */
  double step_start;
  size_t source_index;         /* for source_decided() */
  int announced;               /* its announce()'s result */
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

static int create_disk(struct run *run) {
  int fd = open(run->disk_path,
                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return vab_error_errno(run->ctx, VAB_E_IO, errno, "cannot create '%s'",
                           run->disk_path);
  /* Sparse: only what the guest writes takes space. */
  int r = 0;
  if (ftruncate(fd, (off_t)run->t->disk.size) < 0)
    r = vab_error_errno(run->ctx, VAB_E_IO, errno, "cannot size '%s'",
                        run->disk_path);
  close(fd);
  return r;
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

static int do_source_and_layout(struct run *run) {
  struct vab_ctx *ctx = run->ctx;
  size_t index = 0;
  const struct vab_plan_step *step = plan_find(run, VAB_PLAN_SOURCE, &index);
  if (step == NULL)
    return vab_error(ctx, VAB_E_INTERNAL, "the plan has no source step");

  phase_begin(run, VAB_PHASE_SOURCE);
  step_open(run, index);
  run->source_index = index;
  struct vab_source_opts sopts = {
    .cache_dir = run->b->cache_dir, .work_dir = run->work_dir,
    .key = step->key, .disk_path = run->disk_path, .label = step->label,
    .refresh = run->b->opts.no_cache,
    .decided = source_decided, .opaque = run,
  };
  struct vab_source_result src;
  memset(&src, 0, sizeof src);
  int r = vab_source_prepare(ctx, run->t, &sopts, &src);
  if (r == 0 && run->announced < 0)
    r = -1;
  run->b->source_cached = src.cached;
  if (r == 0 && !src.disk_ready)
    r = create_disk(run);
  phase_end(run);
  if (r < 0) {
    vab_source_result_release(&src);
    return -1;
  }

  phase_begin(run, VAB_PHASE_LAYOUT);
  if (plan_find(run, VAB_PLAN_LAYOUT, &index) != NULL) {
    r = announce(run, index, "");
    /* The layout's ids derive from its key (builder/reproducible.h). */
    snprintf(run->layout.seed, sizeof run->layout.seed, "%s",
             run->plan.steps[index].key);
  }
  struct vab_guest_opts gopts = {
    .disk_path = run->disk_path, .disk_format = "raw",
    .accel = run->b->accel, .network = false,
  };
  if (r == 0)
    r = vab_guest_launch(ctx, &gopts, &run->guest);
  if (r == 0 && src.tarball != NULL)
    r = vab_layout_create(ctx, run->t, run->guest, src.tarball, &run->layout);
  else if (r == 0)
    r = vab_layout_adopt(ctx, run->t, run->guest, &run->layout);
  phase_end(run);
  vab_source_result_release(&src);
  return r;
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
  if (r == 0 || vab_cancelled(ctx))
    return r;
  /* Provisioners point at their own keys; anything else (the builder VM
   * failing under them) gets the step's location here. */
  const struct vab_diag *last = vab_last_error(ctx);
  if (last == NULL || last->file == NULL)
    vab_error_at(ctx, VAB_E_PROVISION, &step->mark, "%s failed", ps->name);
  return -1;
}

static int do_provision(struct run *run) {
  phase_begin(run, VAB_PHASE_PROVISION);
  int r = 0;
  bool any = false;
  for (size_t i = 0; i < run->plan.n_steps && r == 0; i++)
    any |= run->plan.steps[i].kind == VAB_PLAN_PROVISION;
  if (any) {
    r = vab_guest_write(run->guest, POLICY_RC_D, policy_rc_d,
                        strlen(policy_rc_d));
    if (r == 0)
      r = vab_guest_chmod(run->guest, 0755, POLICY_RC_D);
  }
  for (size_t i = 0; i < run->plan.n_steps && r == 0; i++)
    if (run->plan.steps[i].kind == VAB_PLAN_PROVISION)
      r = run_provisioner(run, i);
  if (r == 0 && any)
    r = vab_guest_rm_rf(run->guest, POLICY_RC_D);
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
      if (*value != '"' && *value != '\'')
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

static int do_sysprep(struct run *run) {
  struct vab_ctx *ctx = run->ctx;
  phase_begin(run, VAB_PHASE_SYSPREP);
  size_t index = 0;
  int r = 0;
  if (plan_find(run, VAB_PLAN_SYSPREP, &index) != NULL)
    r = announce(run, index, "");
  if (r == 0)
    r = vab_sysprep_run(ctx, &run->t->sysprep, run->guest);
  if (r == 0)
    r = guest_os_from_release(run);
  if (r == 0)
    r = vab_layout_finish(ctx, run->guest, &run->layout);
  if (r == 0) {
    vab_log(ctx, VAB_LOG_INFO, "stopping the builder VM");
    r = vab_guest_close(run->guest);
    run->guest = NULL;
  }
  /* SOURCE_DATE_EPOCH: normalise the closed disk on the host. */
  if (r == 0)
    r = vab_repro_finish(ctx, run->disk_path, "raw", &run->layout,
                         plan_find(run, VAB_PLAN_SYSPREP, &index) != NULL
                             ? run->plan.steps[index].key
                             : run->layout.seed);
  phase_end(run);
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
    r = announce(run, i, "");
    struct vab_boottest_opts topts = {
      .disk_path = run->disk_path, .disk_format = "raw",
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
    } else if (vab_last_error(ctx) == NULL ||
               vab_last_error(ctx)->code != VAB_E_CANCELLED) {
      vab_error_at(ctx, VAB_E_TEST, &s->mark, "boot test failed (serial log: %s)",
                   run->b->serial_log_path);
    }
  }
  phase_end(run);
  return r;
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
        buf_printf(&names, "%s%s", names.len > 0 ? ", " : "",
                   run->plan.steps[i].output->format);
    vab_log(ctx, VAB_LOG_INFO, "step %zu/%zu: export %s", first + 1,
            run->plan.n_steps, names.data != NULL ? names.data : "");
    buf_release(&names);
    r = vab_progress(ctx, VAB_PHASE_EXPORT, "export", 0, 0);
  }
  step_close(run);
  double *output_seconds = calloc(run->t->n_outputs + 1,
                                  sizeof *output_seconds);
  if (output_seconds == NULL) {
    phase_end(run);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  struct vab_export_opts eopts = {
    .output_seconds = output_seconds,
    .disk_path = run->disk_path, .disk_format = "raw",
    .output_dir = run->b->output_dir, .only = run->b->opts.only,
    .n_only = run->b->opts.n_only,
    .guest_os = run->b->guest_os[0] != '\0' ? run->b->guest_os : NULL,
    .signer = run->signer,
  };
  run->exporting = true;
  if (r == 0)
    r = vab_export_outputs(ctx, run->t, &eopts, &run->b->artifacts,
                           &run->b->n_artifacts);
  for (size_t i = 0; i < run->plan.n_steps; i++) {
    const struct vab_output_spec *o = run->plan.steps[i].output;
    if (run->plan.steps[i].kind == VAB_PLAN_EXPORT && o != NULL &&
        o >= run->t->outputs && o < run->t->outputs + run->t->n_outputs)
      run->b->steps[i].seconds = output_seconds[o - run->t->outputs];
  }
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

int vab_build_run(struct vab_ctx *ctx, struct vab_build *b) {
  struct run run;
  memset(&run, 0, sizeof run);
  run.ctx = ctx;
  run.b = b;
  run.t = b->template;
  double start = now_seconds();

  run.step = SIZE_MAX;
  phase_begin(&run, VAB_PHASE_PLAN);
  int r = vab_plan_build(ctx, run.t, &run.plan);
  if (r == 0)
    r = init_steps(&run);
  if (r == 0)
    r = vab_accel_resolve(ctx, b->opts.accel, &b->accel, b->accel_reason,
                          sizeof b->accel_reason);
  if (r == 0)
    vab_log(ctx, VAB_LOG_INFO, "%s %s: %zu steps, accelerator %s%s%s%s",
            run.t->name, run.t->version, run.plan.n_steps,
            vab_accel_name(b->accel), b->accel_reason[0] ? " (" : "",
            b->accel_reason, b->accel_reason[0] ? ")" : "");
  phase_end(&run);
  /* A key that cannot be used fails the build before hours of work. */
  if (r == 0)
    r = load_signer(&run, &run.signer);
  if (r == 0)
    r = make_work_dir(&run);
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
  vab_signer_free(run.signer);

  if (r < 0) {
    /* Kills the appliance at once; its disk no longer matters. */
    vab_guest_abort(run.guest);
    run.guest = NULL;
    if (run.exporting && !built)
      remove_artifacts(&run);
  }
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
  vab_plan_release(&run.plan);
  if (b->phase_ran[VAB_PHASE_SOURCE])
    prune_cache(ctx, b);
  b->total_seconds = now_seconds() - start + b->phase_seconds[VAB_PHASE_LOAD];
  return r;
}
