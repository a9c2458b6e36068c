/* vab validate: load, expand and check a template. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builder/vocab.h"
#include "cli/cli.h"
#include "cli/vars.h"

static int run_validate(struct vab_ctx *ctx, int argc, char **argv);

const struct cli_command cli_cmd_validate = {
  .name = "validate",
  .run = run_validate,
  .summary = "check a template and show every problem in it",
  .usage =
    "usage: vab validate TEMPLATE [--var NAME=VALUE]... [--json] [--print]\n"
    "\n"
    "Load TEMPLATE, follow 'extends', resolve variables, fill defaults and\n"
    "check the schema, including each provisioner's settings.  Every problem\n"
    "is reported as FILE:LINE:COLUMN with the line and a caret.\n"
    "\n"
    "Options:\n"
    "  --var NAME=VALUE  set a template variable (repeatable); overrides the\n"
    "                    template's 'variables' and is overridden by the\n"
    "                    environment variable VAB_VAR_NAME\n"
    "  --print           write the fully expanded template to stdout as YAML\n"
    "                    (the canonical form that build step keys hash)\n"
    "  --json            write a JSON result to stdout\n"
    "  -h, --help        show this help\n"
    "\n"
    "Exit status: 0 valid, 1 invalid, 2 usage error.\n"
    "\n"
    "The template language, key by key: docs/template.md.  Error codes:\n"
    "docs/errors.md.\n",
};

static int run_validate(struct vab_ctx *ctx, int argc, char **argv) {
  static const struct option longopts[] = {
    {"var", required_argument, NULL, 'v'},
    {"json", no_argument, NULL, 'j'},
    {"print", no_argument, NULL, 'p'},
    {NULL, 0, NULL, 0},
  };
  struct cli_vars vars = {0};
  bool json = false, print = false;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'v':
      if (cli_vars_add(&vars, optarg) < 0) {
        cli_vars_release(&vars);
        return cli_usage_error(&cli_cmd_validate,
                               "--var wants NAME=VALUE, not '%s'", optarg);
      }
      break;
    case 'j': json = true; break;
    case 'p': print = true; break;
    default:
      cli_vars_release(&vars);
      return cli_usage_error(&cli_cmd_validate, "unknown option '%s'",
                             argv[optind - 1]);
    }
  }
  if (optind != argc - 1) {
    cli_vars_release(&vars);
    return cli_usage_error(&cli_cmd_validate,
                           optind >= argc ? "missing TEMPLATE"
                                          : "too many arguments");
  }
  const char *path = argv[optind];

  struct vab_load_opts opts = {
    .vars = vars.ptr, .n_vars = vars.len, .use_environment = true,
    .vocab = vab_template_vocab(),
  };
  struct vab_template *t = NULL;
  int r = vab_template_load(ctx, path, &opts, &t);
  char *yaml = NULL;
  if (r == 0 && print) {
    yaml = vab_template_to_yaml(ctx, t);
    if (yaml == NULL)
      r = -1;
  }

  cli_print_diags(ctx, "vab validate");
  if (json) {
    fputs("{\"valid\":", stdout);
    fputs(r == 0 ? "true" : "false", stdout);
    fputs(",\"template\":", stdout);
    cli_json_string(stdout, path);
    if (r == 0) {
      fputs(",\"name\":", stdout);
      cli_json_string(stdout, t->name);
      fputs(",\"version\":", stdout);
      cli_json_string(stdout, t->version);
    }
    fprintf(stdout, ",\"errors\":%zu,\"diagnostics\":", vab_error_count(ctx));
    cli_json_diags(stdout, ctx);
    if (yaml != NULL) {
      fputs(",\"expanded\":", stdout);
      cli_json_string(stdout, yaml);
    }
    fputs("}\n", stdout);
  } else if (yaml != NULL) {
    fputs(yaml, stdout);
  }
  if (r == 0 && !json && !print)
    fprintf(stderr, "%s: valid (%s %s)\n", path, t->name, t->version);
  else if (r < 0 && !json)
    fprintf(stderr, "%s: invalid: %zu error%s\n", path, vab_error_count(ctx),
            vab_error_count(ctx) == 1 ? "" : "s");
  free(yaml);
  vab_template_free(t);
  cli_vars_release(&vars);
  return r == 0 ? EXIT_OK : EXIT_FAILED;
}
