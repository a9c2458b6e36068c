/* Blob transfer: HEAD check, monolithic and chunked upload with resume,
 * download with Range resume.  Digests are checked on every path. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/io.h"
#include "publish/blob.h"
#include "publish/http.h"
#include "signing/digest.h"
#include "vab/progress.h"

#define READ_BUFFER (256u * 1024)
/* A download cut short with at least this much new data resumes without
 * counting as a failed attempt. */
#define RESUME_PROGRESS_MIN (1u << 20)

ssize_t blob_source_read(const struct blob_source *s, uint64_t offset,
                         void *buf, size_t len) {
  uint8_t *out = buf;
  size_t done = 0;
  while (done < len && offset < s->size) {
    size_t n;
    if (offset < s->head_len) {
      n = s->head_len - (size_t)offset;
      if (n > len - done)
        n = len - done;
      memcpy(out + done, s->head + offset, n);
    } else if (offset < s->head_len + s->file_len) {
      uint64_t in_file = offset - s->head_len;
      uint64_t left = s->file_len - in_file;
      n = len - done;
      if (n > left)
        n = (size_t)left;
      ssize_t got = pread_full(s->fd, out + done, n, in_file);
      if (got < 0)
        return -1;
      if ((size_t)got != n) {
        errno = EIO;  /* the file shrank under us */
        return -1;
      }
    } else {
      uint64_t in_tail = offset - s->head_len - s->file_len;
      n = s->tail_len - (size_t)in_tail;
      if (n > len - done)
        n = len - done;
      memcpy(out + done, s->tail + in_tail, n);
    }
    done += n;
    offset += n;
  }
  return (ssize_t)done;
}

/* SHA-256 of the whole source as "sha256:<hex>". */
static int hash_source(struct vab_ctx *ctx, const struct blob_source *s,
                       char out[72]) {
  uint8_t *buf = malloc(READ_BUFFER);
  struct vab_sha256 *h = vab_sha256_new(ctx);
  if (buf == NULL || h == NULL) {
    free(buf);
    vab_sha256_free(h);
    return h ? vab_error(ctx, VAB_E_NOMEM, "out of memory") : -1;
  }
  char label[96];
  snprintf(label, sizeof label, "hash %s", s->name);
  uint64_t offset = 0;
  int r = 0;
  while (offset < s->size) {
    ssize_t n = blob_source_read(s, offset, buf, READ_BUFFER);
    if (n <= 0) {
      r = vab_error_errno(ctx, VAB_E_IO, n < 0 ? errno : EIO,
                          "cannot read '%s'", s->name);
      break;
    }
    offset += (uint64_t)n;
    if (vab_sha256_update(h, buf, (size_t)n) < 0 ||
        (s->size > READ_BUFFER &&
         vab_progress(ctx, VAB_PHASE_PUBLISH, label, offset, s->size) < 0)) {
      r = -1;
      break;
    }
  }
  free(buf);
  if (r < 0) {
    vab_sha256_free(h);
    return -1;
  }
  uint8_t digest[32];
  if (vab_sha256_final(h, digest) < 0)
    return -1;
  memcpy(out, "sha256:", 7);
  vab_hex(digest, 32, out + 7);
  return 0;
}

int blob_source_digest(struct vab_ctx *ctx, struct blob_source *s) {
  s->size = s->head_len + s->file_len + s->tail_len;
  if (hash_source(ctx, s, s->digest) < 0)
    return -1;
  s->digest_checked = true;
  return 0;
}

static char *blob_path(struct registry *reg, const char *digest) {
  char *path = NULL;
  if (asprintf(&path, "/v2/%s/blobs/%s", registry_repo(reg), digest) < 0)
    return NULL;
  return path;
}

/* Does the registry hold the blob already? 1 yes, 0 no, -1 error. */
static int blob_exists(struct registry *reg, const struct blob_source *s) {
  char *path = blob_path(reg, s->digest);
  if (path == NULL)
    return vab_error(registry_ctx(reg), VAB_E_NOMEM, "out of memory");
  struct http_request req = {.method = "HEAD", .url = path};
  struct http_response resp = {0};
  int r = registry_request(reg, &req, &resp);
  if (r == 0) {
    if (resp.status == 200)
      r = 1;
    else if (resp.status == 404)
      r = 0;
    else
      r = registry_http_error(reg, &resp, "HEAD blob %s (%s)", s->digest,
                              s->name);
  }
  http_response_release(&resp);
  free(path);
  return r;
}

/* POST an upload session; *location gets its URL. */
static int start_upload(struct registry *reg, const struct blob_source *s,
                        char **location) {
  char *path = NULL;
  if (asprintf(&path, "/v2/%s/blobs/uploads/", registry_repo(reg)) < 0)
    return vab_error(registry_ctx(reg), VAB_E_NOMEM, "out of memory");
  struct http_request req = {.method = "POST", .url = path};
  struct http_response resp = {0};
  int r = registry_request(reg, &req, &resp);
  if (r == 0 && (resp.status != 202 || resp.location == NULL))
    r = registry_http_error(reg, &resp, "cannot start uploading %s", s->name);
  if (r == 0) {
    *location = resp.location;
    resp.location = NULL;
  }
  http_response_release(&resp);
  free(path);
  return r;
}

/* "0-1234" -> 1235 bytes held.  -1 if malformed. */
static int64_t parse_range_end(const char *range) {
  if (range == NULL)
    return -1;
  const char *p = range;
  if (strncmp(p, "bytes=", 6) == 0)
    p += 6;
  char *end = NULL;
  errno = 0;
  unsigned long long first = strtoull(p, &end, 10);
  if (errno != 0 || end == p || *end != '-' || first != 0)
    return -1;
  const char *q = end + 1;
  unsigned long long last = strtoull(q, &end, 10);
  if (errno != 0 || end == q || *end != '\0' || last >= INT64_MAX)
    return -1;
  return (int64_t)last + 1;
}

/* Ask an upload session how much it holds (GET -> 204 + Range).  0 with
 * *held set; 1 when the session is gone (restart the blob); 2 when the
 * registry did not answer; -1 on an error already recorded (auth,
 * cancel). */
static int upload_status(struct registry *reg, char **location,
                         uint64_t *held) {
  struct vab_ctx *ctx = registry_ctx(reg);
  size_t errors = vab_error_count(ctx);
  struct http_request req = {.method = "GET", .url = *location,
                             .no_retry = true};
  struct http_response resp = {0};
  int r = registry_request(reg, &req, &resp);
  if (r < 0) {
    r = vab_error_count(ctx) == errors ? 2 : -1;
  } else if (resp.status == 204) {
    int64_t end = parse_range_end(resp.range);
    /* "0-0" is how 2.8.2 reports an empty session; holding one byte
     * looks the same, and starting at 0 then fails the digest check,
     * which restarts the blob. */
    *held = end <= 1 ? 0 : (uint64_t)end;
    if (resp.location != NULL) {
      free(*location);
      *location = resp.location;
      resp.location = NULL;
    }
  } else {
    vab_log(ctx, VAB_LOG_WARNING, "upload session status: HTTP %ld",
            resp.status);
    r = 1;
  }
  http_response_release(&resp);
  return r;
}

/* Close an upload: PUT location?digest=D with the rest of the body (may
 * be empty).  0 done, 1 retry the blob from the start, -1 error. */
/* A blob's bytes from offset on, as a request body (http_read_fn). */
struct blob_range {
  const struct blob_source *src;
  uint64_t offset;
};

static ssize_t read_blob_range(void *opaque, uint64_t offset, void *buf,
                               size_t len) {
  const struct blob_range *range = opaque;
  return blob_source_read(range->src, range->offset + offset, buf, len);
}

static int finish_upload(struct registry *reg, const struct blob_source *s,
                         const char *location, uint64_t offset,
                         const char *progress_label) {
  struct vab_ctx *ctx = registry_ctx(reg);
  char *url = url_append_query(location, "digest", s->digest);
  if (url == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  struct blob_range body = {s, offset};
  struct http_request req = {
      .method = "PUT", .url = url, .content_type = "application/octet-stream",
      .read_body = read_blob_range, .read_opaque = &body,
      .read_len = s->size - offset,
      .count_bytes = true, .no_retry = true, .progress = progress_label,
      .progress_base = offset, .progress_total = s->size};
  if (req.read_len == 0)
    req.read_body = NULL, req.body = "", req.body_len = 0;
  struct http_response resp = {0};
  size_t errors = vab_error_count(ctx);
  int r = registry_request(reg, &req, &resp);
  if (r < 0) {
    r = vab_error_count(ctx) == errors ? 1 : -1;
    if (r == 1)
      vab_log(ctx, VAB_LOG_WARNING, "uploading %s: %s", s->name,
              resp.transport_error);
  } else if (resp.status == 201) {
    if (resp.docker_digest != NULL &&
        strcmp(resp.docker_digest, s->digest) != 0) {
      char shown[100];
      registry_scrub(reg, resp.docker_digest, shown, sizeof shown);
      r = vab_error(ctx, VAB_E_NETWORK,
                    "registry %s stored %s as %s, not %s", registry_host(reg),
                    s->name, shown, s->digest);
    }
  } else if (resp.status >= 500 || resp.status == 429 || resp.status == 404 ||
             resp.status == 400) {
    /* 400 DIGEST_INVALID: bytes got lost or doubled on the way; 404: the
     * session is gone.  Both are cured by sending the blob again. */
    vab_log(ctx, VAB_LOG_WARNING, "uploading %s: HTTP %ld", s->name,
            resp.status);
    r = 1;
  } else {
    r = registry_http_error(reg, &resp, "cannot finish uploading %s", s->name);
  }
  http_response_release(&resp);
  free(url);
  return r;
}

/* One PATCH of [offset, offset+len).  0 sent (location and *held
 * updated), 1 failed in a way worth resuming, -1 error. */
static int send_chunk(struct registry *reg, const struct blob_source *s,
                      char **location, uint64_t offset, uint64_t len,
                      uint64_t *held, const char *progress_label) {
  struct vab_ctx *ctx = registry_ctx(reg);
  char range[64];
  snprintf(range, sizeof range, "%" PRIu64 "-%" PRIu64, offset,
           offset + len - 1);
  struct blob_range body = {s, offset};
  struct http_request req = {
      .method = "PATCH", .url = *location,
      .content_type = "application/octet-stream", .content_range = range,
      .read_body = read_blob_range, .read_opaque = &body, .read_len = len,
      .count_bytes = true, .no_retry = true, .progress = progress_label, .progress_base = offset,
      .progress_total = s->size};
  struct http_response resp = {0};
  size_t errors = vab_error_count(ctx);
  int r = registry_request(reg, &req, &resp);
  if (r < 0) {
    if (vab_error_count(ctx) == errors) {
      vab_log(ctx, VAB_LOG_WARNING, "uploading %s at byte %" PRIu64 ": %s",
              s->name, offset, resp.transport_error);
      r = 1;
    }
  } else if (resp.status == 202 && resp.location != NULL) {
    /* The registry's Range is the truth: 2.8.2 ignores Content-Range. */
    int64_t end = parse_range_end(resp.range);
    free(*location);
    *location = resp.location;
    resp.location = NULL;
    *held = end < 0 ? offset + len : (uint64_t)end;
  } else if (resp.status >= 500 || resp.status == 429 || resp.status == 416 ||
             resp.status == 404) {
    vab_log(ctx, VAB_LOG_WARNING, "uploading %s at byte %" PRIu64 ": HTTP %ld",
            s->name, offset, resp.status);
    r = 1;
  } else {
    r = registry_http_error(reg, &resp, "cannot upload %s", s->name);
  }
  http_response_release(&resp);
  return r;
}

static int upload(struct registry *reg, const struct blob_source *s,
                  uint64_t chunk_size) {
  struct vab_ctx *ctx = registry_ctx(reg);
  char label[96];
  snprintf(label, sizeof label, "upload %s", s->name);
  size_t errors_before = vab_error_count(ctx);
  int failures = 0;
  char *location = NULL;
  int r = -1;
  for (;;) {
    /* (Re)start the blob from byte 0 in a new session. */
    free(location);
    location = NULL;
    if (start_upload(reg, s, &location) < 0)
      break;
    uint64_t held = 0;
    int step = 0;
    if (s->size > chunk_size) {
      while (held < s->size) {
        uint64_t len = s->size - held;
        if (len > chunk_size)
          len = chunk_size;
        uint64_t before = held;
        step = send_chunk(reg, s, &location, held, len, &held, label);
        if (step < 0)
          break;
        if (step == 0 && held <= before)
          step = 1;  /* no progress: treat as a failure */
        else if (step == 0)
          failures = 0;  /* only failures in a row count */
        if (step == 1) {
          /* Wait for the registry to answer again, then resume where the
           * session says it is, if it still exists. */
          int status = 2;
          while (status == 2 && ++failures < REGISTRY_RETRY_ATTEMPTS) {
            if (registry_wait_before_retry(reg, failures,
                                           "chunk upload failed", NULL) < 0) {
              status = -1;
              break;
            }
            status = upload_status(reg, &location, &held);
          }
          if (status < 0) {
            step = -1;
            break;
          }
          if (status != 0) {
            if (status == 1)
              vab_log(ctx, VAB_LOG_WARNING,
                      "the registry lost the upload session for %s; sending "
                      "it again from the start",
                      s->name);
            break;
          }
          vab_log(ctx, VAB_LOG_INFO, "resuming %s at byte %" PRIu64, s->name,
                  held);
          step = 0;
        }
      }
      if (step < 0)
        break;
      if (held < s->size) {
        if (failures >= REGISTRY_RETRY_ATTEMPTS)
          break;
        continue;  /* restart the blob */
      }
      step = finish_upload(reg, s, location, s->size, label);
    } else {
      step = finish_upload(reg, s, location, 0, label);
    }
    if (step == 0) {
      r = 0;
      break;
    }
    if (step < 0)
      break;
    if (++failures >= REGISTRY_RETRY_ATTEMPTS)
      break;
    if (registry_wait_before_retry(reg, failures, "blob upload failed",
                                   NULL) < 0)
      break;
  }
  if (r < 0 && vab_error_count(ctx) == errors_before)
    vab_error(ctx, VAB_E_NETWORK,
              "cannot upload %s to registry %s: gave up after %d failed "
              "attempts",
              s->name, registry_host(reg), failures);
  free(location);
  return r;
}

int blob_push(struct registry *reg, const struct blob_source *s,
              uint64_t chunk_size, struct blob_push_stats *stats) {
  struct vab_ctx *ctx = registry_ctx(reg);
  int have = blob_exists(reg, s);
  if (have < 0)
    return -1;
  if (have == 1) {
    vab_log(ctx, VAB_LOG_INFO, "%s: registry has %s already", s->name,
            s->digest);
    stats->skipped++;
    return 0;
  }
  if (!s->digest_checked) {
    /* The digest came from the build manifest: make sure the bytes on
     * disk are still what it says before the registry gets them. */
    char actual[72];
    if (hash_source(ctx, s, actual) < 0)
      return -1;
    if (strcmp(actual, s->digest) != 0)
      return vab_error(ctx, VAB_E_SIGNATURE,
                       "'%s' is %s, but the build manifest says %s", s->name,
                       actual, s->digest);
  }
  vab_log(ctx, VAB_LOG_INFO, "%s: uploading %" PRIu64 " bytes", s->name,
          s->size);
  if (upload(reg, s, chunk_size) < 0)
    return -1;
  stats->uploaded++;
  return 0;
}

/* Hash what a partial download already holds. */
static int hash_prefix(struct vab_ctx *ctx, int fd, uint64_t len,
                       struct vab_sha256 *h, const char *path) {
  uint8_t *buf = malloc(READ_BUFFER);
  if (buf == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  uint64_t offset = 0;
  int r = 0;
  while (offset < len) {
    size_t want = len - offset > READ_BUFFER ? READ_BUFFER : (size_t)(len - offset);
    ssize_t n = pread_full(fd, buf, want, offset);
    if (n < 0 || (size_t)n != want) {
      r = vab_error_errno(ctx, VAB_E_IO, n < 0 ? errno : EIO,
                          "cannot read '%s'", path);
      break;
    }
    if (vab_sha256_update(h, buf, (size_t)n) < 0) {
      r = -1;
      break;
    }
    offset += (uint64_t)n;
  }
  free(buf);
  return r;
}

int blob_pull_to_file(struct registry *reg, const char *digest,
                      uint64_t size, const char *path, const char *name) {
  struct vab_ctx *ctx = registry_ctx(reg);
  /* O_NOFOLLOW: a symlink planted at the temporary name is refused. */
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot create '%s'", path);
  struct stat st;
  uint64_t have = 0;
  struct vab_sha256 *h = NULL;
  char *url = blob_path(reg, digest);
  char label[96];
  snprintf(label, sizeof label, "download %s", name);
  int r = -1, failures = 0, timeouts = 0;
  if (url == NULL) {
    vab_error(ctx, VAB_E_NOMEM, "out of memory");
    goto out;
  }
  if (fstat(fd, &st) < 0) {
    vab_error_errno(ctx, VAB_E_IO, errno, "cannot stat '%s'", path);
    goto out;
  }
  have = (uint64_t)st.st_size;
  if (have > size) {
    if (ftruncate(fd, 0) < 0) {
      vab_error_errno(ctx, VAB_E_IO, errno, "cannot truncate '%s'", path);
      goto out;
    }
    have = 0;
  }
  h = vab_sha256_new(ctx);
  if (h == NULL || hash_prefix(ctx, fd, have, h, path) < 0)
    goto out;
  bool resumed = have > 0;
  if (resumed)
    vab_log(ctx, VAB_LOG_INFO, "%s: resuming at byte %" PRIu64, name, have);
  while (have < size) {
    if (lseek(fd, (off_t)have, SEEK_SET) < 0) {
      vab_error_errno(ctx, VAB_E_IO, errno, "cannot seek in '%s'", path);
      goto out;
    }
    struct http_sink sink = {.fd = fd, .hash = h, .limit = size - have,
                             .declared = size};
    struct http_request req = {
        .method = "GET", .url = url, .resume_from = have, .sink = &sink,
        .no_retry = true, .progress = label, .progress_base = have,
        .progress_total = size};
    struct http_response resp = {0};
    int got = registry_request(reg, &req, &resp);
    if (got < 0 && !resp.transport_error[0]) {
      http_response_release(&resp);
      goto out;  /* recorded: overflow, write error, auth, cancel */
    }
    bool restart = false;
    if (got == 0 && resp.status == 200 && have > 0) {
      /* The server ignored Range and sent everything from byte 0. */
      restart = true;
    } else if (got == 0 && resp.status != 200 && resp.status != 206) {
      if (resp.status < 500 && resp.status != 429 && resp.status != 416) {
        registry_http_error(reg, &resp, "cannot download %s (%s)", name, digest);
        http_response_release(&resp);
        goto out;
      }
      restart = resp.status == 416;
    }
    have += sink.written;
    /* An answer cut short after real progress (the deadline ends a long
     * download) resumes at once; a trickle counts as a failure. */
    bool progressed = !restart && sink.written > 0 &&
                      (got == 0 || sink.written >= RESUME_PROGRESS_MIN);
    bool timed_out = got < 0 && resp.timed_out;
    char why[700], retry_after[16] = "";
    if (timed_out)
      snprintf(why, sizeof why, "downloading %s from registry %s stalled: %s",
               name, registry_host(reg), resp.transport_error);
    else if (got < 0)
      snprintf(why, sizeof why, "downloading %s: %s", name,
               resp.transport_error);
    else if (resp.status != 200 && resp.status != 206)
      snprintf(why, sizeof why, "downloading %s: HTTP %ld", name, resp.status);
    else if (restart)
      snprintf(why, sizeof why,
               "downloading %s: the registry ignored the Range to resume "
               "from; starting again", name);
    else
      snprintf(why, sizeof why, "downloading %s: the answer ended early", name);
    if (resp.retry_after != NULL)
      snprintf(retry_after, sizeof retry_after, "%s", resp.retry_after);
    http_response_release(&resp);
    if (restart) {
      vab_sha256_free(h);
      h = vab_sha256_new(ctx);
      if (h == NULL || ftruncate(fd, 0) < 0) {
        vab_error(ctx, VAB_E_IO, "cannot restart '%s'", path);
        goto out;
      }
      have = 0;
    }
    if (have >= size)
      break;
    if (progressed)
      continue;  /* the answer ended early but moved us on: ask again */
    if (timed_out)
      timeouts++;
    if (++failures >= REGISTRY_RETRY_ATTEMPTS ||
        timeouts >= REGISTRY_TIMEOUT_ATTEMPTS) {
      vab_error(ctx, VAB_E_NETWORK, "%s (gave up after %d attempts)", why,
                failures);
      goto out;
    }
    if (registry_wait_before_retry(reg, failures, why,
                                   retry_after[0] ? retry_after : NULL) < 0)
      goto out;
  }
  uint8_t raw[32];
  char actual[72] = "sha256:";
  int fin = vab_sha256_final(h, raw);
  h = NULL;
  if (fin < 0)
    goto out;
  vab_hex(raw, 32, actual + 7);
  if (strcmp(actual, digest) != 0) {
    unlink(path);
    vab_error(ctx, VAB_E_SIGNATURE, "%s: the downloaded bytes have digest %s, not %s",
              name, actual, digest);
    if (resumed)
      vab_diag_hint(ctx, "the download resumed a partial file '%s', which "
                         "is now removed; run again", path);
    goto out;
  }
  if (fsync(fd) < 0) {
    vab_error_errno(ctx, VAB_E_IO, errno, "cannot write '%s'", path);
    goto out;
  }
  r = 0;
out:
  vab_sha256_free(h);
  if (close(fd) < 0 && r == 0)
    r = vab_error_errno(ctx, VAB_E_IO, errno, "cannot write '%s'", path);
  free(url);
  return r;
}

int blob_pull_to_memory(struct registry *reg, const char *digest,
                        uint64_t size, size_t max, uint8_t **data) {
  struct vab_ctx *ctx = registry_ctx(reg);
  *data = NULL;
  if (size > max)
    return vab_error(ctx, VAB_E_FORMAT,
                     "blob %s is %" PRIu64 " bytes; at most %zu expected",
                     digest, size, max);
  char *url = blob_path(reg, digest);
  if (url == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  struct http_request req = {.method = "GET", .url = url,
                             .max_body = (size_t)size + 1};
  struct http_response resp = {0};
  int r = registry_request(reg, &req, &resp);
  if (r == 0 && resp.status != 200)
    r = registry_http_error(reg, &resp, "cannot download blob %s", digest);
  if (r == 0 && resp.body.len != size)
    r = vab_error(ctx, VAB_E_NETWORK,
                  "blob %s: the registry sent %zu bytes, the manifest says "
                  "%" PRIu64,
                  digest, resp.body.len, size);
  if (r == 0) {
    char actual[VAB_SHA256_DIGEST_SIZE];
    if (vab_sha256_buffer(ctx, resp.body.data, resp.body.len, actual) < 0) {
      r = -1;
    } else {
      if (strcmp(actual, digest) != 0)
        r = vab_error(ctx, VAB_E_SIGNATURE,
                      "the registry sent bytes whose digest is %s, not %s",
                      actual, digest);
    }
  }
  if (r == 0) {
    if (buf_puts(&resp.body, "") < 0) {
      r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
    } else {
      *data = (uint8_t *)buf_detach(&resp.body);
    }
  }
  http_response_release(&resp);
  free(url);
  return r;
}
