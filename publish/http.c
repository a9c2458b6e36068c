/* The registry session: libcurl transport, auth, retries and redirects. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/json.h"
#include "common/io.h"
#include "publish/auth.h"
#include "publish/base64.h"
#include "publish/blob.h"
#include "publish/http.h"
#include "publish/publish.h"
#include "publish/redact.h"
#include "publish/ref.h"
#include "signing/digest.h"
#include "vab/progress.h"

/* Attempts per request on 5xx, 429 and dropped connections; the waits
 * between them double from RETRY_FIRST_MS up to RETRY_MAX_MS. */
#define RETRY_ATTEMPTS REGISTRY_RETRY_ATTEMPTS
#define RETRY_FIRST_MS 500
#define RETRY_MAX_MS 8000
#define MAX_REDIRECTS 5
#define ERROR_BODY_MAX (64u * 1024)
#define TOKEN_BODY_MAX (1u << 20)

struct registry {
  struct vab_ctx *ctx;
  CURL *curl;
  char *host;
  char *repo;
  char *base_url;           /* "https://host" or "http://host" */
  bool plain_http_allowed;  /* loopback or --insecure */
  char *ca_cert;
  bool push;
  struct registry_creds creds;
  char *authorization;      /* "Basic ..." or "Bearer ..."; never logged */
  bool auth_is_basic;
  bool send_creds_to_realm; /* log in to a token realm of another origin */
  bool creds_withheld;      /* the last token was asked for anonymously */
  /* Forms of the credentials a message must never show: user:password,
   * its base64, the password, URL-encoded too, the refresh token. */
  char *secret[5];
  long connect_timeout, timeout, low_speed_limit, low_speed_time;
  char *token_scope;        /* scope the current bearer token was for */
  uint64_t bytes_sent;
  char curl_error[CURL_ERROR_SIZE];
};

/* State of one transfer, handed to the libcurl callbacks. */
struct transfer {
  struct registry *reg;
  const struct http_request *req;
  struct http_response *resp;
  uint64_t sent;             /* of the request body */
  size_t max_body;
  bool cancelled;
};

struct vab_ctx *registry_ctx(const struct registry *reg) { return reg->ctx; }
const char *registry_host(const struct registry *reg) { return reg->host; }
const char *registry_repo(const struct registry *reg) { return reg->repo; }
uint64_t registry_bytes_sent(const struct registry *reg) {
  return reg->bytes_sent;
}

void http_response_release(struct http_response *resp) {
  free(resp->location);
  free(resp->docker_digest);
  free(resp->range);
  free(resp->content_type);
  free(resp->retry_after);
  buf_release(&resp->www_authenticate);
  buf_release(&resp->body);
  memset(resp, 0, sizeof *resp);
}

/* Forget what an earlier answer (a 100 Continue, a failed attempt) left. */
static void response_reset(struct http_response *resp) {
  http_response_release(resp);
}

static char *dup_trimmed(const char *p, size_t n) {
  while (n > 0 && (*p == ' ' || *p == '\t')) {
    p++;
    n--;
  }
  while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == '\n' || p[n - 1] == ' ' ||
                   p[n - 1] == '\t'))
    n--;
  return strndup(p, n);
}

/* Every secret a message must not show: the fixed ones and the current
 * bearer token. */
static size_t registry_secrets(const struct registry *reg,
                               const char *out[8]) {
  size_t n = 0;
  for (size_t i = 0; i < sizeof reg->secret / sizeof reg->secret[0]; i++)
    if (reg->secret[i] != NULL && reg->secret[i][0] != '\0')
      out[n++] = reg->secret[i];
  if (reg->authorization != NULL) {
    const char *space = strchr(reg->authorization, ' ');
    out[n++] = space ? space + 1 : reg->authorization;
  }
  return n;
}

void registry_scrub(const struct registry *reg, const char *text, char *out,
                    size_t out_len) {
  const char *secrets[8];
  size_t n = registry_secrets(reg, secrets);
  redact_text(text ? text : "", text ? strlen(text) : 0, secrets, n, out,
              out_len);
}

static bool header_is(const char *line, size_t len, const char *name,
                      const char **value, size_t *value_len) {
  size_t n = strlen(name);
  if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
    return false;
  *value = line + n + 1;
  *value_len = len - n - 1;
  return true;
}

static void keep_header(char **slot, const char *v, size_t n) {
  free(*slot);
  *slot = dup_trimmed(v, n);
}

static size_t on_header(char *data, size_t size, size_t nitems, void *opaque) {
  struct transfer *t = opaque;
  struct http_response *resp = t->resp;
  size_t len = size * nitems;
  const char *v;
  size_t vn;
  if (len > 5 && strncmp(data, "HTTP/", 5) == 0) {
    /* A new answer (after 100 Continue): start over. */
    response_reset(resp);
    const char *sp = memchr(data, ' ', len);
    resp->status = sp ? strtol(sp + 1, NULL, 10) : 0;
  } else if (header_is(data, len, "Location", &v, &vn)) {
    keep_header(&resp->location, v, vn);
  } else if (header_is(data, len, "Docker-Content-Digest", &v, &vn)) {
    keep_header(&resp->docker_digest, v, vn);
  } else if (header_is(data, len, "Range", &v, &vn)) {
    keep_header(&resp->range, v, vn);
  } else if (header_is(data, len, "Content-Type", &v, &vn)) {
    keep_header(&resp->content_type, v, vn);
  } else if (header_is(data, len, "Retry-After", &v, &vn)) {
    keep_header(&resp->retry_after, v, vn);
  } else if (header_is(data, len, "Content-Length", &v, &vn) &&
             t->req->sink != NULL &&
             (resp->status == 200 || resp->status == 206)) {
    /* Refuse a body larger than the blob before a byte of it lands: a
     * 206 brings the rest (limit), a 200 the whole blob (declared). */
    struct http_sink *sink = t->req->sink;
    char *value = dup_trimmed(v, vn), *end = NULL;
    errno = 0;
    unsigned long long n = value ? strtoull(value, &end, 10) : 0;
    bool number = value && end != value && *end == '\0' && errno == 0 &&
                  value[0] != '-';
    free(value);
    uint64_t most = resp->status == 206 ? sink->limit : sink->declared;
    if (!number || n > most) {
      sink->announced = number ? (uint64_t)n : UINT64_MAX;
      sink->overflow = true;
      return 0;
    }
  } else if (header_is(data, len, "WWW-Authenticate", &v, &vn)) {
    char *value = dup_trimmed(v, vn);
    if (value == NULL ||
        (resp->www_authenticate.len > 0 &&
         buf_puts(&resp->www_authenticate, ", ") < 0) ||
        buf_puts(&resp->www_authenticate, value) < 0) {
      free(value);
      return 0;
    }
    free(value);
  } else if (header_is(data, len, "Warning", &v, &vn)) {
    /* Registries may send "299 - text" for the user to see. */
    char *value = dup_trimmed(v, vn);
    char shown[300];
    if (value != NULL) {
      registry_scrub(t->reg, value, shown, sizeof shown);
      vab_log(t->reg->ctx, VAB_LOG_WARNING, "registry %s: %s", t->reg->host,
              shown);
    }
    free(value);
  }
  return len;
}

static bool status_is_success_body(long status) {
  return status == 200 || status == 206;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *opaque) {
  struct transfer *t = opaque;
  size_t len = size * nmemb;
  struct http_sink *sink = t->req->sink;
  if (sink != NULL && status_is_success_body(t->resp->status)) {
    if (t->resp->status == 200 && t->req->resume_from > 0) {
      /* The whole blob instead of the rest: the caller starts over. */
      sink->range_ignored = true;
      return 0;
    }
    if (sink->written + len > sink->limit) {
      sink->overflow = true;
      return 0;
    }
    if (write_full(sink->fd, data, len) < 0) {
      sink->write_errno = errno;
      return 0;
    }
    if (vab_sha256_update(sink->hash, data, len) < 0)
      return 0;
    sink->written += len;
    return len;
  }
  if (t->resp->body.len + len > t->max_body) {
    t->resp->body_too_large = true;
    return 0;
  }
  return buf_append(&t->resp->body, data, len) < 0 ? 0 : len;
}

static size_t on_read(char *out, size_t size, size_t nitems, void *opaque) {
  struct transfer *t = opaque;
  const struct http_request *req = t->req;
  size_t want = size * nitems;
  if (req->src != NULL) {
    uint64_t left = req->src_len - t->sent;
    if (want > left)
      want = (size_t)left;
    if (want == 0)
      return 0;
    ssize_t n = blob_source_read(req->src, req->src_offset + t->sent, out, want);
    if (n <= 0)
      return CURL_READFUNC_ABORT;
    want = (size_t)n;
  } else {
    size_t left = req->body_len - (size_t)t->sent;
    if (want > left)
      want = left;
    memcpy(out, (const char *)req->body + t->sent, want);
  }
  t->sent += want;
  if (req->count_bytes)
    t->reg->bytes_sent += want;
  return want;
}

/* libcurl may rewind the body (e.g. on a connection it had to redo). */
static int on_seek(void *opaque, curl_off_t offset, int origin) {
  struct transfer *t = opaque;
  if (origin != SEEK_SET || offset < 0)
    return CURL_SEEKFUNC_CANTSEEK;
  if (t->req->count_bytes)
    t->reg->bytes_sent -= t->sent - (uint64_t)offset;
  t->sent = (uint64_t)offset;
  return CURL_SEEKFUNC_OK;
}

static int on_progress(void *opaque, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow) {
  struct transfer *t = opaque;
  (void)dltotal;
  (void)ultotal;
  if (vab_cancelled(t->reg->ctx)) {
    t->cancelled = true;
    return 1;
  }
  const struct http_request *req = t->req;
  if (req->progress == NULL)
    return 0;
  uint64_t now = (uint64_t)(ulnow > dlnow ? ulnow : dlnow);
  if (vab_progress(t->reg->ctx, VAB_PHASE_PUBLISH, req->progress,
                   req->progress_base + now, req->progress_total) < 0) {
    t->cancelled = true;
    return 1;
  }
  return 0;
}

/* scheme://host[:port] of url, lowercased, to compare origins. */
static char *origin_of(const char *url) {
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL, *port = NULL, *out = NULL;
  if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
    if (asprintf(&out, "%s://%s:%s", scheme, host, port) < 0)
      out = NULL;
    else
      for (char *p = out; *p; p++)
        *p = (char)tolower((unsigned char)*p);
  }
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return out;
}

static bool same_origin(const char *a, const char *b) {
  char *oa = origin_of(a), *ob = origin_of(b);
  bool same = oa != NULL && ob != NULL && strcmp(oa, ob) == 0;
  free(oa);
  free(ob);
  return same;
}

/* Resolve a Location (absolute or relative) against the request URL. */
static char *resolve_url(const char *base, const char *location) {
  CURLU *u = curl_url();
  char *resolved = NULL, *out = NULL;
  if (u != NULL && curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
      curl_url_set(u, CURLUPART_URL, location, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_URL, &resolved, 0) == CURLUE_OK)
    out = strdup(resolved);
  curl_free(resolved);
  curl_url_cleanup(u);
  return out;
}

char *url_append_query(const char *url, const char *name, const char *value) {
  CURLU *u = curl_url();
  char *query = NULL, *full = NULL, *out = NULL;
  if (u != NULL && asprintf(&query, "%s=%s", name, value) >= 0 &&
      curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_set(u, CURLUPART_QUERY, query,
                   CURLU_APPENDQUERY | CURLU_URLENCODE) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_URL, &full, 0) == CURLUE_OK)
    out = strdup(full);
  free(query);
  curl_free(full);
  curl_url_cleanup(u);
  return out;
}

static bool url_is_plain_http(const char *url) {
  return strncasecmp(url, "http://", 7) == 0;
}

/* One HTTP exchange, no auth dance, no retry.  authorization is sent as
 * is (or not at all when NULL).  Returns the CURLcode. */
static CURLcode perform(struct registry *reg, const struct http_request *req,
                        const char *url, const char *authorization,
                        struct http_response *resp, bool *cancelled) {
  CURL *c = reg->curl;
  struct transfer t = {.reg = reg, .req = req, .resp = resp};
  t.max_body = req->max_body ? req->max_body : ERROR_BODY_MAX;
  response_reset(resp);
  curl_easy_reset(c);  /* keeps the connection cache */
  reg->curl_error[0] = '\0';

  struct curl_slist *headers = NULL;
  char line[8192];
  bool ok = true;
#define ADD_HEADER(...)                                                      \
  do {                                                                       \
    snprintf(line, sizeof line, __VA_ARGS__);                                \
    struct curl_slist *grown = curl_slist_append(headers, line);             \
    if (grown == NULL)                                                       \
      ok = false;                                                            \
    else                                                                     \
      headers = grown;                                                       \
  } while (0)
  if (req->accept != NULL)
    ADD_HEADER("Accept: %s", req->accept);
  if (req->content_type != NULL)
    ADD_HEADER("Content-Type: %s", req->content_type);
  if (req->content_range != NULL)
    ADD_HEADER("Content-Range: %s", req->content_range);
  if (req->resume_from > 0)
    ADD_HEADER("Range: bytes=%llu-", (unsigned long long)req->resume_from);
  if (authorization != NULL)
    ADD_HEADER("Authorization: %s", authorization);
#undef ADD_HEADER
  explicit_bzero(line, sizeof line);
  if (!ok) {
    curl_slist_free_all(headers);
    return CURLE_OUT_OF_MEMORY;
  }

  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, reg->curl_error);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "vab/" VAB_VERSION);
  /* A registry that stalls or trickles must not block vab forever. */
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, reg->connect_timeout);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, reg->timeout);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, reg->low_speed_limit);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, reg->low_speed_time);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (reg->ca_cert != NULL)
    curl_easy_setopt(c, CURLOPT_CAINFO, reg->ca_cert);
  /* Redirects are followed by hand, to drop credentials across hosts. */
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);

  const char *m = req->method;
  bool has_body = req->src != NULL || req->body != NULL;
  if (strcmp(m, "HEAD") == 0) {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (strcmp(m, "GET") == 0) {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else if (strcmp(m, "POST") == 0 && !has_body) {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
  } else if (strcmp(m, "DELETE") == 0) {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
  } else {
    /* PUT, PATCH or POST with a body: streamed through on_read. */
    uint64_t len = req->src != NULL ? req->src_len : req->body_len;
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &t);
    curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(c, CURLOPT_SEEKDATA, &t);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    if (strcmp(m, "PUT") != 0)
      curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m);
  }
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  *cancelled = t.cancelled;
  if (rc == CURLE_OK) {
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    resp->status = status;
    if (resp->location != NULL) {
      char *abs = resolve_url(url, resp->location);
      if (abs != NULL) {
        free(resp->location);
        resp->location = abs;
      }
    }
  } else {
    const char *why = reg->curl_error[0] ? reg->curl_error
                                         : curl_easy_strerror(rc);
    char shown[CURL_ERROR_SIZE];
    registry_scrub(reg, why, shown, sizeof shown);
    resp->timed_out = rc == CURLE_OPERATION_TIMEDOUT;
    if (resp->timed_out)
      snprintf(resp->transport_error, sizeof resp->transport_error,
               "%s (limits: --connect-timeout %ld, --timeout %ld, "
               "--low-speed-limit %ld --low-speed-time %ld)",
               shown, reg->connect_timeout, reg->timeout,
               reg->low_speed_limit, reg->low_speed_time);
    else
      snprintf(resp->transport_error, sizeof resp->transport_error, "%s",
               shown);
  }
  return rc;
}

/* Transport failures worth another attempt: the server went away, or
 * never answered. */
static bool retryable_curl(CURLcode rc) {
  switch (rc) {
  case CURLE_COULDNT_CONNECT:
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_PARTIAL_FILE:
  case CURLE_OPERATION_TIMEDOUT:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
    return true;
  default:
    return false;
  }
}

static bool retryable_status(long status) {
  return status == 429 || (status >= 500 && status <= 599);
}

/* Sleep ms, waking early when cancelled. */
static int backoff_sleep(struct vab_ctx *ctx, long ms) {
  while (ms > 0) {
    if (vab_check_cancel(ctx) < 0)
      return -1;
    long step = ms > 100 ? 100 : ms;
    struct timespec ts = {0, step * 1000000L};
    nanosleep(&ts, NULL);
    ms -= step;
  }
  return vab_check_cancel(ctx);
}

static long retry_delay_ms(int attempt, const struct http_response *resp) {
  if (resp->retry_after != NULL) {
    char *end = NULL;
    long secs = strtol(resp->retry_after, &end, 10);
    if (end != resp->retry_after && *end == '\0' && secs >= 0 && secs <= 30)
      return secs * 1000;
  }
  long ms = RETRY_FIRST_MS;
  for (int i = 1; i < attempt && ms < RETRY_MAX_MS; i++)
    ms *= 2;
  return ms > RETRY_MAX_MS ? RETRY_MAX_MS : ms;
}

int registry_wait_before_retry(struct registry *reg, int attempt,
                               const char *why, const char *retry_after) {
  struct http_response none = {0};
  none.retry_after = (char *)retry_after;
  long ms = retry_delay_ms(attempt, &none);
  vab_log(reg->ctx, VAB_LOG_WARNING,
          "registry %s: %s; retrying in %.1f s (attempt %d of %d)", reg->host,
          why, ms / 1000.0, attempt + 1, RETRY_ATTEMPTS);
  return backoff_sleep(reg->ctx, ms);
}

int registry_http_error(struct registry *reg, const struct http_response *resp,
                        const char *fmt, ...) {
  char raw[512], what[512], detail[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(raw, sizeof raw, fmt, ap);
  va_end(ap);
  /* Callers put registry text (URLs, digests) into fmt's arguments. */
  registry_scrub(reg, raw, what, sizeof what);
  const char *secrets[8];
  size_t n = registry_secrets(reg, secrets);
  redact_error_body(resp->body.data, resp->body.len, secrets, n, detail,
                    sizeof detail);
  return vab_error(reg->ctx, VAB_E_NETWORK, "%s: registry %s answered HTTP %ld%s",
                   what, reg->host, resp->status, detail);
}

static bool may_send_credentials_to(const struct registry *reg,
                                    const char *url) {
  return !url_is_plain_http(url) || reg->plain_http_allowed;
}

/* GET realm?service=...&scope=... (or POST with a refresh token), with
 * Basic credentials when we have them, and keep the token. */
static int fetch_token(struct registry *reg, const char *realm,
                       const char *service, const char *scope) {
  struct vab_ctx *ctx = reg->ctx;
  char shown_realm[300];
  registry_scrub(reg, realm, shown_realm, sizeof shown_realm);
  if (strncasecmp(realm, "https://", 8) != 0 &&
      !(strncasecmp(realm, "http://", 7) == 0 && reg->plain_http_allowed))
    return vab_error(ctx, VAB_E_NETWORK,
                     "registry %s sent a token realm '%s' that is not https",
                     reg->host, shown_realm);
  char *url = strdup(realm);
  if (url != NULL && service != NULL) {
    char *next = url_append_query(url, "service", service);
    free(url);
    url = next;
  }
  /* Several scopes are separated by spaces; each becomes a parameter. */
  char *scopes = scope ? strdup(scope) : NULL;
  char *save = NULL;
  for (char *s = scopes ? strtok_r(scopes, " ", &save) : NULL;
       s != NULL && url != NULL; s = strtok_r(NULL, " ", &save)) {
    char *next = url_append_query(url, "scope", s);
    free(url);
    url = next;
  }
  free(scopes);
  if (url == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");

  struct http_request req = {.method = "GET", .url = url,
                             .max_body = TOKEN_BODY_MAX};
  char *form = NULL;
  char *basic = NULL;
  /* Credentials belong to the registry's own origin.  A realm elsewhere
   * gets an anonymous request unless the user said otherwise. */
  bool have_creds = reg->creds.identity_token != NULL || reg->creds.user != NULL;
  bool withheld = have_creds && !reg->send_creds_to_realm &&
                  !same_origin(realm, reg->base_url);
  if (withheld && !reg->creds_withheld)
    vab_log(ctx, VAB_LOG_INFO,
            "registry %s: its token realm %s is another origin; asking it "
            "for an anonymous token (--send-creds-to-realm sends the "
            "credentials)",
            reg->host, shown_realm);
  reg->creds_withheld = withheld;
  if (withheld) {
    /* anonymous */
  } else if (reg->creds.identity_token != NULL) {
    /* OAuth2 refresh-token grant (docs/spec/auth/oauth.md). */
    char *rt = curl_easy_escape(reg->curl, reg->creds.identity_token, 0);
    char *sv = curl_easy_escape(reg->curl, service ? service : "", 0);
    char *sc = curl_easy_escape(reg->curl, scope ? scope : "", 0);
    if (rt && sv && sc &&
        asprintf(&form,
                 "grant_type=refresh_token&refresh_token=%s&service=%s"
                 "&client_id=vab&scope=%s",
                 rt, sv, sc) < 0)
      form = NULL;
    if (rt)
      explicit_bzero(rt, strlen(rt));
    curl_free(rt);
    curl_free(sv);
    curl_free(sc);
    req.method = "POST";
    req.url = realm;
    req.body = form;
    req.body_len = form ? strlen(form) : 0;
    req.content_type = "application/x-www-form-urlencoded";
  } else if (reg->creds.user != NULL) {
    char *pair = NULL;
    if (asprintf(&pair, "%s:%s", reg->creds.user, reg->creds.password) >= 0) {
      char *enc = base64_encode(pair, strlen(pair));
      explicit_bzero(pair, strlen(pair));
      free(pair);
      if (enc != NULL && asprintf(&basic, "Basic %s", enc) < 0)
        basic = NULL;
      if (enc != NULL) {
        explicit_bzero(enc, strlen(enc));
        free(enc);
      }
    }
  }
  struct http_response resp = {0};
  bool cancelled = false;
  int r = -1;
  CURLcode rc = perform(reg, &req, req.url, basic, &resp, &cancelled);
  if (basic != NULL) {
    explicit_bzero(basic, strlen(basic));
    free(basic);
  }
  if (form != NULL) {
    explicit_bzero(form, strlen(form));
    free(form);
  }
  if (cancelled)
    r = vab_check_cancel(ctx);
  else if (rc != CURLE_OK)
    vab_error(ctx, VAB_E_NETWORK, "cannot reach the token server of %s: %s",
              reg->host, resp.transport_error);
  else if (resp.status == 401 || resp.status == 403) {
    vab_error(ctx, VAB_E_NETWORK,
              "the token server of %s refused %s (HTTP %ld)", reg->host,
              have_creds && !withheld ? "the credentials" : "anonymous access",
              resp.status);
    if (withheld)
      vab_diag_hint(ctx, "the token server %s is not the registry's origin, "
                         "so vab did not send it the credentials; "
                         "--send-creds-to-realm (or "
                         "VAB_REGISTRY_SEND_CREDS_TO_REALM=1) does, if you "
                         "trust it",
                    shown_realm);
  }
  else if (resp.status != 200)
    registry_http_error(reg, &resp, "cannot get a token for %s", reg->repo);
  else {
    char *token = NULL;
    long expires = 0;
    if (auth_parse_token_response(resp.body.data, resp.body.len, &token,
                                  &expires) < 0) {
      vab_error(ctx, VAB_E_NETWORK,
                "the token server of %s sent no token", reg->host);
    } else {
      free(reg->authorization);
      reg->authorization = NULL;
      if (asprintf(&reg->authorization, "Bearer %s", token) < 0)
        reg->authorization = NULL;
      explicit_bzero(token, strlen(token));
      free(token);
      reg->auth_is_basic = false;
      free(reg->token_scope);
      reg->token_scope = strdup(scope ? scope : "");
      r = reg->authorization && reg->token_scope
              ? 0
              : vab_error(ctx, VAB_E_NOMEM, "out of memory");
    }
  }
  http_response_release(&resp);
  free(url);
  return r;
}

static int credentials_refused(struct registry *reg) {
  vab_error(reg->ctx, VAB_E_NETWORK,
            "registry %s refused the credentials for user '%s' (from %s): "
            "HTTP 401 unauthorized",
            reg->host, reg->creds.user ? reg->creds.user : "?",
            reg->creds.source);
  vab_diag_hint(reg->ctx, "check the user name and password");
  return -1;
}

/* Answer a 401: parse its challenges and get credentials that fit. */
static int authenticate(struct registry *reg, const struct http_response *resp,
                        const char *url, bool again) {
  struct vab_ctx *ctx = reg->ctx;
  struct auth_challenges ch = {0};
  if (resp->www_authenticate.len == 0 ||
      auth_parse_challenges(resp->www_authenticate.data, &ch) < 0 || ch.n == 0) {
    auth_challenges_release(&ch);
    return vab_error(ctx, VAB_E_NETWORK,
                     "registry %s answered HTTP 401 with no usable "
                     "WWW-Authenticate challenge",
                     reg->host);
  }
  int r;
  const struct auth_challenge *bearer = auth_find_challenge(&ch, "bearer");
  const struct auth_challenge *basic = auth_find_challenge(&ch, "basic");
  if (bearer != NULL) {
    const char *realm = auth_challenge_param(bearer, "realm");
    const char *service = auth_challenge_param(bearer, "service");
    const char *scope = auth_challenge_param(bearer, "scope");
    const char *error = auth_challenge_param(bearer, "error");
    char fallback[600];
    if (scope == NULL) {
      snprintf(fallback, sizeof fallback, "repository:%s:%s", reg->repo,
               reg->push ? "pull,push" : "pull");
      scope = fallback;
    }
    if (realm == NULL) {
      r = vab_error(ctx, VAB_E_NETWORK,
                    "registry %s sent a Bearer challenge without a realm",
                    reg->host);
    } else if (again && !reg->auth_is_basic && reg->authorization != NULL &&
               reg->token_scope != NULL &&
               strcmp(reg->token_scope, scope) == 0) {
      /* A token fetched for this very request and scope was refused (an
       * older one may just have expired: that one is fetched again). */
      char shown_scope[300], shown_error[200];
      registry_scrub(reg, scope, shown_scope, sizeof shown_scope);
      registry_scrub(reg, error ? error : "HTTP 401", shown_error,
                     sizeof shown_error);
      r = vab_error(ctx, VAB_E_NETWORK,
                    "registry %s refused access to %s (%s)%s%s", reg->host,
                    shown_scope, shown_error,
                    reg->creds.user ? " for user " : "",
                    reg->creds.user ? reg->creds.user : "");
      if (reg->creds_withheld)
        vab_diag_hint(ctx, "the token was asked for anonymously, because the "
                           "token realm is not the registry's origin; "
                           "--send-creds-to-realm sends the credentials");
    } else {
      r = fetch_token(reg, realm, service, scope);
    }
  } else if (basic != NULL) {
    if (reg->creds.user == NULL) {
      r = vab_error(ctx, VAB_E_NETWORK,
                    "registry %s wants a user name and password", reg->host);
      vab_diag_hint(ctx, "give --creds USER:PASSWORD, set VAB_REGISTRY_USER "
                         "and VAB_REGISTRY_PASSWORD, or log in with "
                         "'podman login' / 'docker login'");
    } else if (reg->auth_is_basic && reg->authorization != NULL) {
      r = credentials_refused(reg);
    } else if (!may_send_credentials_to(reg, url)) {
      r = vab_error(ctx, VAB_E_NETWORK,
                    "not sending a password to %s over plain HTTP", reg->host);
    } else {
      char *pair = NULL, *enc = NULL;
      r = -1;
      if (asprintf(&pair, "%s:%s", reg->creds.user, reg->creds.password) >= 0) {
        enc = base64_encode(pair, strlen(pair));
        explicit_bzero(pair, strlen(pair));
        free(pair);
      }
      free(reg->authorization);
      reg->authorization = NULL;
      if (enc != NULL && asprintf(&reg->authorization, "Basic %s", enc) >= 0)
        r = 0;
      else
        reg->authorization = NULL;
      if (enc != NULL) {
        explicit_bzero(enc, strlen(enc));
        free(enc);
      }
      reg->auth_is_basic = true;
      if (r < 0)
        vab_error(ctx, VAB_E_NOMEM, "out of memory");
    }
  } else {
    r = vab_error(ctx, VAB_E_UNSUPPORTED,
                  "registry %s wants '%s' authentication, which vab does "
                  "not speak (only Basic and Bearer)",
                  reg->host, ch.items[0].scheme);
  }
  auth_challenges_release(&ch);
  return r;
}

int registry_request(struct registry *reg, const struct http_request *req,
                     struct http_response *resp) {
  struct vab_ctx *ctx = reg->ctx;
  char *owned_url = NULL;
  const char *url = req->url;
  if (url[0] == '/') {
    if (asprintf(&owned_url, "%s%s", reg->base_url, url) < 0)
      return vab_error(ctx, VAB_E_NOMEM, "out of memory");
    url = owned_url;
  }
  int attempt = 1, auth_rounds = 0, redirects = 0, r = -1;
  char *redirect_url = NULL;
  for (;;) {
    const char *target = redirect_url ? redirect_url : url;
    char shown_target[300];  /* a redirect's URL came from the registry */
    registry_scrub(reg, target, shown_target, sizeof shown_target);
    /* Credentials go only to the registry itself, never to a host a
     * redirect points at (e.g. storage behind pre-signed URLs). */
    const char *authorization =
        same_origin(target, reg->base_url) ? reg->authorization : NULL;
    bool cancelled = false;
    CURLcode rc = perform(reg, req, target, authorization, resp, &cancelled);
    if (cancelled) {
      r = vab_check_cancel(ctx) < 0 ? -1 : vab_error(ctx, VAB_E_CANCELLED,
                                                      "cancelled");
      break;
    }
    if (rc != CURLE_OK) {
      /* The sink's own failures are recorded here, and transport_error is
       * cleared so that a no_retry caller does not retry them. */
      if (req->sink != NULL && req->sink->range_ignored) {
        resp->transport_error[0] = '\0';
        r = 0;
        break;
      }
      if (req->sink != NULL && req->sink->overflow) {
        if (req->sink->announced == UINT64_MAX)
          r = vab_error(ctx, VAB_E_NETWORK,
                        "registry %s sent an invalid Content-Length for %s",
                        reg->host, req->progress ? req->progress : "a blob");
        else if (req->sink->announced > 0)
          r = vab_error(ctx, VAB_E_NETWORK,
                        "registry %s announced %" PRIu64 " bytes (Content-"
                        "Length) for %s, more than the %" PRIu64 " its "
                        "descriptor declares; refused before writing",
                        reg->host, req->sink->announced,
                        req->progress ? req->progress : "a blob",
                        req->sink->declared);
        else
          r = vab_error(ctx, VAB_E_NETWORK,
                        "registry %s sent more bytes than the %" PRIu64
                        " declared for %s; stopped and refused",
                        reg->host, req->sink->declared,
                        req->progress ? req->progress : "a blob");
        resp->transport_error[0] = '\0';
        break;
      }
      if (req->sink != NULL && req->sink->write_errno != 0) {
        r = vab_error_errno(ctx, VAB_E_IO, req->sink->write_errno,
                            "cannot write %s",
                            req->progress ? req->progress : "a download");
        resp->transport_error[0] = '\0';
        break;
      }
      if (resp->body_too_large) {
        r = vab_error(ctx, VAB_E_NETWORK,
                      "registry %s sent an answer too large for %s %s",
                      reg->host, req->method, shown_target);
        resp->transport_error[0] = '\0';
        break;
      }
      if (req->no_retry) {
        r = -1;
        break;
      }
      int most = resp->timed_out ? REGISTRY_TIMEOUT_ATTEMPTS : RETRY_ATTEMPTS;
      if (retryable_curl(rc) && attempt < most) {
        long ms = retry_delay_ms(attempt, resp);
        vab_log(ctx, VAB_LOG_WARNING,
                "registry %s: %s; retrying in %.1f s (attempt %d of %d)",
                reg->host, resp->transport_error, ms / 1000.0, attempt + 1,
                most);
        if (backoff_sleep(ctx, ms) < 0)
          break;
        attempt++;
        continue;
      }
      if (rc == CURLE_PEER_FAILED_VERIFICATION) {
        r = vab_error(ctx, VAB_E_NETWORK,
                      "TLS certificate of %s is not trusted: %s", reg->host,
                      resp->transport_error);
        vab_diag_hint(ctx, "give the registry's CA with --ca-cert FILE");
        break;
      }
      if (resp->timed_out)
        r = vab_error(ctx, VAB_E_NETWORK,
                      "registry %s stalled on %s %s: %s%s", reg->host,
                      req->method, shown_target, resp->transport_error,
                      attempt > 1 ? " (gave up after retries)" : "");
      else
        r = vab_error(ctx, VAB_E_NETWORK, "cannot reach registry %s: %s%s",
                      reg->host, resp->transport_error,
                      attempt > 1 ? " (gave up after retries)" : "");
      break;
    }
    if (resp->status == 401) {
      if (auth_rounds++ >= 3) {
        r = reg->auth_is_basic ? credentials_refused(reg)
                               : registry_http_error(reg, resp, "%s %s",
                                                     req->method, target);
        break;
      }
      if (authenticate(reg, resp, target, auth_rounds > 1) < 0)
        break;
      continue;
    }
    if (retryable_status(resp->status) && !req->no_retry &&
        attempt < RETRY_ATTEMPTS) {
      long ms = retry_delay_ms(attempt, resp);
      vab_log(ctx, VAB_LOG_WARNING,
              "registry %s: HTTP %ld for %s; retrying in %.1f s (attempt %d "
              "of %d)",
              reg->host, resp->status, req->method, ms / 1000.0, attempt + 1,
              RETRY_ATTEMPTS);
      if (backoff_sleep(ctx, ms) < 0)
        break;
      attempt++;
      continue;
    }
    bool redirect = resp->status == 301 || resp->status == 302 ||
                    resp->status == 303 || resp->status == 307 ||
                    resp->status == 308;
    if (redirect && resp->location != NULL &&
        (strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0)) {
      if (++redirects > MAX_REDIRECTS) {
        r = vab_error(ctx, VAB_E_NETWORK, "registry %s redirected too often",
                      reg->host);
        break;
      }
      if (url_is_plain_http(resp->location) && !reg->plain_http_allowed &&
          !url_is_plain_http(target)) {
        char shown[300];
        registry_scrub(reg, resp->location, shown, sizeof shown);
        r = vab_error(ctx, VAB_E_NETWORK,
                      "registry %s redirected to plain HTTP (%s); refused",
                      reg->host, shown);
        break;
      }
      char *next = strdup(resp->location);
      free(redirect_url);
      redirect_url = next;
      if (redirect_url == NULL) {
        r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
        break;
      }
      continue;
    }
    r = 0;
    break;
  }
  free(redirect_url);
  free(owned_url);
  return r;
}

static int registry_ping(struct registry *reg) {
  struct http_request req = {.method = "GET", .url = "/v2/"};
  struct http_response resp = {0};
  int r = registry_request(reg, &req, &resp);
  if (r == 0 && resp.status != 200)
    r = registry_http_error(reg, &resp, "GET /v2/");
  http_response_release(&resp);
  return r;
}

/* Does a plain HTTP server answer where TLS was tried?  Only asked for
 * hosts where plain HTTP is allowed. */
static bool speaks_plain_http(struct registry *reg) {
  char *url = NULL;
  if (asprintf(&url, "http://%s/v2/", reg->host) < 0)
    return false;
  struct http_request req = {.method = "GET", .url = url};
  struct http_response resp = {0};
  bool cancelled = false;
  CURLcode rc = perform(reg, &req, url, NULL, &resp, &cancelled);
  bool yes = rc == CURLE_OK && resp.status > 0;
  http_response_release(&resp);
  free(url);
  return yes;
}

int vab_registry_parse_limit(const char *text, long *out) {
  char *end = NULL;
  if (text == NULL || !isdigit((unsigned char)text[0]))
    return -1;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (errno != 0 || *end != '\0' || v < 1 || v > VAB_REGISTRY_LIMIT_MAX)
    return -1;
  *out = v;
  return 0;
}

/* An option's value, else its variable's, else the default. */
static int resolve_limit(struct vab_ctx *ctx, long given, const char *env,
                         long fallback, long *out) {
  const char *text = getenv(env);
  if (given > 0)
    *out = given;
  else if (text != NULL && text[0] != '\0') {
    if (vab_registry_parse_limit(text, out) < 0)
      return vab_error(ctx, VAB_E_USAGE,
                       "%s='%s' is not a whole number from 1 to %ld", env,
                       text, VAB_REGISTRY_LIMIT_MAX);
  } else
    *out = fallback;
  return 0;
}

static int resolve_limits(struct vab_ctx *ctx,
                          const struct vab_registry_opts *opts,
                          struct registry *reg) {
  const char *realm = getenv("VAB_REGISTRY_SEND_CREDS_TO_REALM");
  reg->send_creds_to_realm = opts->send_creds_to_realm ||
                             (realm != NULL && strcmp(realm, "1") == 0);
  return resolve_limit(ctx, opts->connect_timeout,
                       "VAB_REGISTRY_CONNECT_TIMEOUT",
                       VAB_REGISTRY_DEFAULT_CONNECT_TIMEOUT,
                       &reg->connect_timeout) < 0 ||
                 resolve_limit(ctx, opts->timeout, "VAB_REGISTRY_TIMEOUT",
                               VAB_REGISTRY_DEFAULT_TIMEOUT, &reg->timeout) < 0 ||
                 resolve_limit(ctx, opts->low_speed_limit,
                               "VAB_REGISTRY_LOW_SPEED_LIMIT",
                               VAB_REGISTRY_DEFAULT_LOW_SPEED_LIMIT,
                               &reg->low_speed_limit) < 0 ||
                 resolve_limit(ctx, opts->low_speed_time,
                               "VAB_REGISTRY_LOW_SPEED_TIME",
                               VAB_REGISTRY_DEFAULT_LOW_SPEED_TIME,
                               &reg->low_speed_time) < 0
             ? -1
             : 0;
}

/* The forms in which the credentials could come back in an answer. */
static int keep_secrets(struct vab_ctx *ctx, struct registry *reg) {
  const struct registry_creds *c = &reg->creds;
  size_t n = 0;
  if (c->user != NULL && c->password != NULL) {
    char *pair = NULL;
    if (asprintf(&pair, "%s:%s", c->user, c->password) < 0)
      return vab_error(ctx, VAB_E_NOMEM, "out of memory");
    reg->secret[n++] = pair;
    reg->secret[n++] = base64_encode(pair, strlen(pair));
    reg->secret[n++] = strdup(c->password);
    char *escaped = curl_easy_escape(reg->curl, c->password, 0);
    reg->secret[n++] = escaped ? strdup(escaped) : NULL;
    if (escaped != NULL)
      explicit_bzero(escaped, strlen(escaped));
    curl_free(escaped);
    for (size_t i = 0; i < n; i++)
      if (reg->secret[i] == NULL)
        return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  if (c->identity_token != NULL &&
      (reg->secret[n] = strdup(c->identity_token)) == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  return 0;
}

int registry_open(struct vab_ctx *ctx, const char *host, const char *repo,
                  const struct vab_registry_opts *opts, bool push,
                  struct registry **out) {
  *out = NULL;
  static bool curl_ready;
  if (!curl_ready) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      return vab_error(ctx, VAB_E_INTERNAL, "cannot initialise libcurl");
    curl_ready = true;
  }
  struct registry *reg = calloc(1, sizeof *reg);
  if (reg == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  reg->ctx = ctx;
  reg->push = push;
  reg->curl = curl_easy_init();
  reg->host = strdup(host);
  reg->repo = strdup(repo);
  reg->ca_cert = opts->ca_cert ? strdup(opts->ca_cert) : NULL;
  reg->plain_http_allowed = opts->insecure || oci_host_is_loopback(host);
  if (reg->curl == NULL || reg->host == NULL || reg->repo == NULL ||
      (opts->ca_cert && reg->ca_cert == NULL) ||
      asprintf(&reg->base_url, "https://%s", host) < 0) {
    reg->base_url = NULL;
    registry_close(reg);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  if (resolve_limits(ctx, opts, reg) < 0 ||
      auth_find_creds(ctx, opts, host, &reg->creds) < 0 ||
      keep_secrets(ctx, reg) < 0) {
    registry_close(reg);
    return -1;
  }
  if (reg->creds.user != NULL || reg->creds.identity_token != NULL)
    vab_log(ctx, VAB_LOG_DEBUG, "registry %s: credentials from %s", host,
            reg->creds.source);

  /* Try TLS first.  Only a server that does not speak TLS at all (never a
   * certificate problem) sends a loopback or --insecure host to plain
   * HTTP. */
  struct http_request probe = {.method = "GET", .url = "/v2/", .no_retry = true};
  struct http_response resp = {0};
  bool cancelled = false;
  char *url = NULL;
  if (asprintf(&url, "%s/v2/", reg->base_url) < 0)
    url = NULL;
  CURLcode rc = url ? perform(reg, &probe, url, NULL, &resp, &cancelled)
                    : CURLE_OUT_OF_MEMORY;
  free(url);
  http_response_release(&resp);
  if (rc == CURLE_SSL_CONNECT_ERROR && reg->plain_http_allowed &&
      speaks_plain_http(reg)) {
    free(reg->base_url);
    if (asprintf(&reg->base_url, "http://%s", host) < 0) {
      reg->base_url = NULL;
      registry_close(reg);
      return vab_error(ctx, VAB_E_NOMEM, "out of memory");
    }
    vab_log(ctx, VAB_LOG_INFO, "registry %s speaks plain HTTP", host);
  } else if (rc == CURLE_SSL_CONNECT_ERROR) {
    vab_error(ctx, VAB_E_NETWORK, "TLS handshake with %s failed: %s", host,
              reg->curl_error[0] ? reg->curl_error : curl_easy_strerror(rc));
    vab_diag_hint(ctx, "plain HTTP is used only for loopback hosts or with "
                       "--insecure");
    registry_close(reg);
    return -1;
  }
  if (registry_ping(reg) < 0) {
    registry_close(reg);
    return -1;
  }
  *out = reg;
  return 0;
}

void registry_close(struct registry *reg) {
  if (reg == NULL)
    return;
  if (reg->curl != NULL)
    curl_easy_cleanup(reg->curl);
  registry_creds_release(&reg->creds);
  if (reg->authorization != NULL) {
    explicit_bzero(reg->authorization, strlen(reg->authorization));
    free(reg->authorization);
  }
  for (size_t i = 0; i < sizeof reg->secret / sizeof reg->secret[0]; i++)
    if (reg->secret[i] != NULL) {
      explicit_bzero(reg->secret[i], strlen(reg->secret[i]));
      free(reg->secret[i]);
    }
  free(reg->token_scope);
  free(reg->host);
  free(reg->repo);
  free(reg->base_url);
  free(reg->ca_cert);
  free(reg);
}
