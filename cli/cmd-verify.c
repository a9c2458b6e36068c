/* vab verify: check a build's signature and every artifact. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "signing/manifest.h"
#include "signing/signing.h"

static int run_verify(struct vab_ctx *ctx, int argc, char **argv);

const struct cli_command cli_cmd_verify = {
  .name = "verify",
  .run = run_verify,
  .summary = "check a build's signature and every artifact's size and sha256",
  .usage =
    "usage: vab verify (--pubkey PUB | --cert CRT) [--json] DIR|MANIFEST\n"
    "\n"
    "Check MANIFEST.sig against the public key, then each artifact the\n"
    "manifest lists: it must exist beside the manifest with the listed size\n"
    "and SHA-256.  Every failure is named.  Exit status 1 on any failure.\n"
    "\n"
    "Options:\n"
    "  --pubkey PUB   public key (PEM), e.g. NAME.pub from 'vab keygen'\n"
    "  --cert CRT     or a certificate holding it\n"
    "  --json         write the result as JSON to stdout\n"
    "  -h, --help     show this help\n",
};

static int run_verify(struct vab_ctx *ctx, int argc, char **argv) {
  static const struct option longopts[] = {
    {"pubkey", required_argument, NULL, 'p'},
    {"cert", required_argument, NULL, 'c'},
    {"json", no_argument, NULL, 'j'},
    {NULL, 0, NULL, 0},
  };
  const char *pub = NULL, *cert = NULL;
  bool json = false;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'p': pub = optarg; break;
    case 'c': cert = optarg; break;
    case 'j': json = true; break;
    default:
      return cli_usage_error(&cli_cmd_verify, "unknown option '%s'",
                             argv[optind - 1]);
    }
  }
  if ((pub == NULL) == (cert == NULL))
    return cli_usage_error(&cli_cmd_verify,
                           "give exactly one of --pubkey and --cert");
  if (optind != argc - 1)
    return cli_usage_error(&cli_cmd_verify, optind >= argc
                                                ? "missing DIR or MANIFEST"
                                                : "too many arguments");
  struct vab_verifier *verifier = NULL;
  char *manifest = NULL;
  size_t failed = 0;
  int r = vab_verifier_load(ctx, pub, cert, &verifier);
  if (r == 0)
    r = vab_manifest_find(ctx, argv[optind], &manifest);
  if (r == 0)
    r = vab_verify_build(ctx, verifier, manifest, &failed);
  cli_print_diags(ctx, "vab verify");
  if (json) {
    fputs("{\"verified\":", stdout);
    fputs(r == 0 ? "true" : "false", stdout);
    fputs(",\"manifest\":", stdout);
    cli_json_string(stdout, manifest ? manifest : argv[optind]);
    fprintf(stdout, ",\"failures\":%zu,\"diagnostics\":", failed);
    cli_json_diags(stdout, ctx);
    fputs("}\n", stdout);
  }
  if (r == 0)
    fprintf(stderr, "%s: signature good, every artifact matches\n", manifest);
  else if (manifest != NULL)
    fprintf(stderr, "%s: verification FAILED (%zu problem%s)\n", manifest,
            failed, failed == 1 ? "" : "s");
  free(manifest);
  vab_verifier_free(verifier);
  return r == 0 ? EXIT_OK : EXIT_FAILED;
}
