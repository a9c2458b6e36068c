/* Registry authentication: WWW-Authenticate challenges (RFC 7235), the
 * credential files docker and podman write, and token server answers.
 * Nothing here logs or prints a secret. */
#ifndef VAB_PUBLISH_AUTH_H
#define VAB_PUBLISH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include "vab/error.h"

struct vab_registry_opts;

struct auth_param {
  char *name;    /* lowercased */
  char *value;   /* unquoted */
};

struct auth_challenge {
  char *scheme;  /* lowercased: "basic", "bearer" */
  struct auth_param *params;
  size_t n_params;
  size_t params_cap;   /* allocated (common/vector.h) */
};

struct auth_challenges {
  struct auth_challenge *items;
  size_t n;
  size_t cap;          /* allocated (common/vector.h) */
};

/* Parse one header value, adding its challenges to out.  Several headers
 * may be parsed into the same list.  -1 if the value is malformed (out
 * keeps the challenges before the fault) or memory ran out. */
int auth_parse_challenges(const char *header, struct auth_challenges *out);
void auth_challenges_release(struct auth_challenges *c);
/* The challenge with this scheme (case-insensitive), or NULL. */
const struct auth_challenge *auth_find_challenge(const struct auth_challenges *c,
                                                 const char *scheme);
/* A parameter's value (name case-insensitive), or NULL. */
const char *auth_challenge_param(const struct auth_challenge *c,
                                 const char *name);

struct registry_creds {
  char *user;            /* NULL: anonymous */
  char *password;
  char *identity_token;  /* an OAuth2 refresh token, or NULL */
  char source[160];      /* where they came from, for messages */
};

/* Find credentials for host ("reg:5000"), in this order: opts->creds,
 * VAB_REGISTRY_USER + VAB_REGISTRY_PASSWORD, opts->authfile (or
 * REGISTRY_AUTH_FILE), $XDG_RUNTIME_DIR/containers/auth.json,
 * $XDG_CONFIG_HOME/containers/auth.json, $DOCKER_CONFIG/config.json or
 * ~/.docker/config.json.  Finding none is not an error (anonymous). */
int auth_find_creds(struct vab_ctx *ctx, const struct vab_registry_opts *opts,
                    const char *host, struct registry_creds *out);
/* Look host up in the text of an auth.json / config.json.  *found says
 * whether it held an entry; a malformed file is an error naming path. */
int auth_creds_from_json(struct vab_ctx *ctx, const char *path,
                         const char *text, size_t len, const char *host,
                         struct registry_creds *out, bool *found);
/* Wipe and free. */
void registry_creds_release(struct registry_creds *c);

/* A token server's JSON answer: "token" or "access_token", and
 * "expires_in" (60 when absent).  -1 if neither token is there. */
int auth_parse_token_response(const char *text, size_t len, char **token,
                              long *expires_in);

#endif
