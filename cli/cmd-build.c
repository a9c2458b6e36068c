/* vab build: turn a template into tested appliance images. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/registry-options.h"
#include "cli/vars.h"
#include "common/fsutil.h"
#include "common/vector.h"
#include "builder/build.h"

static int run_build(struct vab_ctx *ctx, int argc, char **argv);

const struct cli_command cli_cmd_build = {
  .name = "build",
  .run = run_build,
  .summary = "build, boot-test and export an appliance from a template",
  .usage =
    "usage: vab build TEMPLATE [--var NAME=VALUE]... [-o DIR] [--only FORMAT]...\n"
    "                 [--no-test] [--accel auto|kvm|tcg] [--cache-dir DIR]\n"
    "                 [--no-cache] [--json] [--keep-on-error]\n"
    "                 [--sign-key KEY [--sign-cert CRT]]\n"
    "                 [--cache-from REPO] [--cache-to REPO] [registry options]\n"
    "\n"
    "Build the appliance TEMPLATE describes: get the OS (bootstrap, rootfs or\n"
    "image), lay out and format the disk, install GRUB, run the provisioners\n"
    "and sysprep inside a builder VM (libguestfs), boot the result in qemu for\n"
    "the template's tests, and export every output.  Artifacts are named\n"
    "NAME-VERSION.EXT; the folder also gets NAME-VERSION.log (the full build\n"
    "log, guest output included) and NAME-VERSION.serial.log (the boot test's\n"
    "serial console).\n"
    "\n"
    "Options:\n"
    "  --var NAME=VALUE    set a template variable (repeatable)\n"
    "  -o, --output DIR    where artifacts go (default ./output/NAME)\n"
    "  --only FORMAT       export only this output format (repeatable)\n"
    "  --no-test           skip the boot tests\n"
    "  --accel MODE        auto (default: KVM if a probe boots, else TCG),\n"
    "                      kvm or tcg; for the builder VM and the boot test\n"
    "  --cache-dir DIR     the step cache (default $XDG_CACHE_HOME/vab or\n"
    "                      ~/.cache/vab); builds may share it, also at once;\n"
    "                      pruned to VAB_CACHE_MAX_SIZE (default 10G) after\n"
    "                      each build (see vab cache)\n"
    "  --no-cache          run every step, and store its result anew\n"
    "  --cache-from REPO   on a cache miss, look for the step's entry in the\n"
    "                      registry repository HOST[:PORT]/REPO (tag\n"
    "                      step-KEY); a bad or missing entry, or a registry\n"
    "                      that fails, is a warning and the step runs\n"
    "  --cache-to REPO     after a successful build, push every step's cache\n"
    "                      entry there (blobs it has are not sent again); a\n"
    "                      failure is a warning, the artifacts are kept\n"
    "Registry options, for --cache-from and --cache-to (as vab publish):\n"
    "  --creds USER:PASSWORD  log in with these (prefer VAB_REGISTRY_USER and\n"
    "                      VAB_REGISTRY_PASSWORD, or --authfile)\n"
    "  --authfile FILE     read credentials from this auth.json/config.json\n"
    "  --ca-cert FILE      trust this CA (PEM) for the registry's TLS\n"
    "  --insecure          allow plain HTTP to a host that is not loopback\n"
    CLI_REGISTRY_LIMITS_HELP
    "  --json              write a JSON summary to stdout: artifacts with size\n"
    "                      and sha256, the seconds of each phase, and each\n"
    "                      step with its key and whether it was cached\n"
    "  --keep-on-error     keep the work folder (disk, rootfs) of a failed\n"
    "                      build and print where it is\n"
    "  --sign-key KEY      sign the manifest (and each OVA, with --sign-cert)\n"
    "                      with this key instead of the template's sign:;\n"
    "                      an encrypted key's passphrase is read from\n"
    "                      VAB_SIGN_PASSPHRASE\n"
    "  --sign-cert CRT     the key's certificate, for the OVAs' .cert\n"
    "  -h, --help          show this help\n"
    "\n"
    "Ctrl-C or SIGTERM stops the builder VM and qemu, removes temporary\n"
    "files and leaves no artifact behind.\n"
    "\n"
    "Exit status: 0 built, 1 the build failed, 2 usage error.\n",
};

DEFINE_VECTOR_TYPE(held_lines, char *);

/* The log: every line goes to NAME-VERSION.log once it is open (lines
 * from before are held until then); info and warnings also to stderr. */
struct build_log {
  FILE *file;
  struct held_lines held;
  struct timespec start;
  bool tty;
};

static double since(const struct timespec *start) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - start->tv_sec) +
         (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static const char *level_name(enum vab_log_level level) {
  switch (level) {
  case VAB_LOG_DEBUG: return "debug";
  case VAB_LOG_INFO: return "info";
  case VAB_LOG_WARNING: return "warning";
  }
  return "info";
}

static void log_line(void *opaque, enum vab_log_level level,
                     const char *line) {
  struct build_log *log = opaque;
  double t = since(&log->start);
  char *text = NULL;
  if (asprintf(&text, "[%8.2f] %s: %s\n", t, level_name(level), line) < 0)
    return;
  if (log->file != NULL) {
    fputs(text, log->file);
    free(text);
  } else {
    if (held_lines_append(&log->held, text) < 0)
      free(text);
  }
  if (level == VAB_LOG_DEBUG)
    return;
  int secs = (int)t;
  if (log->tty)
    fputs("\r\033[K", stderr);
  fprintf(stderr, "[%02d:%02d] %s%s\n", secs / 60, secs % 60,
          level == VAB_LOG_WARNING ? "warning: " : "", line);
}

static int log_open(struct build_log *log, const char *path) {
  /* A new file renamed onto the name: a link planted there (even by a
   * build that then fails early) is replaced, never followed. */
  int fd = create_replacing(path, 0644);
  if (fd < 0)
    return -1;
  log->file = fdopen(fd, "w");
  if (log->file == NULL) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  setvbuf(log->file, NULL, _IOLBF, 0);
  for (size_t i = 0; i < log->held.len; i++) {
    fputs(log->held.ptr[i], log->file);
    free(log->held.ptr[i]);
  }
  held_lines_reset(&log->held);
  return 0;
}

static void log_diags(struct build_log *log, struct vab_ctx *ctx) {
  if (log->file == NULL)
    return;
  for (size_t i = 0; i < vab_diag_count(ctx); i++) {
    const struct vab_diag *d = vab_diag_get(ctx, i);
    if (d->file != NULL)
      fprintf(log->file, "%s:%u:%u: ", d->file, d->line, d->column);
    fprintf(log->file, "%s: %s",
            d->severity == VAB_SEV_ERROR ? "error" : "warning", d->message);
    if (d->sys_errno != 0)
      fprintf(log->file, ": %s", strerror(d->sys_errno));
    fputc('\n', log->file);
    if (d->hint != NULL)
      fprintf(log->file, "  hint: %s\n", d->hint);
  }
}

static void log_close(struct build_log *log) {
  if (log->file != NULL)
    fclose(log->file);
  for (size_t i = 0; i < log->held.len; i++)
    free(log->held.ptr[i]);
  held_lines_reset(&log->held);
}


static void print_summary(const struct vab_build *b) {
  fprintf(stderr, "built %s %s in %.1f s:\n", b->template->name,
          b->template->version, b->total_seconds);
  for (size_t i = 0; i < b->n_artifacts; i++) {
    char size[32];
    cli_human_size(b->artifacts[i].size, size, sizeof size);
    fprintf(stderr, "  %s  %s  sha256:%s\n", b->artifacts[i].path, size,
            b->artifacts[i].sha256);
  }
  if (b->manifest_path != NULL)
    fprintf(stderr, "  manifest: %s%s\n", b->manifest_path,
            b->signature_path != NULL ? " (signed)" : "");
  if (b->n_published > 0)
    fprintf(stderr, "  published: %s\n", b->published_digest);
  fprintf(stderr, "  log: %s\n", b->log_path);
  if (b->tested)
    fprintf(stderr, "  serial log: %s\n", b->serial_log_path);
  fputs("  phases:", stderr);
  for (int p = 0; p < VAB_PHASE_LAST; p++)
    if (b->phase_ran[p])
      fprintf(stderr, " %s %.1fs", vab_phase_name((enum vab_phase)p),
              b->phase_seconds[p]);
  fputc('\n', stderr);
}

static void print_json(struct vab_ctx *ctx, const char *path,
                       const struct vab_build *b, bool ok) {
  fprintf(stdout, "{\"ok\":%s,\"template\":", ok ? "true" : "false");
  cli_json_string(stdout, path);
  if (b != NULL) {
    fputs(",\"name\":", stdout);
    cli_json_string(stdout, b->template->name);
    fputs(",\"version\":", stdout);
    cli_json_string(stdout, b->template->version);
    fputs(",\"output_dir\":", stdout);
    cli_json_string(stdout, b->output_dir);
    fputs(",\"log\":", stdout);
    cli_json_string(stdout, b->log_path);
    fputs(",\"serial_log\":", stdout);
    if (b->tested)
      cli_json_string(stdout, b->serial_log_path);
    else
      fputs("null", stdout);
    /* Resolved only when a VM is to run: "auto" would claim a choice that
     * was never made. */
    fputs(",\"accel\":", stdout);
    cli_json_string(stdout, b->accel == VAB_ACCEL_AUTO
                                ? "none" : vab_accel_name(b->accel));
    fputs(",\"guest_os\":", stdout);
    cli_json_string(stdout, b->guest_os);
    fprintf(stdout, ",\"source_cached\":%s,\"tested\":%s",
            b->source_cached ? "true" : "false", b->tested ? "true" : "false");
    fputs(",\"phases\":{", stdout);
    bool first = true;
    for (int p = 0; p < VAB_PHASE_LAST; p++) {
      if (!b->phase_ran[p])
        continue;
      fprintf(stdout, "%s\"%s\":%.3f", first ? "" : ",",
              vab_phase_name((enum vab_phase)p), b->phase_seconds[p]);
      first = false;
    }
    fputs("},\"steps\":[", stdout);
    for (size_t i = 0; i < b->n_steps; i++) {
      const struct vab_build_step *s = &b->steps[i];
      fprintf(stdout, "%s{\"kind\":\"%s\",\"label\":", i > 0 ? "," : "",
              s->kind);
      cli_json_string(stdout, s->label);
      fprintf(stdout, ",\"key\":\"sha256:%s\",\"cached\":%s,", s->key,
              s->cached ? "true" : "false");
      /* Provisioners say where they ran. */
      if (strcmp(s->kind, "provision") == 0)
        fprintf(stdout, "\"booted\":%s,", s->booted ? "true" : "false");
      fprintf(stdout, "\"seconds\":%.3f}", s->seconds);
    }
    fputs("]", stdout);
    if (b->cache_push_ran) {
      const struct vab_remote_cache_stats *cs = &b->cache_pushed;
      fprintf(stdout, ",\"cache_to\":{\"entries_pushed\":%zu,"
              "\"entries_present\":%zu,\"blobs_uploaded\":%zu,"
              "\"blobs_skipped\":%zu,\"complete\":%s}",
              cs->entries_pushed, cs->entries_present, cs->blobs_uploaded,
              cs->blobs_skipped, b->cache_push_failed ? "false" : "true");
    }
    fprintf(stdout, ",\"total_seconds\":%.3f,\"artifacts\":[",
            b->total_seconds);
    for (size_t i = 0; i < b->n_artifacts; i++) {
      const struct vab_artifact *a = &b->artifacts[i];
      fputs(i > 0 ? ",{\"path\":" : "{\"path\":", stdout);
      cli_json_string(stdout, a->path);
      fputs(",\"file\":", stdout);
      cli_json_string(stdout, a->file_name);
      fputs(",\"format\":", stdout);
      cli_json_string(stdout, a->format);
      fputs(",\"target\":", stdout);
      if (a->target != NULL)
        cli_json_string(stdout, a->target);
      else
        fputs("null", stdout);
      fprintf(stdout, ",\"size\":%llu,\"sha256\":\"%s\",\"seconds\":%.3f}",
              (unsigned long long)a->size, a->sha256, a->seconds);
    }
    fputc(']', stdout);
    fputs(",\"manifest\":", stdout);
    if (b->manifest_path != NULL)
      cli_json_string(stdout, b->manifest_path);
    else
      fputs("null", stdout);
    fputs(",\"signature\":", stdout);
    if (b->signature_path != NULL)
      cli_json_string(stdout, b->signature_path);
    else
      fputs("null", stdout);
    fputs(",\"template_digest\":", stdout);
    cli_json_string(stdout, b->template_digest);
    fprintf(stdout, ",\"published\":%zu", b->n_published);
    if (b->kept_work_dir != NULL) {
      fputs(",\"work_dir\":", stdout);
      cli_json_string(stdout, b->kept_work_dir);
    }
  }
  fprintf(stdout, ",\"errors\":%zu,\"diagnostics\":", vab_error_count(ctx));
  cli_json_diags(stdout, ctx);
  fputs("}\n", stdout);
}

/* Errors of later stages point into the template: attach the line they
 * point at, so they print with a caret like validate's. */
static void attach_source_lines(struct vab_ctx *ctx) {
  for (size_t i = 0; i < vab_diag_count(ctx); i++) {
    const struct vab_diag *d = vab_diag_get(ctx, i);
    if (d->file == NULL || d->line == 0 || d->source_line != NULL)
      continue;
    FILE *f = fopen(d->file, "re");
    if (f == NULL)
      continue;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len = 0;
    for (uint32_t n = 1; (len = getline(&line, &cap, f)) >= 0; n++)
      if (n == d->line)
        break;
    if (len > 0) {
      while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
      vab_diag_source_line_at(ctx, i, line, (size_t)len);
    }
    free(line);
    fclose(f);
  }
}

DEFINE_VECTOR_TYPE(string_list, const char *);

static int run_build(struct vab_ctx *ctx, int argc, char **argv) {
  static const struct option longopts[] = {
    {"var", required_argument, NULL, 'v'},
    {"output", required_argument, NULL, 'o'},
    {"only", required_argument, NULL, 'O'},
    {"no-test", no_argument, NULL, 'n'},
    {"accel", required_argument, NULL, 'a'},
    {"cache-dir", required_argument, NULL, 'c'},
    {"no-cache", no_argument, NULL, 'N'},
    {"json", no_argument, NULL, 'j'},
    {"keep-on-error", no_argument, NULL, 'k'},
    {"sign-key", required_argument, NULL, 's'},
    {"sign-cert", required_argument, NULL, 'C'},
    {"cache-from", required_argument, NULL, CLI_REGISTRY_OPT_END},
    {"cache-to", required_argument, NULL, CLI_REGISTRY_OPT_END + 1},
    CLI_REGISTRY_LONGOPTS,
    {NULL, 0, NULL, 0},
  };
  struct cli_vars vars = {0};
  struct string_list only = VECTOR_INIT;
  struct vab_build_opts opts;
  memset(&opts, 0, sizeof opts);
  bool json = false;
  int status = EXIT_OK;
  int c;
  optind = 1;
  opterr = 0;
  while (status == EXIT_OK &&
         (c = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
    int taken = cli_registry_option(&cli_cmd_build, c, optarg,
                                    &opts.cache_registry);
    if (taken == EXIT_USAGE)
      status = EXIT_USAGE;
    if (taken)
      continue;
    switch (c) {
    case CLI_REGISTRY_OPT_END: opts.cache_from = optarg; break;
    case CLI_REGISTRY_OPT_END + 1: opts.cache_to = optarg; break;
    case 'v':
      if (cli_vars_add(&vars, optarg) < 0)
        status = cli_usage_error(&cli_cmd_build,
                                 "--var wants NAME=VALUE, not '%s'", optarg);
      break;
    case 'o': opts.output_dir = optarg; break;
    case 'O':
      if (vab_format_by_name(optarg) == NULL && strcmp(optarg, "ova") != 0 &&
          strcmp(optarg, "vhdx") != 0)
        status = cli_usage_error(&cli_cmd_build, "--only: unknown format '%s'",
                                 optarg);
      else if (string_list_append(&only, optarg) < 0)
        status = cli_usage_error(&cli_cmd_build, "out of memory");
      break;
    case 'n': opts.no_test = true; break;
    case 'a':
      if (vab_accel_parse(optarg, &opts.accel) < 0)
        status = cli_usage_error(&cli_cmd_build,
                                 "--accel wants auto, kvm or tcg, not '%s'",
                                 optarg);
      break;
    case 'c': opts.cache_dir = optarg; break;
    case 'N': opts.no_cache = true; break;
    case 'j': json = true; break;
    case 'k': opts.keep_on_error = true; break;
    case 's': opts.sign_key = optarg; break;
    case 'C': opts.sign_cert = optarg; break;
    default:
      status = cli_usage_error(&cli_cmd_build, "unknown option '%s'",
                               argv[optind - 1]);
    }
  }
  if (status == EXIT_OK && opts.sign_cert != NULL && opts.sign_key == NULL)
    status = cli_usage_error(&cli_cmd_build, "--sign-cert needs --sign-key");
  if (status == EXIT_OK && optind != argc - 1)
    status = cli_usage_error(&cli_cmd_build, optind >= argc
                                                 ? "missing TEMPLATE"
                                                 : "too many arguments");
  if (status != EXIT_OK) {
    cli_vars_release(&vars);
    string_list_reset(&only);
    return status;
  }
  const char *path = argv[optind];
  opts.template_path = path;
  opts.vars = vars.ptr;
  opts.n_vars = vars.len;
  opts.only = only.ptr;
  opts.n_only = only.len;

  struct build_log log;
  memset(&log, 0, sizeof log);
  clock_gettime(CLOCK_MONOTONIC, &log.start);
  log.tty = isatty(STDERR_FILENO);
  vab_ctx_set_log(ctx, log_line, &log);
  cli_progress_attach(ctx, false);

  struct vab_build *b = NULL;
  int r = vab_build_load(ctx, &opts, &b);
  if (r == 0 && log_open(&log, b->log_path) < 0)
    r = vab_error_errno(ctx, VAB_E_IO, errno, "cannot write the build log '%s'",
                        b->log_path);
  if (r == 0)
    r = vab_build_run(ctx, b);
  cli_progress_done();
  log_diags(&log, ctx);
  vab_ctx_set_log(ctx, NULL, NULL);
  attach_source_lines(ctx);
  cli_print_diags(ctx, "vab build");
  if (r == 0 && !json)
    print_summary(b);
  if (r < 0 && b != NULL) {
    fprintf(stderr, "vab build: %s failed; the full log is %s\n", path,
            b->log_path);
    if (b->kept_work_dir != NULL)
      fprintf(stderr, "vab build: the work folder is kept in %s\n",
              b->kept_work_dir);
  }
  if (json)
    print_json(ctx, path, b, r == 0);
  log_close(&log);
  vab_build_free(b);
  cli_vars_release(&vars);
  string_list_reset(&only);
  return r == 0 ? EXIT_OK : EXIT_FAILED;
}
