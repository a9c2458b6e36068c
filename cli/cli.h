/* Shared by the vab command's subcommands: the only code that prints. */
#ifndef VAB_CLI_H
#define VAB_CLI_H

#include <stdbool.h>
#include <stdio.h>
#include "vab/vab.h"

/* Exit statuses (README, "Exit status"). */
enum {
  EXIT_OK = 0,
  EXIT_FAILED = 1,   /* the job failed: invalid template, failed build... */
  EXIT_USAGE = 2,    /* bad command line */
};

struct cli_command {
  const char *name;
  int (*run)(struct vab_ctx *ctx, int argc, char **argv);
  const char *summary;
  const char *usage;  /* full help text, shown by --help and `vab help` */
};

/* Each cmd-<name>.c defines one of these. */
extern const struct cli_command cli_cmd_validate;
extern const struct cli_command cli_cmd_convert;
extern const struct cli_command cli_cmd_inspect;
extern const struct cli_command cli_cmd_build;
extern const struct cli_command cli_cmd_keygen;
extern const struct cli_command cli_cmd_sign;
extern const struct cli_command cli_cmd_verify;
extern const struct cli_command cli_cmd_publish;
extern const struct cli_command cli_cmd_pull;
extern const struct cli_command cli_cmd_cache;

/* Print every diagnostic on ctx to stderr: FILE:LINE:COL: error: msg, the
 * source line with a caret, and the hint.  prefix is "vab validate". */
void cli_print_diags(struct vab_ctx *ctx, const char *prefix);
/* Write the diagnostics as a JSON array value (no newline). */
void cli_json_diags(FILE *out, struct vab_ctx *ctx);
/* End a --json result object for a failed command: ,"ok":false, the error
 * count and the diagnostics, then "}" and a newline.  The caller has
 * written "{" and the fields that name its inputs. */
void cli_json_failure_end(FILE *out, struct vab_ctx *ctx);
/* Write s as a JSON string literal. */
void cli_json_string(FILE *out, const char *s);

/* Usage error: print "vab CMD: MSG" and a pointer to --help; return 2. */
int cli_usage_error(const struct cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Print a command's help to stdout and return 0. */
int cli_help(const struct cli_command *cmd);
/* True when argv[i] is -h or --help. */
bool cli_is_help(const char *arg);

/* "1.5 GiB" */
void cli_human_size(uint64_t n, char *out, size_t len);

/* Progress on a TTY: a bar redrawn at most 10 times a second on stderr.
 * Installs itself on ctx; a no-op when stderr is not a terminal. */
void cli_progress_attach(struct vab_ctx *ctx, bool quiet);
void cli_progress_done(void);

/* A vab_log_fn for commands: warnings and notes from the library on
 * stderr as "PREFIX: [warning: ]LINE"; debug lines are for build logs
 * only, and quiet drops the notes (info) too.  opaque: a struct cli_log
 * that outlives the callback's installation. */
struct cli_log {
  const char *prefix;          /* "vab convert" */
  bool quiet;
};
void cli_log_to_stderr(void *opaque, enum vab_log_level level,
                       const char *line);

/* The context that SIGINT/SIGTERM cancel. */
void cli_set_signal_ctx(struct vab_ctx *ctx);

#endif
