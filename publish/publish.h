/* Publishing a build to an OCI registry and pulling it back.  publish/ is
 * the only user of libcurl (publish/transport.c holds every call).
 *
 * A published build is one OCI image manifest (artifactType
 * application/vnd.vab.appliance.v1, the empty config) with one layer per
 * artifact of the build manifest, plus the build manifest and its detached
 * signature; each layer is named by org.opencontainers.image.title.  With
 * containerdisk set, a KubeVirt containerDisk image of the qcow2 is pushed
 * too, and with an ECDSA P-256 signer, a cosign-style signature of each
 * manifest under the tag sha256-<hex>.sig.  docs/publish.md has the
 * details and the reasons.
 */
#ifndef VAB_PUBLISH_PUBLISH_H
#define VAB_PUBLISH_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vab/error.h"

struct vab_signer;
struct vab_verifier;

/* How to reach and log in to a registry. */
struct vab_registry_opts {
  const char *creds;        /* "USER:PASSWORD", or NULL */
  const char *authfile;     /* auth.json / config.json to read, or NULL */
  const char *ca_cert;      /* PEM CA bundle for a private CA, or NULL */
  bool insecure;            /* allow plain HTTP to a non-loopback host */
  uint64_t chunk_size;      /* blobs larger than this go in PATCH chunks;
                             * 0: VAB_PUBLISH_DEFAULT_CHUNK */
  bool send_creds_to_realm; /* also log in to a token realm on another
                             * origin (default: anonymous token there) */
  /* Limits of each request, in seconds and bytes per second; 0: the
   * VAB_REGISTRY_* variable of the same name, else the default below. */
  long connect_timeout;     /* VAB_REGISTRY_CONNECT_TIMEOUT */
  long timeout;             /* VAB_REGISTRY_TIMEOUT: whole request */
  long low_speed_limit;     /* VAB_REGISTRY_LOW_SPEED_LIMIT ... */
  long low_speed_time;      /* ... for VAB_REGISTRY_LOW_SPEED_TIME s fails */
};

#define VAB_PUBLISH_DEFAULT_CHUNK (64ull << 20)
#define VAB_REGISTRY_DEFAULT_CONNECT_TIMEOUT 30
#define VAB_REGISTRY_DEFAULT_TIMEOUT 3600
#define VAB_REGISTRY_DEFAULT_LOW_SPEED_LIMIT 1024
#define VAB_REGISTRY_DEFAULT_LOW_SPEED_TIME 60
#define VAB_REGISTRY_LIMIT_MAX 1000000000L

/* A limit's text ("300"): a whole number from 1 to VAB_REGISTRY_LIMIT_MAX.
 * -1 otherwise.  The same grammar for the options and the variables. */
int vab_registry_parse_limit(const char *text, long *out);

struct vab_publish_opts {
  struct vab_registry_opts registry;
  const char *const *tags;  /* more tags for the same manifest */
  size_t n_tags;
  bool containerdisk;       /* also push a KubeVirt containerDisk image */
  struct vab_signer *signer;  /* ECDSA P-256: push a cosign signature */
};

struct vab_publish_result {
  char digest[72];               /* "sha256:<hex>" of the artifact manifest */
  char containerdisk_digest[72]; /* or "" */
  char signature_tag[80];        /* "sha256-<hex>.sig", or "" */
  size_t blobs_uploaded;
  size_t blobs_skipped;          /* the registry had them already */
  uint64_t bytes_uploaded;       /* blob bytes sent, retries included */
};

/* Publish a build to ref, "host[:port]/repo[:tag]".  dir is a folder with
 * one NAME-VERSION.manifest.json, or that manifest itself; its .sig and its
 * artifacts sit beside it.  Without a tag in ref, the build's version is
 * the tag.  result may be NULL. */
int vab_publish_dir(struct vab_ctx *ctx, const char *dir, const char *ref,
                    const struct vab_publish_opts *opts,
                    struct vab_publish_result *result);

struct vab_pull_opts {
  struct vab_registry_opts registry;
  struct vab_verifier *verifier;  /* check the build signature, or NULL */
};

struct vab_pull_file {
  char *name;
  uint64_t size;
  char digest[72];
};

struct vab_pull_result {
  char digest[72];             /* of the manifest pulled */
  struct vab_pull_file *files;
  size_t n_files;
  uint64_t bytes_downloaded;   /* resumed bytes are not counted again */
  bool verified;               /* the build signature was checked */
};

/* Download every layer of the vab artifact at ref into dir (created if
 * missing) under its title.  Sizes and digests are checked; with a
 * verifier, the build manifest's signature and every artifact's digest in
 * it are checked before any file gets its final name.  An interrupted
 * download resumes from DIR/.TITLE.part. */
int vab_pull(struct vab_ctx *ctx, const char *ref, const char *dir,
             const struct vab_pull_opts *opts, struct vab_pull_result *result);
void vab_pull_result_release(struct vab_pull_result *result);

#endif
