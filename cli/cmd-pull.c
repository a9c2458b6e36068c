/* vab pull: download a published build from an OCI registry. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/registry-options.h"
#include "publish/publish.h"
#include "signing/signing.h"

static int run_pull(struct vab_ctx *ctx, int argc, char **argv);

const struct cli_command cli_cmd_pull = {
  .name = "pull",
  .run = run_pull,
  .summary = "download a published build from an OCI registry",
  .usage =
    "usage: vab pull REF -o DIR [--pubkey PUB | --cert CRT]\n"
    "                [--creds USER:PASSWORD] [--authfile FILE] [--ca-cert FILE]\n"
    "                [--insecure] [--send-creds-to-realm] [--connect-timeout S]\n"
    "                [--timeout S] [--low-speed-limit B --low-speed-time S]\n"
    "                [--quiet] [--json]\n"
    "\n"
    "Download every file of the vab artifact at REF\n"
    "(HOST[:PORT]/REPO:TAG or HOST[:PORT]/REPO@sha256:HEX) into DIR, each\n"
    "under its layer title, which must be a plain file name: a title such as\n"
    "'../x', '/x' or 'a/b' is refused before anything is written.  Sizes\n"
    "and digests are checked; files are written as DIR/.NAME.part and\n"
    "renamed when all are complete.  A rerun resumes interrupted downloads.\n"
    "With a key, the build manifest's signature and every file's digest in\n"
    "it are checked before any file gets its final name; 'vab verify' then\n"
    "accepts DIR.\n"
    "\n"
    "Options:\n"
    "  -o, --output DIR   where to write the files (created if missing)\n"
    "  --pubkey PUB       check the build signature with this public key\n"
    "  --cert CRT         ... or with the key in this certificate\n"
    "  --creds USER:PASSWORD  log in with these\n"
    "  --authfile FILE    read credentials from this auth.json/config.json\n"
    "  --ca-cert FILE     trust this CA (PEM) for the registry's TLS\n"
    "  --insecure         allow plain HTTP to a host that is not loopback\n"
    CLI_REGISTRY_LIMITS_HELP
    "  -q, --quiet        no progress bar or progress messages\n"
    "  --json             write the result as JSON to stdout\n"
    "  -h, --help         show this help\n"
    "\n"
    "Credentials and the limits' variables are as for 'vab publish' (see\n"
    "its --help).  Before downloading, the layers' declared sizes must fit\n"
    "in DIR's free space; a layer larger than declared is refused.\n",
};

static void print_json(bool ok, const char *ref,
                       const struct vab_pull_result *res,
                       struct vab_ctx *ctx) {
  fprintf(stdout, "{\"pulled\":%s,\"reference\":", ok ? "true" : "false");
  cli_json_string(stdout, ref);
  fputs(",\"digest\":", stdout);
  if (ok)
    cli_json_string(stdout, res->digest);
  else
    fputs("null", stdout);
  fprintf(stdout, ",\"verified\":%s,\"files\":[",
          ok && res->verified ? "true" : "false");
  for (size_t i = 0; ok && i < res->n_files; i++) {
    fputs(i ? ",{\"name\":" : "{\"name\":", stdout);
    cli_json_string(stdout, res->files[i].name);
    fprintf(stdout, ",\"size\":%" PRIu64 ",\"digest\":", res->files[i].size);
    cli_json_string(stdout, res->files[i].digest);
    fputc('}', stdout);
  }
  fprintf(stdout, "],\"bytes_downloaded\":%" PRIu64 ",\"diagnostics\":",
          ok ? res->bytes_downloaded : 0);
  cli_json_diags(stdout, ctx);
  fputs("}\n", stdout);
}

static int run_pull(struct vab_ctx *ctx, int argc, char **argv) {
  static const struct option longopts[] = {
    {"output", required_argument, NULL, 'o'},
    {"pubkey", required_argument, NULL, 'p'},
    {"cert", required_argument, NULL, 'x'},
    CLI_REGISTRY_LONGOPTS,
    {"quiet", no_argument, NULL, 'q'},
    {"json", no_argument, NULL, 'j'},
    {NULL, 0, NULL, 0},
  };
  struct vab_pull_opts opts = {0};
  const char *dir = NULL, *pub = NULL, *cert = NULL;
  bool json = false, quiet = false;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "o:q", longopts, NULL)) != -1) {
    int taken = cli_registry_option(&cli_cmd_pull, c, optarg, &opts.registry);
    if (taken == EXIT_USAGE)
      return EXIT_USAGE;
    if (taken)
      continue;
    switch (c) {
    case 'o': dir = optarg; break;
    case 'p': pub = optarg; break;
    case 'x': cert = optarg; break;
    case 'q': quiet = true; break;
    case 'j': json = true; break;
    default:
      if (optopt != 0)
        return cli_usage_error(&cli_cmd_pull, "option '%s' needs a value",
                               argv[optind - 1]);
      return cli_usage_error(&cli_cmd_pull, "unknown option '%s'",
                             argv[optind - 1]);
    }
  }
  if (argc - optind != 1)
    return cli_usage_error(&cli_cmd_pull, argc == optind ? "missing REF"
                                                         : "too many arguments");
  if (dir == NULL)
    return cli_usage_error(&cli_cmd_pull, "missing -o DIR");
  if (pub != NULL && cert != NULL)
    return cli_usage_error(&cli_cmd_pull, "give at most one of --pubkey and --cert");
  const char *ref = argv[optind];
  struct vab_verifier *verifier = NULL;
  if ((pub != NULL || cert != NULL) &&
      vab_verifier_load(ctx, pub, cert, &verifier) < 0) {
    cli_print_diags(ctx, "vab pull");
    return EXIT_FAILED;
  }
  opts.verifier = verifier;
  struct cli_log log = {"vab pull", quiet || json};
  vab_ctx_set_log(ctx, cli_log_to_stderr, &log);
  cli_progress_attach(ctx, quiet || json);
  struct vab_pull_result res;
  int r = vab_pull(ctx, ref, dir, &opts, &res);
  cli_progress_done();
  vab_ctx_set_log(ctx, NULL, NULL);
  cli_print_diags(ctx, "vab pull");
  if (json)
    print_json(r == 0, ref, &res, ctx);
  if (r == 0 && !json)
    fprintf(stderr, "pulled %s (%s): %zu file%s into %s%s\n", ref, res.digest,
            res.n_files, res.n_files == 1 ? "" : "s", dir,
            res.verified ? ", signature good" : "");
  if (r == 0)
    vab_pull_result_release(&res);
  vab_verifier_free(verifier);
  if (r == 0)
    return EXIT_OK;
  const struct vab_diag *d = vab_last_error(ctx);
  return d != NULL && d->code == VAB_E_USAGE ? EXIT_USAGE : EXIT_FAILED;
}
