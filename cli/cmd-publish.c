/* vab publish: push a build to an OCI registry. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/registry-options.h"
#include "cli/passphrase.h"
#include "publish/publish.h"
#include "signing/signing.h"

static int run_publish(struct vab_ctx *ctx, int argc, char **argv);

const struct cli_command cli_cmd_publish = {
  .name = "publish",
  .run = run_publish,
  .summary = "push a build to an OCI registry",
  .usage =
    "usage: vab publish [DIR] REF [--tag T]... [--containerdisk]\n"
    "                   [--key KEY [--passphrase-env NAME | --passphrase-fd N]]\n"
    "                   [--creds USER:PASSWORD] [--authfile FILE] [--ca-cert FILE]\n"
    "                   [--insecure] [--chunk-size BYTES] [--send-creds-to-realm]\n"
    "                   [--connect-timeout S] [--timeout S]\n"
    "                   [--low-speed-limit B --low-speed-time S] [--quiet] [--json]\n"
    "\n"
    "Push the build in DIR (default: the current folder; one\n"
    "NAME-VERSION.manifest.json, its .sig and its artifacts) to REF,\n"
    "HOST[:PORT]/REPO[:TAG], as one OCI artifact\n"
    "(application/vnd.vab.appliance.v1): one layer per artifact, named by\n"
    "its file name, plus the build manifest and its signature.  Without a\n"
    "TAG the build's version is the tag.  Blobs the registry has already\n"
    "are not sent again; failed transfers are retried and resumed.\n"
    "docs/publish.md has the details.\n"
    "\n"
    "Options:\n"
    "  --tag T            also tag the manifest T (repeatable)\n"
    "  --containerdisk    also push a KubeVirt containerDisk image of the\n"
    "                     qcow2, tagged TAG-containerdisk\n"
    "  --key KEY          an ecdsa-p256 key (the build's signing key): push\n"
    "                     a cosign-style signature, tag sha256-<hex>.sig\n"
    "  --passphrase-env NAME  passphrase of an encrypted key, from the\n"
    "                     environment\n"
    "  --passphrase-fd N  ... or the first line read from fd N\n"
    "  --creds USER:PASSWORD  log in with these (visible to other local\n"
    "                     users in ps; prefer the variables or a file)\n"
    "  --authfile FILE    read credentials from this auth.json/config.json\n"
    "  --ca-cert FILE     trust this CA (PEM) for the registry's TLS\n"
    "  --insecure         allow plain HTTP to a host that is not loopback\n"
    "                     (TLS certificates are always verified)\n"
    "  --chunk-size BYTES upload blobs larger than this in chunks of this\n"
    "                     size (default 67108864; suffixes K, M, G)\n"
    CLI_REGISTRY_LIMITS_HELP
    "  -q, --quiet        no progress bar or progress messages\n"
    "  --json             write the result as JSON to stdout\n"
    "  -h, --help         show this help\n"
    "\n"
    "Credentials, first found wins: --creds; VAB_REGISTRY_USER and\n"
    "VAB_REGISTRY_PASSWORD; --authfile (or REGISTRY_AUTH_FILE);\n"
    "$XDG_RUNTIME_DIR/containers/auth.json;\n"
    "$XDG_CONFIG_HOME/containers/auth.json; $DOCKER_CONFIG/config.json or\n"
    "~/.docker/config.json.  None: anonymous.\n"
    "\n"
    "Each limit may also come from VAB_REGISTRY_CONNECT_TIMEOUT,\n"
    "VAB_REGISTRY_TIMEOUT, VAB_REGISTRY_LOW_SPEED_LIMIT or\n"
    "VAB_REGISTRY_LOW_SPEED_TIME (the option wins; 'vab build' reads only\n"
    "these), and VAB_REGISTRY_SEND_CREDS_TO_REALM=1 acts as\n"
    "--send-creds-to-realm.  A request that hits a limit is tried once more.\n",
};

/* "64M" -> 67108864.  -1 when not a positive size. */
static int parse_size(const char *text, uint64_t *out) {
  char *end = NULL;
  unsigned long long v = strtoull(text, &end, 10);
  if (end == text || v == 0)
    return -1;
  uint64_t mult = 1;
  if (*end == 'K' || *end == 'k')
    mult = 1024, end++;
  else if (*end == 'M' || *end == 'm')
    mult = 1024 * 1024, end++;
  else if (*end == 'G' || *end == 'g')
    mult = 1024ull * 1024 * 1024, end++;
  if (*end != '\0' || v > UINT64_MAX / mult)
    return -1;
  *out = v * mult;
  return 0;
}

static void print_json(bool ok, const char *ref,
                       const struct vab_publish_result *res,
                       struct vab_ctx *ctx) {
  fprintf(stdout, "{\"published\":%s,\"reference\":", ok ? "true" : "false");
  cli_json_string(stdout, ref);
  fputs(",\"digest\":", stdout);
  if (res->digest[0])
    cli_json_string(stdout, res->digest);
  else
    fputs("null", stdout);
  fputs(",\"containerdisk_digest\":", stdout);
  if (res->containerdisk_digest[0])
    cli_json_string(stdout, res->containerdisk_digest);
  else
    fputs("null", stdout);
  fputs(",\"signature_tag\":", stdout);
  if (res->signature_tag[0])
    cli_json_string(stdout, res->signature_tag);
  else
    fputs("null", stdout);
  fprintf(stdout,
          ",\"blobs_uploaded\":%zu,\"blobs_skipped\":%zu,"
          "\"bytes_uploaded\":%" PRIu64 ",\"diagnostics\":",
          res->blobs_uploaded, res->blobs_skipped, res->bytes_uploaded);
  cli_json_diags(stdout, ctx);
  fputs("}\n", stdout);
}

static int run_publish(struct vab_ctx *ctx, int argc, char **argv) {
  static const struct option longopts[] = {
    {"tag", required_argument, NULL, 't'},
    {"containerdisk", no_argument, NULL, 'd'},
    {"key", required_argument, NULL, 'k'},
    {"passphrase-env", required_argument, NULL, 'e'},
    {"passphrase-fd", required_argument, NULL, 'f'},
    {"chunk-size", required_argument, NULL, 's'},
    CLI_REGISTRY_LONGOPTS,
    {"quiet", no_argument, NULL, 'q'},
    {"json", no_argument, NULL, 'j'},
    {NULL, 0, NULL, 0},
  };
  struct vab_publish_opts opts = {0};
  const char **tags = calloc((size_t)argc + 1, sizeof *tags);
  const char *key = NULL, *pass_env = NULL;
  int pass_fd = -1, c;
  bool json = false, quiet = false;
  char *end;
  if (tags == NULL) {
    fprintf(stderr, "vab publish: out of memory\n");
    return EXIT_FAILED;
  }
  optind = 1;
  opterr = 0;
  int status = EXIT_USAGE;
  while ((c = getopt_long(argc, argv, "q", longopts, NULL)) != -1) {
    int taken =
        cli_registry_option(&cli_cmd_publish, c, optarg, &opts.registry);
    if (taken == EXIT_USAGE)
      goto out;
    if (taken)
      continue;
    switch (c) {
    case 't': tags[opts.n_tags++] = optarg; break;
    case 'd': opts.containerdisk = true; break;
    case 'k': key = optarg; break;
    case 'e': pass_env = optarg; break;
    case 'f':
      pass_fd = (int)strtol(optarg, &end, 10);
      if (*end != '\0' || pass_fd < 0) {
        cli_usage_error(&cli_cmd_publish,
                        "--passphrase-fd wants a file descriptor");
        goto out;
      }
      break;
    case 's':
      if (parse_size(optarg, &opts.registry.chunk_size) < 0) {
        cli_usage_error(&cli_cmd_publish,
                        "--chunk-size wants a positive size, e.g. 64M");
        goto out;
      }
      break;
    case 'q': quiet = true; break;
    case 'j': json = true; break;
    default:
      if (optopt != 0)
        cli_usage_error(&cli_cmd_publish, "option '%s' needs a value",
                        argv[optind - 1]);
      else
        cli_usage_error(&cli_cmd_publish, "unknown option '%s'",
                        argv[optind - 1]);
      goto out;
    }
  }
  int positional = argc - optind;
  if (positional < 1 || positional > 2) {
    cli_usage_error(&cli_cmd_publish,
                    positional < 1 ? "missing REF" : "too many arguments");
    goto out;
  }
  if (key == NULL && (pass_env != NULL || pass_fd >= 0)) {
    cli_usage_error(&cli_cmd_publish, "a passphrase option needs --key");
    goto out;
  }
  const char *dir = positional == 2 ? argv[optind] : ".";
  const char *ref = argv[argc - 1];
  opts.tags = tags;

  status = EXIT_FAILED;
  struct vab_signer *signer = NULL;
  if (key != NULL) {
    char *pass = NULL;
    if (cli_passphrase_read("publish", pass_env, pass_fd, &pass) < 0)
      goto out;
    int r = vab_signer_load(ctx, key, NULL, pass, &signer);
    cli_passphrase_free(pass);
    if (r < 0) {
      cli_print_diags(ctx, "vab publish");
      goto out;
    }
    opts.signer = signer;
  }
  struct cli_log log = {"vab publish", quiet || json};
  vab_ctx_set_log(ctx, cli_log_to_stderr, &log);
  cli_progress_attach(ctx, quiet || json);
  struct vab_publish_result res;
  int r = vab_publish_dir(ctx, dir, ref, &opts, &res);
  cli_progress_done();
  vab_ctx_set_log(ctx, NULL, NULL);
  cli_print_diags(ctx, "vab publish");
  if (json)
    print_json(r == 0, ref, &res, ctx);
  if (r == 0 && !json) {
    fprintf(stderr, "published %s (%s): %zu blob%s uploaded, %zu already there\n",
            ref, res.digest, res.blobs_uploaded,
            res.blobs_uploaded == 1 ? "" : "s", res.blobs_skipped);
    if (res.containerdisk_digest[0])
      fprintf(stderr, "containerDisk: %s\n", res.containerdisk_digest);
    if (res.signature_tag[0])
      fprintf(stderr, "signature: %s\n", res.signature_tag);
  }
  vab_signer_free(signer);
  if (r == 0) {
    status = EXIT_OK;
  } else {
    const struct vab_diag *d = vab_last_error(ctx);
    status = d != NULL && d->code == VAB_E_USAGE ? EXIT_USAGE : EXIT_FAILED;
  }
out:
  free(tags);
  return status;
}
