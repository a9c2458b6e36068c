/* vab sign: sign a build's manifest. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/passphrase.h"
#include "signing/manifest.h"
#include "signing/signing.h"

static int run_sign(struct vab_ctx *ctx, int argc, char **argv);

const struct cli_command cli_cmd_sign = {
  .name = "sign",
  .run = run_sign,
  .summary = "sign a build's manifest with a private key",
  .usage =
    "usage: vab sign --key KEY [--cert CRT] [--passphrase-env NAME |\n"
    "                --passphrase-fd N] DIR|MANIFEST\n"
    "\n"
    "Write MANIFEST.sig, a detached signature of the build manifest\n"
    "(NAME-VERSION.manifest.json).  Given a folder, sign the one manifest in\n"
    "it.  The key must not be readable by group or others.  The signature\n"
    "format and the plain openssl commands that check it are in\n"
    "docs/signing.md.\n"
    "\n"
    "Options:\n"
    "  --key KEY            private key (PEM), e.g. from 'vab keygen'\n"
    "  --cert CRT           certificate that must match the key\n"
    "  --passphrase-env NAME  passphrase of an encrypted key, from the\n"
    "                       environment\n"
    "  --passphrase-fd N    ... or the first line read from fd N\n"
    "  -h, --help           show this help\n",
};

static int run_sign(struct vab_ctx *ctx, int argc, char **argv) {
  static const struct option longopts[] = {
    {"key", required_argument, NULL, 'k'},
    {"cert", required_argument, NULL, 'c'},
    {"passphrase-env", required_argument, NULL, 'e'},
    {"passphrase-fd", required_argument, NULL, 'f'},
    {NULL, 0, NULL, 0},
  };
  const char *key = NULL, *cert = NULL, *pass_env = NULL;
  int pass_fd = -1, c;
  char *end;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'k': key = optarg; break;
    case 'c': cert = optarg; break;
    case 'e': pass_env = optarg; break;
    case 'f':
      pass_fd = (int)strtol(optarg, &end, 10);
      if (*end != '\0' || pass_fd < 0)
        return cli_usage_error(&cli_cmd_sign,
                               "--passphrase-fd wants a file descriptor");
      break;
    default:
      return cli_usage_error(&cli_cmd_sign, "unknown option '%s'",
                             argv[optind - 1]);
    }
  }
  if (key == NULL)
    return cli_usage_error(&cli_cmd_sign, "missing --key KEY");
  if (optind != argc - 1)
    return cli_usage_error(&cli_cmd_sign, optind >= argc
                                              ? "missing DIR or MANIFEST"
                                              : "too many arguments");
  char *pass = NULL;
  if (cli_passphrase_read("sign", pass_env, pass_fd, &pass) < 0)
    return EXIT_FAILED;
  struct vab_signer *signer = NULL;
  char *manifest = NULL, *sig_path = NULL;
  int r = vab_signer_load(ctx, key, cert, pass, &signer);
  cli_passphrase_free(pass);
  if (r == 0)
    r = vab_manifest_find(ctx, argv[optind], &manifest);
  if (r == 0 && asprintf(&sig_path, "%s.sig", manifest) < 0)
    r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  if (r == 0)
    r = vab_sign_file(ctx, signer, manifest, sig_path);
  cli_print_diags(ctx, "vab sign");
  if (r == 0)
    fprintf(stderr, "wrote %s\n", sig_path);
  free(manifest);
  free(sig_path);
  vab_signer_free(signer);
  return r == 0 ? EXIT_OK : EXIT_FAILED;
}
