/* The registry options that vab publish and vab pull share: credentials,
 * TLS, where credentials may go, and the time limits.  One table and one
 * parser, so the two commands cannot drift apart. */
#ifndef VAB_CLI_REGISTRY_OPTIONS_H
#define VAB_CLI_REGISTRY_OPTIONS_H

#include "cli/cli.h"
#include "publish/publish.h"

/* getopt_long codes of the shared options (above any short option). */
enum {
  CLI_REGISTRY_OPT_CREDS = 1000,
  CLI_REGISTRY_OPT_AUTHFILE,
  CLI_REGISTRY_OPT_CA_CERT,
  CLI_REGISTRY_OPT_INSECURE,
  CLI_REGISTRY_OPT_SEND_CREDS_TO_REALM,
  CLI_REGISTRY_OPT_CONNECT_TIMEOUT,
  CLI_REGISTRY_OPT_TIMEOUT,
  CLI_REGISTRY_OPT_LOW_SPEED_LIMIT,
  CLI_REGISTRY_OPT_LOW_SPEED_TIME,
  CLI_REGISTRY_OPT_END,  /* a command's own long-only codes start here */
};

/* The struct option entries, for a command's longopts array. */
#define CLI_REGISTRY_LONGOPTS                                                \
  {"creds", required_argument, NULL, CLI_REGISTRY_OPT_CREDS},                \
  {"authfile", required_argument, NULL, CLI_REGISTRY_OPT_AUTHFILE},          \
  {"ca-cert", required_argument, NULL, CLI_REGISTRY_OPT_CA_CERT},            \
  {"insecure", no_argument, NULL, CLI_REGISTRY_OPT_INSECURE},                \
  {"send-creds-to-realm", no_argument, NULL,                                 \
   CLI_REGISTRY_OPT_SEND_CREDS_TO_REALM},                                    \
  {"connect-timeout", required_argument, NULL,                               \
   CLI_REGISTRY_OPT_CONNECT_TIMEOUT},                                        \
  {"timeout", required_argument, NULL, CLI_REGISTRY_OPT_TIMEOUT},            \
  {"low-speed-limit", required_argument, NULL,                               \
   CLI_REGISTRY_OPT_LOW_SPEED_LIMIT},                                        \
  {"low-speed-time", required_argument, NULL, CLI_REGISTRY_OPT_LOW_SPEED_TIME}

/* The --help lines of the realm rule and the time limits. */
#define CLI_REGISTRY_LIMITS_HELP                                             \
    "  --send-creds-to-realm  log in to a token realm on another origin too\n" \
    "                     (default: only the registry's own scheme, host and\n" \
    "                     port get credentials; elsewhere an anonymous token)\n" \
    "  --connect-timeout S  give up connecting after S seconds (default 30)\n" \
    "  --timeout S        give up on any one request after S seconds\n" \
    "                     (default 3600); a download resumes where it stopped\n" \
    "  --low-speed-limit B  fail a request slower than B bytes/s ...\n" \
    "  --low-speed-time S ... for S seconds in a row (defaults 1024 and 60)\n"

/* Take getopt's code c (with its argument arg) into r.  Returns 1 when c
 * was a registry option, 0 when it is not one, and EXIT_USAGE (after the
 * usage message) when its value is bad. */
int cli_registry_option(const struct cli_command *cmd, int c, const char *arg,
                        struct vab_registry_opts *r);

#endif
