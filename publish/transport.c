/* The HTTP transport: one libcurl easy handle and its callbacks (see
 * transport.h). */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/io.h"
#include "publish/transport.h"
#include "signing/digest.h"
#include "vab/progress.h"

#define ERROR_BODY_MAX (64u * 1024)

struct http_transport {
  struct vab_ctx *ctx;
  CURL *curl;
  char *label;
  char *ca_cert;
  struct http_limits limits;
  http_scrub_fn scrub;
  void *scrub_opaque;
  uint64_t bytes_sent;
  CURLcode last_code;
  char curl_error[CURL_ERROR_SIZE];
};

/* State of one transfer, handed to the libcurl callbacks. */
struct transfer {
  struct http_transport *t;
  const struct http_request *req;
  struct http_response *resp;
  uint64_t sent;             /* of the request body */
  size_t max_body;
  bool cancelled;
};

/* curl_global_init() is not safe to race with itself or with other
 * libcurl calls: once per process, and curl_global_cleanup() at exit. */
static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_code = CURLE_FAILED_INIT;

static void global_init_once(void) {
  global_code = curl_global_init(CURL_GLOBAL_DEFAULT);
  /* atexit() fails only when out of memory; libcurl then stays set up
   * until the process ends, which does no harm. */
  if (global_code == CURLE_OK)
    (void)atexit(curl_global_cleanup);
}

int http_global_init(struct vab_ctx *ctx) {
  if (pthread_once(&global_once, global_init_once) != 0 ||
      global_code != CURLE_OK)
    return vab_error(ctx, VAB_E_INTERNAL, "cannot initialise libcurl");
  return 0;
}

int http_transport_new(struct vab_ctx *ctx,
                       const struct http_transport_opts *opts,
                       struct http_transport **out) {
  *out = NULL;
  if (http_global_init(ctx) < 0)
    return -1;
  struct http_transport *t = calloc(1, sizeof *t);
  if (t == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  t->ctx = ctx;
  t->curl = curl_easy_init();
  t->label = strdup(opts->label);
  t->ca_cert = opts->ca_cert ? strdup(opts->ca_cert) : NULL;
  t->limits = opts->limits;
  t->scrub = opts->scrub;
  t->scrub_opaque = opts->scrub_opaque;
  if (t->curl == NULL || t->label == NULL ||
      (opts->ca_cert != NULL && t->ca_cert == NULL)) {
    http_transport_free(t);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  *out = t;
  return 0;
}

void http_transport_free(struct http_transport *t) {
  if (t == NULL)
    return;
  if (t->curl != NULL)
    curl_easy_cleanup(t->curl);
  free(t->label);
  free(t->ca_cert);
  free(t);
}

const char *http_transport_last_error(const struct http_transport *t) {
  return t->curl_error[0] ? t->curl_error : curl_easy_strerror(t->last_code);
}

uint64_t http_transport_bytes_sent(const struct http_transport *t) {
  return t->bytes_sent;
}

static void scrub(const struct http_transport *t, const char *text, char *out,
                  size_t out_len) {
  if (t->scrub != NULL)
    t->scrub(t->scrub_opaque, text, out, out_len);
  else
    snprintf(out, out_len, "%s", text);
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
      scrub(t->t, value, shown, sizeof shown);
      vab_log(t->t->ctx, VAB_LOG_WARNING, "%s: %s", t->t->label, shown);
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
  if (req->read_body != NULL) {
    uint64_t left = req->read_len - t->sent;
    if (want > left)
      want = (size_t)left;
    if (want == 0)
      return 0;
    ssize_t n = req->read_body(req->read_opaque, t->sent, out, want);
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
    t->t->bytes_sent += want;
  return want;
}

/* libcurl may rewind the body (e.g. on a connection it had to redo). */
static int on_seek(void *opaque, curl_off_t offset, int origin) {
  struct transfer *t = opaque;
  if (origin != SEEK_SET || offset < 0)
    return CURL_SEEKFUNC_CANTSEEK;
  if (t->req->count_bytes)
    t->t->bytes_sent -= t->sent - (uint64_t)offset;
  t->sent = (uint64_t)offset;
  return CURL_SEEKFUNC_OK;
}

static int on_progress(void *opaque, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow) {
  struct transfer *t = opaque;
  (void)dltotal;
  (void)ultotal;
  if (vab_cancelled(t->t->ctx)) {
    t->cancelled = true;
    return 1;
  }
  const struct http_request *req = t->req;
  if (req->progress == NULL)
    return 0;
  uint64_t now = (uint64_t)(ulnow > dlnow ? ulnow : dlnow);
  if (vab_progress(t->t->ctx, VAB_PHASE_PUBLISH, req->progress,
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

bool url_same_origin(const char *a, const char *b) {
  char *oa = origin_of(a), *ob = origin_of(b);
  bool same = oa != NULL && ob != NULL && strcmp(oa, ob) == 0;
  free(oa);
  free(ob);
  return same;
}

char *url_resolve(const char *base, const char *location) {
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

bool url_is_plain_http(const char *url) {
  return strncasecmp(url, "http://", 7) == 0;
}

/* The text may be a secret (a password, a refresh token): libcurl's copy
 * is wiped before it is freed. */
char *url_escape(const char *text) {
  /* libcurl >= 7.82 needs no handle here. */
  char *escaped = curl_easy_escape(NULL, text, 0);
  if (escaped == NULL)
    return NULL;
  char *out = strdup(escaped);
  explicit_bzero(escaped, strlen(escaped));
  curl_free(escaped);
  return out;
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

static enum http_result result_of(CURLcode rc) {
  if (rc == CURLE_OK)
    return HTTP_ANSWERED;
  if (retryable_curl(rc))
    return HTTP_RETRYABLE;
  if (rc == CURLE_PEER_FAILED_VERIFICATION)
    return HTTP_TLS_UNTRUSTED;
  if (rc == CURLE_SSL_CONNECT_ERROR)
    return HTTP_TLS_HANDSHAKE;
  return HTTP_FAILED;
}

static CURLcode perform(struct http_transport *tr,
                        const struct http_request *req, const char *url,
                        const char *authorization, struct http_response *resp,
                        bool *cancelled) {
  CURL *c = tr->curl;
  struct transfer t = {.t = tr, .req = req, .resp = resp};
  t.max_body = req->max_body ? req->max_body : ERROR_BODY_MAX;
  response_reset(resp);
  curl_easy_reset(c);  /* keeps the connection cache */
  tr->curl_error[0] = '\0';

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

  const struct http_limits *lim = &tr->limits;
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, tr->curl_error);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "vab/" VAB_VERSION);
  /* A registry that stalls or trickles must not block vab forever. */
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, lim->connect_timeout);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, lim->timeout);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, lim->low_speed_limit);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, lim->low_speed_time);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (tr->ca_cert != NULL)
    curl_easy_setopt(c, CURLOPT_CAINFO, tr->ca_cert);
  /* Redirects are followed by the session, to drop credentials across
   * hosts. */
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
  bool has_body = req->read_body != NULL || req->body != NULL;
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
    uint64_t len = req->read_body != NULL ? req->read_len : req->body_len;
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
      char *abs = url_resolve(url, resp->location);
      if (abs != NULL) {
        free(resp->location);
        resp->location = abs;
      }
    }
  } else {
    const char *why = tr->curl_error[0] ? tr->curl_error
                                        : curl_easy_strerror(rc);
    char shown[CURL_ERROR_SIZE];
    scrub(tr, why, shown, sizeof shown);
    resp->timed_out = rc == CURLE_OPERATION_TIMEDOUT;
    if (resp->timed_out)
      snprintf(resp->transport_error, sizeof resp->transport_error,
               "%s (limits: --connect-timeout %ld, --timeout %ld, "
               "--low-speed-limit %ld --low-speed-time %ld)",
               shown, lim->connect_timeout, lim->timeout,
               lim->low_speed_limit, lim->low_speed_time);
    else
      snprintf(resp->transport_error, sizeof resp->transport_error, "%s",
               shown);
  }
  return rc;
}

enum http_result http_perform(struct http_transport *t,
                              const struct http_request *req, const char *url,
                              const char *authorization,
                              struct http_response *resp, bool *cancelled) {
  *cancelled = false;
  t->last_code = perform(t, req, url, authorization, resp, cancelled);
  return result_of(t->last_code);
}
