/* The step cache store and a registry cache behind it, driven from a shell
 * test (test-cache-remote.sh) without a build:
 *
 *   cache-remote-tool put CACHE KEY FILE...    store an entry of FILEs
 *   cache-remote-tool push CACHE REPO KEY...   push entries; prints
 *       "pushed P present Q uploaded U skipped S"
 *   cache-remote-tool get CACHE REPO KEY DEST  vab_cache_get with REPO
 *       behind the store; prints "hit" or "miss", then "hashed N": the
 *       bytes the store hashed (vab_cache_bytes_hashed)
 *   cache-remote-tool source CACHE REPO|- TEMPLATE WORK  the source step
 *       (vab_source_prepare, REPO as its --cache-from); prints "cached
 *       KEY" or "made KEY", KEY being the entry's
 *
 * Registry options from the environment: CACHE_CA_CERT (--ca-cert) and
 * the usual VAB_REGISTRY_USER / VAB_REGISTRY_PASSWORD.  Log lines and
 * diagnostics go to stderr ("warning: ...", "error: ...").  Exit 0 when
 * the call returned 0 or more, 1 otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builder/cache.h"
#include "builder/source.h"
#include "builder/vocab.h"
#include "common/io.h"
#include "publish/step-cache.h"
#include "vab/progress.h"
#include "vab/vab.h"

static void log_line(void *opaque, enum vab_log_level level,
                     const char *line) {
  (void)opaque;
  fprintf(stderr, "%s: %s\n", level == VAB_LOG_WARNING ? "log-warning" : "log",
          line);
}

static void show_diags(struct vab_ctx *ctx) {
  for (size_t i = 0; i < vab_diag_count(ctx); i++) {
    const struct vab_diag *d = vab_diag_get(ctx, i);
    fprintf(stderr, "%s: %s\n",
            d->severity == VAB_SEV_ERROR     ? "error"
            : d->severity == VAB_SEV_WARNING ? "warning"
                                             : "note",
            d->message);
  }
}

static int copy_into(struct vab_cache_writer *w, const char *src) {
  const char *name = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
  char *dst = NULL;
  if (vab_cache_writer_path(w, name, &dst) < 0)
    return -1;
  FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
  int r = in != NULL && out != NULL ? 0 : -1;
  char block[65536];
  size_t n;
  while (r == 0 && (n = fread(block, 1, sizeof block, in)) > 0)
    if (fwrite(block, 1, n, out) != n)
      r = -1;
  if (in != NULL)
    fclose(in);
  if (out != NULL && fclose(out) != 0)
    r = -1;
  free(dst);
  return r < 0 ? -1 : vab_cache_writer_add(w, name);
}

static int put(struct vab_cache *cache, const char *key, char **files,
               int n) {
  struct vab_cache_lock lock;
  struct vab_cache_writer *w = NULL;
  if (vab_cache_lock(cache, key, NULL, &lock) < 0)
    return -1;
  int r = vab_cache_begin(cache, &lock, "source", "test entry", &w);
  for (int i = 0; r == 0 && i < n; i++)
    r = copy_into(w, files[i]);
  if (r == 0)
    r = vab_cache_commit(w);
  else if (w != NULL)
    vab_cache_abort(w);
  vab_cache_unlock(&lock);
  return r;
}

/* A plan key of the test's own: the entry's key is derived from it. */
static const char plan_key[] =
  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static int source(struct vab_ctx *ctx, const char *cache_dir,
                  struct vab_remote_cache *rc, const char *template_path,
                  const char *work) {
  struct vab_load_opts lopts = {.vocab = vab_template_vocab()};
  struct vab_template *t = NULL;
  if (vab_template_load(ctx, template_path, &lopts, &t) < 0)
    return -1;
  struct vab_source_opts opts = {
    .cache_dir = cache_dir, .work_dir = work, .key = plan_key,
    .label = "source: test", .cache_remote = rc,
  };
  struct vab_source_result res = {0};
  /* The entry is stored under the plan's key itself. */
  int r = vab_source_prepare(ctx, t, &opts, &res);
  if (r == 0)
    printf("%s %s\n", res.cached ? "cached" : "made", plan_key);
  vab_source_result_release(&res);
  vab_template_free(t);
  return r;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: see the comment at the top of %s\n", __FILE__);
    return 2;
  }
  struct vab_ctx *ctx = vab_ctx_new();
  if (ctx == NULL)
    return 1;
  vab_ctx_set_log(ctx, log_line, NULL);
  const char *cmd = argv[1];
  struct vab_registry_opts ropts = {.ca_cert = getenv("CACHE_CA_CERT")};
  struct vab_cache *cache = NULL;
  struct vab_remote_cache *rc = NULL;
  int r = vab_cache_open(ctx, argv[2], true, &cache);
  if (r == 0 && strcmp(cmd, "put") == 0) {
    r = put(cache, argv[3], argv + 4, argc - 4);
  } else if (r == 0 && strcmp(cmd, "push") == 0 && argc >= 5) {
    struct vab_remote_cache_stats stats = {0};
    r = vab_remote_cache_new(ctx, argv[3], &ropts, true, &rc);
    for (int i = 4; r == 0 && i < argc; i++)
      if (vab_cache_push(cache, argv[i], rc, &stats) < 0)
        r = -1;
    printf("pushed %zu present %zu uploaded %zu skipped %zu\n",
           stats.entries_pushed, stats.entries_present, stats.blobs_uploaded,
           stats.blobs_skipped);
  } else if (r == 0 && strcmp(cmd, "get") == 0 && argc == 6) {
    struct vab_cache_lock lock;
    struct vab_cache_meta meta;
    r = vab_remote_cache_new(ctx, argv[3], &ropts, false, &rc);
    if (r == 0)
      vab_cache_set_remote(cache, rc);
    if (r == 0 && (r = vab_cache_lock(cache, argv[4], NULL, &lock)) == 0) {
      r = vab_cache_get(cache, &lock, argv[5], &meta);
      vab_cache_unlock(&lock);
      if (r >= 0)
        printf("%s\nhashed %llu\n", r == 1 ? "hit" : "miss",
               (unsigned long long)vab_cache_bytes_hashed(cache));
    }
  } else if (r == 0 && strcmp(cmd, "source") == 0 && argc == 6) {
    if (strcmp(argv[3], "-") != 0)
      r = vab_remote_cache_new(ctx, argv[3], &ropts, false, &rc);
    if (r == 0)
      r = source(ctx, argv[2], rc, argv[4], argv[5]);
  } else if (r == 0) {
    fprintf(stderr, "unknown command or wrong arguments\n");
    r = -1;
  }
  show_diags(ctx);
  vab_cache_close(cache);
  vab_remote_cache_free(rc);
  vab_ctx_free(ctx);
  return r < 0 ? 1 : 0;
}
