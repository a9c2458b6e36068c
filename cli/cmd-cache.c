/* vab cache: list, prune and clear the step cache. */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/size.h"
#include "builder/cache.h"
#include "builder/source.h"
#include "vab/template.h"

static int run_cache(struct vab_ctx *ctx, int argc, char **argv);

const struct cli_command cli_cmd_cache = {
  .name = "cache",
  .run = run_cache,
  .summary = "list, prune or clear the step cache that builds share",
  .usage =
    "usage: vab cache list [--json] [--cache-dir DIR]\n"
    "       vab cache prune [--max-size SIZE] [--older-than DURATION]\n"
    "                       [--cache-dir DIR]\n"
    "       vab cache clear [--cache-dir DIR]\n"
    "\n"
    "The step cache keeps the results of build steps (today: the bootstrap\n"
    "tarballs) under their step keys, so that the next build, or one running\n"
    "at the same time, reuses them.  Every entry is verified against its\n"
    "recorded sha256 before a build uses it.\n"
    "\n"
    "  list    every entry: key, size, last use, step kind and label, and\n"
    "          whether it is sound (sizes checked; the build checks digests)\n"
    "  prune   remove unsound entries, entries unused for longer than\n"
    "          DURATION, then the least recently used until the cache holds\n"
    "          at most SIZE; with neither option, SIZE is the limit builds\n"
    "          apply: VAB_CACHE_MAX_SIZE, default 10G\n"
    "  clear   remove every entry\n"
    "\n"
    "Entries that a running build holds are kept.  Names in the cache folder\n"
    "that are not the cache's own are left alone.\n"
    "\n"
    "Options:\n"
    "  --cache-dir DIR        the cache (default, as for vab build:\n"
    "                         $XDG_CACHE_HOME/vab or ~/.cache/vab)\n"
    "  --json                 list: write the entries as JSON to stdout\n"
    "  --max-size SIZE        prune: keep at most SIZE (512M, 10G, 10GiB)\n"
    "  --older-than DURATION  prune: remove entries unused for longer\n"
    "                         (90m, 12h, 30d)\n"
    "  -h, --help             show this help\n"
    "\n"
    "Exit status: 0 done, 1 the cache could not be read or changed, 2 usage\n"
    "error.\n",
};

/* --older-than: the durations templates use ("90m", "12h", "30d"). */
static int parse_age(const char *text, int64_t *seconds) {
  uint64_t ms;
  if (vab_parse_duration_ms(text, &ms) < 0 || ms / 1000 > INT64_MAX)
    return -1;
  *seconds = (int64_t)(ms / 1000);
  return 0;
}

static void format_time(time_t t, char *out, size_t len) {
  struct tm tm;
  if (t <= 0 || gmtime_r(&t, &tm) == NULL ||
      strftime(out, len, "%Y-%m-%d %H:%M", &tm) == 0)
    snprintf(out, len, "%-16s", "-");
}

static void print_list(const char *dir, const struct vab_cache_info *list,
                       size_t n, const struct vab_cache_legacy *legacy) {
  uint64_t total = 0;
  if (n > 0)
    printf("%-12s  %10s  %-16s  %-9s  %s\n", "KEY", "SIZE", "LAST USED (UTC)",
           "KIND", "LABEL");
  for (size_t i = 0; i < n; i++) {
    const struct vab_cache_info *e = &list[i];
    char size[32], used[32];
    cli_human_size(e->size, size, sizeof size);
    format_time(e->last_used, used, sizeof used);
    total += e->size;
    if (e->ok)
      printf("%.12s  %10s  %s  %-9s  %s\n", e->meta.key, size, used,
             e->meta.kind, e->meta.label);
    else
      printf("%.12s  %10s  %s  %-9s  unsound: %s\n", e->meta.key, size, used,
             "-", e->problem);
  }
  char size[32];
  cli_human_size(total, size, sizeof size);
  printf("%zu %s, %s in %s\n", n, n == 1 ? "entry" : "entries", size, dir);
  if (legacy->present) {
    cli_human_size(legacy->size, size, sizeof size);
    printf("and %s/bootstrap: %zu %s (%s) of the bootstrap cache from before "
           "the step cache, unused; 'vab cache prune' removes it\n",
           dir, legacy->files, legacy->files == 1 ? "file" : "files", size);
  }
}

static void print_list_json(const char *dir, const struct vab_cache_info *list,
                            size_t n, const struct vab_cache_legacy *legacy) {
  uint64_t total = 0;
  fputs("{\"ok\":true,\"cache_dir\":", stdout);
  cli_json_string(stdout, dir);
  fputs(",\"entries\":[", stdout);
  for (size_t i = 0; i < n; i++) {
    const struct vab_cache_info *e = &list[i];
    total += e->size;
    fprintf(stdout, "%s{\"key\":\"sha256:%s\",\"ok\":%s,\"kind\":",
            i > 0 ? "," : "", e->meta.key, e->ok ? "true" : "false");
    if (e->ok)
      cli_json_string(stdout, e->meta.kind);
    else
      fputs("null", stdout);
    fputs(",\"label\":", stdout);
    if (e->ok)
      cli_json_string(stdout, e->meta.label);
    else
      fputs("null", stdout);
    fprintf(stdout, ",\"size\":%llu,\"created\":%lld,\"last_used\":%lld",
            (unsigned long long)e->size,
            (long long)(e->ok ? e->meta.created : 0), (long long)e->last_used);
    fputs(",\"problem\":", stdout);
    if (e->ok)
      fputs("null", stdout);
    else
      cli_json_string(stdout, e->problem);
    fputs(",\"files\":[", stdout);
    for (size_t f = 0; e->ok && f < e->meta.n_files; f++) {
      fputs(f > 0 ? ",{\"name\":" : "{\"name\":", stdout);
      cli_json_string(stdout, e->meta.files[f].name);
      fprintf(stdout, ",\"size\":%llu,\"sha256\":\"%s\"}",
              (unsigned long long)e->meta.files[f].size,
              e->meta.files[f].sha256);
    }
    fputs("]}", stdout);
  }
  fprintf(stdout, "],\"total_size\":%llu,\"legacy_bootstrap\":",
          (unsigned long long)total);
  if (legacy->present)
    fprintf(stdout, "{\"files\":%zu,\"size\":%llu}}\n", legacy->files,
            (unsigned long long)legacy->size);
  else
    fputs("null}\n", stdout);
}

static int run_cache(struct vab_ctx *ctx, int argc, char **argv) {
  static const struct option longopts[] = {
    {"cache-dir", required_argument, NULL, 'c'},
    {"json", no_argument, NULL, 'j'},
    {"max-size", required_argument, NULL, 's'},
    {"older-than", required_argument, NULL, 'o'},
    {NULL, 0, NULL, 0},
  };
  if (argc < 2)
    return cli_usage_error(&cli_cmd_cache,
                             "missing the action: list, prune or clear");
  const char *action = argv[1];
  bool list = strcmp(action, "list") == 0, prune = strcmp(action, "prune") == 0,
       clear = strcmp(action, "clear") == 0;
  if (!list && !prune && !clear)
    return cli_usage_error(&cli_cmd_cache,
                             "unknown action '%s' (list, prune or clear)",
                             action);
  const char *dir_opt = NULL;
  bool json = false, have_size = false, have_age = false;
  struct vab_cache_prune_opts popts = {.max_size = UINT64_MAX,
                                       .older_than = -1, .all = clear};
  int c;
  optind = 2;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'c': dir_opt = optarg; break;
    case 'j':
      if (!list)
        return cli_usage_error(&cli_cmd_cache,
                             "--json is for 'vab cache list'");
      json = true;
      break;
    case 's':
      if (!prune)
        return cli_usage_error(&cli_cmd_cache,
                             "--max-size is for 'vab cache prune'");
      if (vab_parse_size(optarg, &popts.max_size) < 0)
        return cli_usage_error(&cli_cmd_cache,
                             "--max-size wants a size such as 10G, "
                             "not '%s'", optarg);
      have_size = true;
      break;
    case 'o':
      if (!prune)
        return cli_usage_error(&cli_cmd_cache,
                             "--older-than is for 'vab cache prune'");
      if (parse_age(optarg, &popts.older_than) < 0)
        return cli_usage_error(&cli_cmd_cache,
                             "--older-than wants a duration such as "
                             "12h or 30d, not '%s'", optarg);
      have_age = true;
      break;
    default:
      return cli_usage_error(&cli_cmd_cache,
                             "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind != argc)
    return cli_usage_error(&cli_cmd_cache,
                             "unexpected argument '%s'", argv[optind]);
  char *dir = dir_opt != NULL ? strdup(dir_opt) : vab_default_cache_dir();
  if (dir == NULL)
    return cli_usage_error(&cli_cmd_cache,
                             "out of memory");
  int r = 0;
  if (prune && !have_size && !have_age)
    r = vab_cache_default_max_size(ctx, &popts.max_size);
  struct vab_cache *cache = NULL;
  if (r == 0)
    r = vab_cache_open(ctx, dir, false, &cache);
  if (r == 0 && list) {
    struct vab_cache_info *entries = NULL;
    size_t n = 0;
    struct vab_cache_legacy legacy;
    r = vab_cache_list(cache, &entries, &n);
    if (r == 0)
      r = vab_cache_legacy_info(cache, &legacy);
    if (r == 0 && json)
      print_list_json(dir, entries, n, &legacy);
    else if (r == 0)
      print_list(dir, entries, n, &legacy);
    free(entries);
  } else if (r == 0) {
    struct vab_cache_prune_result res;
    struct vab_cache_legacy gone;
    r = vab_cache_prune(cache, &popts, &res);
    int legacy = r == 0 ? vab_cache_legacy_remove(cache, &gone) : 0;
    if (legacy < 0)
      r = -1;
    if (legacy == 1) {
      char size[32];
      cli_human_size(gone.size, size, sizeof size);
      fprintf(stderr, "vab cache %s: removed %s/bootstrap, the bootstrap "
              "cache from before the step cache (%zu %s, %s)\n", action, dir,
              gone.files, gone.files == 1 ? "file" : "files", size);
    } else if (legacy == 2) {
      fprintf(stderr, "vab cache %s: kept %s/bootstrap, the bootstrap cache "
              "from before the step cache: an older vab is using it\n",
              action, dir);
    }
    if (r == 0) {
      char freed[32], kept[32];
      cli_human_size(res.freed, freed, sizeof freed);
      cli_human_size(res.kept_size, kept, sizeof kept);
      fprintf(stderr, "vab cache %s: removed %zu %s (%s); kept %zu (%s)",
              action, res.removed, res.removed == 1 ? "entry" : "entries",
              freed, res.kept, kept);
      if (res.busy > 0)
        fprintf(stderr, ", of which %zu in use by a build", res.busy);
      fputc('\n', stderr);
    }
  }
  vab_cache_close(cache);
  cli_print_diags(ctx, list ? "vab cache list" : prune ? "vab cache prune"
                                                        : "vab cache clear");
  if (r < 0 && json) {
    fputs("{\"cache_dir\":", stdout);
    cli_json_string(stdout, dir);
    cli_json_failure_end(stdout, ctx);
  }
  free(dir);
  if (r < 0) {
    const struct vab_diag *d = vab_last_error(ctx);
    return d != NULL && d->code == VAB_E_USAGE ? EXIT_USAGE : EXIT_FAILED;
  }
  return EXIT_OK;
}
