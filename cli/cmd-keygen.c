/* vab keygen: make a signing key, its public key and a certificate. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/passphrase.h"
#include "signing/signing.h"

static int run_keygen(struct vab_ctx *ctx, int argc, char **argv);

const struct cli_command cli_cmd_keygen = {
  .name = "keygen",
  .run = run_keygen,
  .summary = "make a signing key pair and a self-signed certificate",
  .usage =
    "usage: vab keygen [--type ed25519|ecdsa-p256|rsa-3072] [--cert-subject SUBJ]\n"
    "                  [--days N] [--passphrase-env NAME | --passphrase-fd N]\n"
    "                  [--force] -o NAME\n"
    "\n"
    "Write NAME.key (the private key, PEM PKCS#8, mode 0600), NAME.pub (the\n"
    "public key, PEM) and NAME.crt (a self-signed X.509 certificate, for the\n"
    "OVA .cert file).  Each file is written atomically.\n"
    "\n"
    "Options:\n"
    "  --type TYPE          key type; default rsa-3072, which every OVA\n"
    "                       consumer verifies; ecdsa-p256 also signs registry\n"
    "                       pushes cosign-style\n"
    "  --cert-subject SUBJ  certificate subject, /CN=name[/O=org...];\n"
    "                       default /CN=vab signing key\n"
    "  --days N             certificate validity in days (default 3650)\n"
    "  --passphrase-env NAME  encrypt NAME.key (AES-256) with the passphrase\n"
    "                       in environment variable NAME\n"
    "  --passphrase-fd N    ... or with the first line read from fd N\n"
    "  --force              replace existing files\n"
    "  -o NAME              output path prefix (required)\n"
    "  -h, --help           show this help\n",
};

static int run_keygen(struct vab_ctx *ctx, int argc, char **argv) {
  static const struct option longopts[] = {
    {"type", required_argument, NULL, 't'},
    {"cert-subject", required_argument, NULL, 's'},
    {"days", required_argument, NULL, 'd'},
    {"passphrase-env", required_argument, NULL, 'e'},
    {"passphrase-fd", required_argument, NULL, 'f'},
    {"force", no_argument, NULL, 'F'},
    {NULL, 0, NULL, 0},
  };
  struct vab_keygen_opts opts = {.type = VAB_KEY_RSA_3072};
  const char *name = NULL, *pass_env = NULL;
  int pass_fd = -1, c;
  char *end;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
    switch (c) {
    case 't':
      if (vab_key_type_parse(optarg, &opts.type) < 0)
        return cli_usage_error(&cli_cmd_keygen,
                               "--type must be ed25519, ecdsa-p256 or "
                               "rsa-3072, not '%s'", optarg);
      break;
    case 's': opts.cert_subject = optarg; break;
    case 'd':
      opts.cert_days = (unsigned)strtoul(optarg, &end, 10);
      if (*end != '\0' || opts.cert_days == 0 || opts.cert_days > 36500)
        return cli_usage_error(&cli_cmd_keygen,
                               "--days wants 1 to 36500, not '%s'", optarg);
      break;
    case 'e': pass_env = optarg; break;
    case 'f':
      pass_fd = (int)strtol(optarg, &end, 10);
      if (*end != '\0' || pass_fd < 0)
        return cli_usage_error(&cli_cmd_keygen,
                               "--passphrase-fd wants a file descriptor");
      break;
    case 'F': opts.force = true; break;
    case 'o': name = optarg; break;
    default:
      return cli_usage_error(&cli_cmd_keygen, "unknown option '%s'",
                             argv[optind - 1]);
    }
  }
  if (name == NULL)
    return cli_usage_error(&cli_cmd_keygen, "missing -o NAME");
  if (optind != argc)
    return cli_usage_error(&cli_cmd_keygen, "unexpected argument '%s'",
                           argv[optind]);
  char *pass = NULL;
  if (cli_passphrase_read("keygen", pass_env, pass_fd, &pass) < 0)
    return EXIT_FAILED;
  opts.passphrase = pass;
  int r = vab_keygen(ctx, name, &opts);
  cli_passphrase_free(pass);
  cli_print_diags(ctx, "vab keygen");
  if (r < 0)
    return EXIT_FAILED;
  fprintf(stderr, "wrote %s.key, %s.pub, %s.crt (%s)\n", name, name, name,
          vab_key_type_name(opts.type));
  return EXIT_OK;
}
