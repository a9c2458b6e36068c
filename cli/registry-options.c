/* The registry options of vab publish and vab pull (registry-options.h). */
#include <getopt.h>
#include <stdbool.h>

#include "cli/registry-options.h"

static const char *limit_name(int c) {
  switch (c) {
  case CLI_REGISTRY_OPT_CONNECT_TIMEOUT: return "--connect-timeout";
  case CLI_REGISTRY_OPT_TIMEOUT: return "--timeout";
  case CLI_REGISTRY_OPT_LOW_SPEED_LIMIT: return "--low-speed-limit";
  default: return "--low-speed-time";
  }
}

int cli_registry_option(const struct cli_command *cmd, int c, const char *arg,
                        struct vab_registry_opts *r) {
  long v;
  switch (c) {
  case CLI_REGISTRY_OPT_CREDS: r->creds = arg; return 1;
  case CLI_REGISTRY_OPT_AUTHFILE: r->authfile = arg; return 1;
  case CLI_REGISTRY_OPT_CA_CERT: r->ca_cert = arg; return 1;
  case CLI_REGISTRY_OPT_INSECURE: r->insecure = true; return 1;
  case CLI_REGISTRY_OPT_SEND_CREDS_TO_REALM:
    r->send_creds_to_realm = true;
    return 1;
  case CLI_REGISTRY_OPT_CONNECT_TIMEOUT:
  case CLI_REGISTRY_OPT_TIMEOUT:
  case CLI_REGISTRY_OPT_LOW_SPEED_LIMIT:
  case CLI_REGISTRY_OPT_LOW_SPEED_TIME:
    if (vab_registry_parse_limit(arg, &v) < 0)
      return cli_usage_error(cmd, "%s wants a whole number from 1 to %ld",
                             limit_name(c), VAB_REGISTRY_LIMIT_MAX);
    if (c == CLI_REGISTRY_OPT_CONNECT_TIMEOUT)
      r->connect_timeout = v;
    else if (c == CLI_REGISTRY_OPT_TIMEOUT)
      r->timeout = v;
    else if (c == CLI_REGISTRY_OPT_LOW_SPEED_LIMIT)
      r->low_speed_limit = v;
    else
      r->low_speed_time = v;
    return 1;
  default:
    return 0;
  }
}
