/* WWW-Authenticate challenges, credential files and token answers. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/files.h"
#include "common/buf.h"
#include "common/json.h"
#include "common/vector.h"
#include "publish/auth.h"
#include "publish/base64.h"
#include "publish/publish.h"
#include "signing/signing.h"

/* Credential files are small; a larger one is refused. */
#define AUTH_FILE_MAX (1u << 20)

/* RFC 9110 tchar. */
static bool is_tchar(char c) {
  return isalnum((unsigned char)c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

static size_t token_len(const char *p) {
  size_t n = 0;
  while (is_tchar(p[n]))
    n++;
  return n;
}

/* RFC 7235 token68: letters, digits, -._~+/ then any '=' padding. */
static size_t token68_len(const char *p) {
  size_t n = 0;
  while (isalnum((unsigned char)p[n]) || (p[n] != '\0' && strchr("-._~+/", p[n])))
    n++;
  while (p[n] == '=')
    n++;
  return n;
}

static const char *skip_ows(const char *p) {
  while (*p == ' ' || *p == '\t')
    p++;
  return p;
}

static char *lower_dup(const char *p, size_t n) {
  char *s = strndup(p, n);
  if (s != NULL)
    for (char *q = s; *q; q++)
      *q = (char)tolower((unsigned char)*q);
  return s;
}

static int add_param(struct auth_challenge *c, char *name, char *value) {
  struct auth_param *grown = NULL;
  if (name != NULL && value != NULL)
    grown = vector_grow(c->params, &c->params_cap, c->n_params, 1,
                        sizeof *c->params);
  if (grown == NULL) {
    free(name);
    free(value);
    return -1;
  }
  c->params = grown;
  c->params[c->n_params].name = name;
  c->params[c->n_params].value = value;
  c->n_params++;
  return 0;
}

/* name = token / quoted-string.  1: parsed and *pp moved past it; 0: what
 * follows is not a parameter (a token68 or the next challenge), *pp kept;
 * -1: malformed or out of memory. */
static int parse_param(const char **pp, struct auth_challenge *c) {
  const char *p = *pp;
  size_t n = token_len(p);
  if (n == 0)
    return 0;
  const char *name = p;
  p = skip_ows(p + n);
  if (*p != '=')
    return 0;
  p++;
  if (*p == '=')
    return 0;  /* "abc==": token68 padding */
  p = skip_ows(p);
  char *value;
  if (*p == '"') {
    struct buf v = BUF_INIT;
    v.cap = 8192;
    p++;
    while (*p != '\0' && *p != '"') {
      if (*p == '\\' && p[1] != '\0')
        p++;
      if (buf_putc(&v, *p++) < 0) {
        buf_release(&v);
        return -1;
      }
    }
    if (*p != '"') {
      buf_release(&v);
      return -1;
    }
    p++;
    if (buf_puts(&v, "") < 0) {
      buf_release(&v);
      return -1;
    }
    value = buf_detach(&v);
  } else {
    size_t vn = token_len(p);
    if (vn == 0)
      return 0;  /* "abc=" at the end: token68 */
    value = strndup(p, vn);
    p += vn;
  }
  if (add_param(c, lower_dup(name, n), value) < 0)
    return -1;
  *pp = p;
  return 1;
}

static struct auth_challenge *add_challenge(struct auth_challenges *out,
                                            const char *scheme, size_t n) {
  struct auth_challenge *grown =
      vector_grow(out->items, &out->cap, out->n, 1, sizeof *out->items);
  if (grown == NULL)
    return NULL;
  out->items = grown;
  struct auth_challenge *c = &out->items[out->n];
  memset(c, 0, sizeof *c);
  c->scheme = lower_dup(scheme, n);
  if (c->scheme == NULL)
    return NULL;
  out->n++;
  return c;
}

int auth_parse_challenges(const char *header, struct auth_challenges *out) {
  const char *p = header;
  for (;;) {
    while (*p == ' ' || *p == '\t' || *p == ',')
      p++;
    if (*p == '\0')
      return 0;
    size_t n = token_len(p);
    if (n == 0)
      return -1;
    struct auth_challenge *c = add_challenge(out, p, n);
    if (c == NULL)
      return -1;
    p += n;
    if (*p != '\0' && *p != ' ' && *p != '\t' && *p != ',')
      return -1;
    p = skip_ows(p);
    int r = parse_param(&p, c);
    if (r < 0)
      return -1;
    if (r == 0) {
      /* A token68 credential or no parameters at all. */
      p += token68_len(p);
      p = skip_ows(p);
      if (*p != '\0' && *p != ',')
        return -1;
      continue;
    }
    /* More parameters follow commas, until a token that is not followed
     * by '=' starts the next challenge. */
    for (;;) {
      p = skip_ows(p);
      if (*p == '\0')
        return 0;
      if (*p != ',')
        return -1;
      while (*p == ',' || *p == ' ' || *p == '\t')
        p++;
      if (*p == '\0')
        return 0;
      r = parse_param(&p, c);
      if (r < 0)
        return -1;
      if (r == 0)
        break;
    }
  }
}

void auth_challenges_release(struct auth_challenges *c) {
  for (size_t i = 0; i < c->n; i++) {
    for (size_t j = 0; j < c->items[i].n_params; j++) {
      free(c->items[i].params[j].name);
      free(c->items[i].params[j].value);
    }
    free(c->items[i].params);
    free(c->items[i].scheme);
  }
  free(c->items);
  c->items = NULL;
  c->n = 0;
  c->cap = 0;
}

const struct auth_challenge *auth_find_challenge(const struct auth_challenges *c,
                                                 const char *scheme) {
  for (size_t i = 0; i < c->n; i++)
    if (strcasecmp(c->items[i].scheme, scheme) == 0)
      return &c->items[i];
  return NULL;
}

const char *auth_challenge_param(const struct auth_challenge *c,
                                 const char *name) {
  for (size_t i = 0; i < c->n_params; i++)
    if (strcasecmp(c->params[i].name, name) == 0)
      return c->params[i].value;
  return NULL;
}

static void wipe_free(char *s) {
  if (s == NULL)
    return;
  explicit_bzero(s, strlen(s));
  free(s);
}

void registry_creds_release(struct registry_creds *c) {
  wipe_free(c->user);
  wipe_free(c->password);
  wipe_free(c->identity_token);
  memset(c, 0, sizeof *c);
}

/* "USER:PASSWORD" -> user and password; the password may hold ':'. */
static int split_user_password(const char *text, size_t len,
                               struct registry_creds *out) {
  const char *colon = memchr(text, ':', len);
  if (colon == NULL || colon == text)
    return -1;
  out->user = strndup(text, (size_t)(colon - text));
  out->password = strndup(colon + 1, len - (size_t)(colon - text) - 1);
  if (out->user == NULL || out->password == NULL) {
    registry_creds_release(out);
    return -1;
  }
  return 0;
}

/* An auths key names host when, without scheme and path, it equals it:
 * "reg:5000", "https://reg:5000", "https://reg:5000/v1/". */
static bool key_matches_host(const char *key, const char *host) {
  if (strncmp(key, "https://", 8) == 0)
    key += 8;
  else if (strncmp(key, "http://", 7) == 0)
    key += 7;
  size_t n = strcspn(key, "/");
  return n == strlen(host) && strncasecmp(key, host, n) == 0;
}

int auth_creds_from_json(struct vab_ctx *ctx, const char *path,
                         const char *text, size_t len, const char *host,
                         struct registry_creds *out, bool *found) {
  *found = false;
  memset(out, 0, sizeof *out);
  char err[128];
  struct json_value *root = json_parse(text, len, err, sizeof err);
  if (root == NULL)
    return vab_error(ctx, VAB_E_USAGE, "credential file '%s' is not valid JSON: %s",
                     path, err);
  int r = 0;
  const struct json_value *auths = json_get(root, "auths");
  if (root->type != JSON_OBJECT ||
      (auths != NULL && auths->type != JSON_OBJECT)) {
    r = vab_error(ctx, VAB_E_USAGE,
                  "credential file '%s' has no \"auths\" object", path);
    goto out;
  }
  for (size_t i = 0; auths != NULL && i < auths->n; i++) {
    if (!key_matches_host(auths->keys[i], host))
      continue;
    const struct json_value *entry = auths->items[i];
    const char *auth = json_get_string(entry, "auth");
    const char *identity = json_get_string(entry, "identitytoken");
    if (auth != NULL && auth[0] != '\0') {
      uint8_t *plain = NULL;
      size_t plain_len = 0;
      int bad = base64_decode(auth, &plain, &plain_len) < 0 ||
                split_user_password((const char *)plain, plain_len, out) < 0;
      if (plain != NULL) {
        explicit_bzero(plain, plain_len);
        free(plain);
      }
      if (bad) {
        r = vab_error(ctx, VAB_E_USAGE,
                      "credential file '%s': the \"auth\" entry for %s is not "
                      "base64 of USER:PASSWORD",
                      path, host);
        goto out;
      }
    }
    if (identity != NULL && identity[0] != '\0') {
      out->identity_token = strdup(identity);
      if (out->identity_token == NULL) {
        r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
        goto out;
      }
    }
    if (out->user != NULL || out->identity_token != NULL) {
      snprintf(out->source, sizeof out->source, "%s", path);
      *found = true;
      break;
    }
  }
out:
  json_free(root);
  if (r < 0)
    registry_creds_release(out);
  return r;
}

/* Look host up in one file.  A missing file is skipped unless required. */
static int try_file(struct vab_ctx *ctx, const char *path, bool required,
                    const char *host, struct registry_creds *out,
                    bool *found) {
  *found = false;
  struct stat st;
  if (!required && stat(path, &st) < 0 && errno == ENOENT)
    return 0;
  uint8_t *text = NULL;
  size_t len = 0;
  if (vab_read_small_file(ctx, path, AUTH_FILE_MAX, &text, &len) < 0)
    return -1;
  int r = auth_creds_from_json(ctx, path, (const char *)text, len, host, out,
                               found);
  explicit_bzero(text, len);
  free(text);
  return r;
}

int auth_find_creds(struct vab_ctx *ctx, const struct vab_registry_opts *opts,
                    const char *host, struct registry_creds *out) {
  memset(out, 0, sizeof *out);
  if (opts->creds != NULL) {
    if (split_user_password(opts->creds, strlen(opts->creds), out) < 0)
      return vab_error(ctx, VAB_E_USAGE, "--creds wants USER:PASSWORD");
    snprintf(out->source, sizeof out->source, "--creds");
    return 0;
  }
  const char *env_user = getenv("VAB_REGISTRY_USER");
  const char *env_pass = getenv("VAB_REGISTRY_PASSWORD");
  if (env_user != NULL && env_user[0] != '\0') {
    if (env_pass == NULL)
      return vab_error(ctx, VAB_E_USAGE,
                       "VAB_REGISTRY_USER is set but VAB_REGISTRY_PASSWORD "
                       "is not");
    out->user = strdup(env_user);
    out->password = strdup(env_pass);
    if (out->user == NULL || out->password == NULL) {
      registry_creds_release(out);
      return vab_error(ctx, VAB_E_NOMEM, "out of memory");
    }
    snprintf(out->source, sizeof out->source, "VAB_REGISTRY_USER");
    return 0;
  }
  bool found = false;
  const char *explicit_file = opts->authfile;
  if (explicit_file == NULL)
    explicit_file = getenv("REGISTRY_AUTH_FILE");
  if (explicit_file != NULL && explicit_file[0] != '\0')
    return try_file(ctx, explicit_file, true, host, out, &found);

  /* The order containers tools (podman, skopeo) search in. */
  char paths[4][4096];
  size_t n = 0;
  const char *runtime = getenv("XDG_RUNTIME_DIR");
  const char *config = getenv("XDG_CONFIG_HOME");
  const char *docker = getenv("DOCKER_CONFIG");
  const char *home = getenv("HOME");
  if (runtime != NULL && runtime[0] != '\0')
    snprintf(paths[n++], sizeof paths[0], "%s/containers/auth.json", runtime);
  if (config != NULL && config[0] != '\0')
    snprintf(paths[n++], sizeof paths[0], "%s/containers/auth.json", config);
  else if (home != NULL && home[0] != '\0')
    snprintf(paths[n++], sizeof paths[0], "%s/.config/containers/auth.json",
             home);
  if (docker != NULL && docker[0] != '\0')
    snprintf(paths[n++], sizeof paths[0], "%s/config.json", docker);
  else if (home != NULL && home[0] != '\0')
    snprintf(paths[n++], sizeof paths[0], "%s/.docker/config.json", home);
  for (size_t i = 0; i < n; i++) {
    if (try_file(ctx, paths[i], false, host, out, &found) < 0)
      return -1;
    if (found)
      return 0;
  }
  return 0;
}

int auth_parse_token_response(const char *text, size_t len, char **token,
                              long *expires_in) {
  char err[128];
  *token = NULL;
  *expires_in = 60;
  struct json_value *root = json_parse(text, len, err, sizeof err);
  if (root == NULL)
    return -1;
  const char *t = json_get_string(root, "token");
  if (t == NULL || t[0] == '\0')
    t = json_get_string(root, "access_token");
  const struct json_value *exp = json_get(root, "expires_in");
  if (exp != NULL && exp->type == JSON_NUMBER && exp->is_integer &&
      exp->integer >= 60 && exp->integer < 86400 * 365)
    *expires_in = (long)exp->integer;
  if (t != NULL && t[0] != '\0')
    *token = strdup(t);
  json_free(root);
  return *token != NULL ? 0 : -1;
}
