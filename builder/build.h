/* vab build: the whole pipeline for one template.
 *
 *   load -> plan -> source -> layout -> provision -> sysprep -> test -> export
 *   -> manifest (always) -> sign (with `sign:`) -> publish (with `publish:`)
 *
 * Everything between source and export happens in a work folder under
 * $TMPDIR (default /var/tmp), removed at the end whatever happens unless
 * keep_on_error is set and the build failed.  Artifacts are written under
 * temporary names and renamed when complete; a failed or cancelled build
 * leaves none under a final name.
 *
 * Two calls, so that the caller can open the build log (named after the
 * template) before the long part starts:
 *
 *   vab_build_load()   load and check the template, name the outputs
 *   vab_build_run()    everything else
 *
 * Every step's result lives in the step cache (builder/cache.h, and
 * builder/chain.h for the disk checkpoints) under opts.cache_dir, and a
 * build runs only the steps after the longest cached prefix of its plan.
 * After each build the cache is pruned to VAB_CACHE_MAX_SIZE (default
 * 10 GiB), least recently used entries first.  With opts.cache_from, a local
 * miss looks in that registry repository; with opts.cache_to, every
 * step's entry in the store is pushed there after a successful build.
 */
#ifndef VAB_BUILDER_BUILD_H
#define VAB_BUILDER_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vab/template.h"
#include "vab/progress.h"
#include "builder/accel.h"
#include "builder/export.h"
#include "publish/publish.h"
#include "publish/step-cache.h"

struct vab_build_opts {
  const char *template_path;
  const struct vab_var *vars;     /* --var overrides */
  size_t n_vars;
  const char *output_dir;         /* NULL: ./output/NAME */
  const char *const *only;        /* --only FORMAT filter, or NULL */
  size_t n_only;
  bool no_test;
  enum vab_accel accel;
  const char *cache_dir;          /* NULL: vab_default_cache_dir() */
  bool no_cache;                  /* run every step, refresh the entries */
  bool keep_on_error;
  /* --sign-key/--sign-cert: sign with this key instead of the template's
   * `sign:` (a pipeline's secret, which the template need not name). */
  const char *sign_key;
  const char *sign_cert;
  /* --cache-from / --cache-to: a step cache shared through a registry
   * repository, HOST/REPO (docs/build.md); either may be NULL.  A registry
   * that fails is a warning, never the build's error. */
  const char *cache_from;
  const char *cache_to;
  struct vab_registry_opts cache_registry;  /* auth, TLS, limits of both */
};

/* One planned step, as it went (the --json "steps"). */
struct vab_build_step {
  const char *kind;               /* vab_plan_kind_name() */
  char label[128];
  char key[65];
  bool cached;                    /* not run: its result came from the cache */
  bool booted;                    /* ran (or runs) in the booted appliance */
  double seconds;
};

struct vab_build {
  struct vab_build_opts opts;
  struct vab_template *template;
  char *output_dir;               /* created by vab_build_load() */
  char *log_path;                 /* OUTPUT/NAME-VERSION.log */
  char *serial_log_path;          /* OUTPUT/NAME-VERSION.serial.log */
  char *cache_dir;

  /* Filled by vab_build_run(). */
  double phase_seconds[VAB_PHASE_LAST];
  bool phase_ran[VAB_PHASE_LAST];
  double total_seconds;
  enum vab_accel accel;           /* resolved */
  char accel_reason[256];         /* why TCG was chosen, or "" */
  char guest_os[32];              /* "debian12", or "" */
  bool source_cached;
  struct vab_build_step *steps;   /* every planned step, in order */
  size_t n_steps;
  uint64_t cache_max_size;        /* applied after the build */
  struct vab_remote_cache *cache_from, *cache_to;  /* from the opts */
  struct vab_remote_cache_stats cache_pushed;      /* --cache-to */
  bool cache_push_ran;            /* --cache-to was tried (the build built) */
  bool cache_push_failed;         /* some entry was not pushed (warned) */
  bool tested;
  struct vab_artifact *artifacts;
  size_t n_artifacts;
  char *manifest_path;            /* OUTPUT/NAME-VERSION.manifest.json */
  char *signature_path;           /* MANIFEST.sig when the build signed */
  char template_digest[72];       /* "sha256:<hex>" of the canonical YAML */
  size_t n_published;             /* publish: entries pushed */
  char published_digest[72];      /* of the last push, or "" */
  char *kept_work_dir;            /* keep_on_error after a failure */
};

int vab_build_load(struct vab_ctx *ctx, const struct vab_build_opts *opts,
                   struct vab_build **out);
int vab_build_run(struct vab_ctx *ctx, struct vab_build *b);
void vab_build_free(struct vab_build *b);

#endif
