/* vab: the command-line front end.  Dispatches to one cmd-<name>.c per
 * subcommand, git style. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

/* Only commands that work are listed. */
static const struct cli_command *const commands[] = {
  &cli_cmd_validate,
  &cli_cmd_build,
  &cli_cmd_cache,
  &cli_cmd_convert,
  &cli_cmd_inspect,
  &cli_cmd_keygen,
  &cli_cmd_sign,
  &cli_cmd_verify,
  &cli_cmd_publish,
  &cli_cmd_pull,
};

static const size_t n_commands = sizeof commands / sizeof commands[0];

static const struct cli_command *find_command(const char *name) {
  for (size_t i = 0; i < n_commands; i++)
    if (strcmp(commands[i]->name, name) == 0)
      return commands[i];
  return NULL;
}

static void print_main_usage(FILE *out) {
  fprintf(out,
          "usage: vab [--version] [--help] COMMAND [ARGS]\n"
          "\n"
          "vab builds virtual appliances from declarative YAML templates.\n"
          "\n"
          "Commands:\n");
  for (size_t i = 0; i < n_commands; i++)
    fprintf(out, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
  fprintf(out,
          "\n"
          "Run 'vab help COMMAND' or 'vab COMMAND --help' for a command's "
          "options.\n"
          "Exit status: 0 success, 1 the job failed, 2 usage error.\n");
}

static struct vab_ctx *signal_ctx;

static void on_signal(int sig) {
  (void)sig;
  if (signal_ctx != NULL)
    vab_ctx_cancel(signal_ctx);
}

void cli_set_signal_ctx(struct vab_ctx *ctx) { signal_ctx = ctx; }

static void install_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

/* git's lesson: a failed write to stdout must not exit 0. */
static int finish_stdout(int status) {
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "vab: write failure on standard output\n");
    return EXIT_FAILED;
  }
  return status;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    print_main_usage(stderr);
    return EXIT_USAGE;
  }
  const char *first = argv[1];
  if (strcmp(first, "--version") == 0 || strcmp(first, "-V") == 0) {
    printf("vab %s\n", vab_version());
    return finish_stdout(EXIT_OK);
  }
  if (cli_is_help(first)) {
    print_main_usage(stdout);
    return finish_stdout(EXIT_OK);
  }
  if (strcmp(first, "help") == 0) {
    if (argc < 3) {
      print_main_usage(stdout);
      return finish_stdout(EXIT_OK);
    }
    const struct cli_command *cmd = find_command(argv[2]);
    if (cmd == NULL) {
      fprintf(stderr, "vab: '%s' is not a vab command. See 'vab --help'.\n",
              argv[2]);
      return EXIT_USAGE;
    }
    return finish_stdout(cli_help(cmd));
  }
  if (first[0] == '-') {
    fprintf(stderr, "vab: unknown option '%s'\n", first);
    print_main_usage(stderr);
    return EXIT_USAGE;
  }
  const struct cli_command *cmd = find_command(first);
  if (cmd == NULL) {
    fprintf(stderr, "vab: '%s' is not a vab command. See 'vab --help'.\n",
            first);
    return EXIT_USAGE;
  }
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0)
      break;
    if (cli_is_help(argv[i]))
      return finish_stdout(cli_help(cmd));
  }

  struct vab_ctx *ctx = vab_ctx_new();
  if (ctx == NULL) {
    fprintf(stderr, "vab: out of memory\n");
    return EXIT_FAILED;
  }
  cli_set_signal_ctx(ctx);
  install_signals();
  int status = cmd->run(ctx, argc - 1, argv + 1);
  cli_progress_done();
  cli_set_signal_ctx(NULL);
  vab_ctx_free(ctx);
  return finish_stdout(status);
}
