/* How the CLI shows diagnostics, help and progress. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

bool cli_is_help(const char *arg) {
  return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

int cli_help(const struct cli_command *cmd) {
  fputs(cmd->usage, stdout);
  return EXIT_OK;
}

int cli_usage_error(const struct cli_command *cmd, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "vab %s: ", cmd->name);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nSee 'vab %s --help'.\n", cmd->name);
  return EXIT_USAGE;
}

static const char *severity_name(enum vab_severity s) {
  switch (s) {
  case VAB_SEV_NOTE: return "note";
  case VAB_SEV_WARNING: return "warning";
  case VAB_SEV_ERROR: return "error";
  }
  return "error";
}

/* The caret goes under the column; tabs in the line are kept so it lines
 * up in a terminal. */
static void print_caret(const char *line, uint32_t column) {
  fprintf(stderr, "  %s\n  ", line);
  size_t len = strlen(line);
  for (uint32_t i = 1; i < column && i - 1 < len; i++)
    fputc(line[i - 1] == '\t' ? '\t' : ' ', stderr);
  fputs("^\n", stderr);
}

void cli_print_diags(struct vab_ctx *ctx, const char *prefix) {
  size_t n = vab_diag_count(ctx);
  for (size_t i = 0; i < n; i++) {
    const struct vab_diag *d = vab_diag_get(ctx, i);
    if (d->file != NULL && d->line > 0)
      fprintf(stderr, "%s:%u:%u: ", d->file, d->line, d->column);
    else
      fprintf(stderr, "%s: ", prefix);
    fprintf(stderr, "%s: %s", severity_name(d->severity), d->message);
    if (d->sys_errno != 0)
      fprintf(stderr, ": %s", strerror(d->sys_errno));
    fputc('\n', stderr);
    if (d->source_line != NULL)
      print_caret(d->source_line, d->column);
    if (d->hint != NULL)
      fprintf(stderr, "  hint: %s\n", d->hint);
  }
  if (vab_diag_dropped(ctx) > 0)
    fprintf(stderr, "%s: %zu more problems not shown\n", prefix,
            vab_diag_dropped(ctx));
}

void cli_json_string(FILE *out, const char *s) {
  fputc('"', out);
  for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
    switch (*p) {
    case '"': fputs("\\\"", out); break;
    case '\\': fputs("\\\\", out); break;
    case '\n': fputs("\\n", out); break;
    case '\r': fputs("\\r", out); break;
    case '\t': fputs("\\t", out); break;
    default:
      if (*p < 0x20)
        fprintf(out, "\\u%04x", *p);
      else
        fputc(*p, out);
    }
  }
  fputc('"', out);
}

void cli_json_diags(FILE *out, struct vab_ctx *ctx) {
  size_t n = vab_diag_count(ctx);
  fputc('[', out);
  for (size_t i = 0; i < n; i++) {
    const struct vab_diag *d = vab_diag_get(ctx, i);
    fprintf(out, "%s{\"severity\":\"%s\",\"code\":%d,\"code_name\":\"%s\"",
            i ? "," : "", severity_name(d->severity), (int)d->code,
            vab_code_name(d->code));
    if (d->file != NULL) {
      fputs(",\"file\":", out);
      cli_json_string(out, d->file);
      fprintf(out, ",\"line\":%u,\"column\":%u", d->line, d->column);
    }
    fputs(",\"message\":", out);
    cli_json_string(out, d->message);
    if (d->sys_errno != 0) {
      fputs(",\"errno\":", out);
      cli_json_string(out, strerror(d->sys_errno));
    }
    if (d->hint != NULL) {
      fputs(",\"hint\":", out);
      cli_json_string(out, d->hint);
    }
    fputc('}', out);
  }
  fputc(']', out);
}

void cli_json_failure_end(FILE *out, struct vab_ctx *ctx) {
  fprintf(out, ",\"ok\":false,\"errors\":%zu,\"diagnostics\":",
          vab_error_count(ctx));
  cli_json_diags(out, ctx);
  fputs("}\n", out);
}

/* Progress bar. */

static struct {
  bool active;
  bool drawn;
  struct timespec last;
  struct timespec start;
} bar;

static double elapsed(const struct timespec *a, const struct timespec *b) {
  return (double)(b->tv_sec - a->tv_sec) + (b->tv_nsec - a->tv_nsec) / 1e9;
}

void cli_human_size(uint64_t n, char *out, size_t len) {
  const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)n;
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    u++;
  }
  snprintf(out, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static int draw_progress(void *opaque, enum vab_phase phase, const char *step,
                         uint64_t done, uint64_t total) {
  (void)opaque;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  bool finished = total != 0 && done >= total;
  if (bar.drawn && !finished && elapsed(&bar.last, &now) < 0.1)
    return 0;
  bar.last = now;
  bar.drawn = true;
  char d[32], t[32];
  cli_human_size(done, d, sizeof d);
  double secs = elapsed(&bar.start, &now);
  if (total > 0) {
    cli_human_size(total, t, sizeof t);
    int width = 30;
    int fill = (int)((double)done / (double)total * width);
    if (fill > width)
      fill = width;
    fprintf(stderr, "\r\033[K%s %s [", vab_phase_name(phase), step ? step : "");
    for (int i = 0; i < width; i++)
      fputc(i < fill ? '#' : '.', stderr);
    fprintf(stderr, "] %3d%% %s/%s %.0fs", (int)(100.0 * done / total), d, t,
            secs);
  } else if (done > 0) {
    fprintf(stderr, "\r\033[K%s %s %s %.0fs", vab_phase_name(phase),
            step ? step : "", d, secs);
  } else {
    /* A step with no byte count: just what runs and for how long. */
    fprintf(stderr, "\r\033[K%s %s %.0fs", vab_phase_name(phase),
            step ? step : "", secs);
  }
  fflush(stderr);
  return 0;
}

void cli_progress_attach(struct vab_ctx *ctx, bool quiet) {
  if (quiet || !isatty(STDERR_FILENO))
    return;
  bar.active = true;
  bar.drawn = false;
  clock_gettime(CLOCK_MONOTONIC, &bar.start);
  vab_ctx_set_progress(ctx, draw_progress, NULL);
}

void cli_progress_done(void) {
  if (bar.active && bar.drawn)
    fputs("\r\033[K", stderr);
  bar.active = false;
  bar.drawn = false;
}

void cli_log_to_stderr(void *opaque, enum vab_log_level level,
                       const char *line) {
  const struct cli_log *log = opaque;
  if (level == VAB_LOG_DEBUG || (log->quiet && level == VAB_LOG_INFO))
    return;
  fprintf(stderr, "%s: %s%s\n", log->prefix,
          level == VAB_LOG_WARNING ? "warning: " : "", line);
}
