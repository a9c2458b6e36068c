/* Registry references: host[:port]/repo[:tag][@sha256:hex]. */
#ifndef VAB_PUBLISH_REF_H
#define VAB_PUBLISH_REF_H

#include <stdbool.h>
#include <stddef.h>
#include "vab/error.h"

struct oci_ref {
  char *host;     /* "reg.example:5000" (port kept), "[::1]:5000" */
  char *repo;     /* "team/web" */
  char *tag;      /* or NULL */
  char *digest;   /* "sha256:<hex>", or NULL */
};

/* Parse text; on error a VAB_E_USAGE diagnostic says what is wrong. */
int oci_ref_parse(struct vab_ctx *ctx, const char *text, struct oci_ref *ref);
void oci_ref_release(struct oci_ref *ref);
/* Whether vab_publish_dir() takes text as its target: a valid reference
 * with no digest (a push names a tag).  Pure, for `vab validate`:
 * returns 0, or -1 with the reason in why. */
int oci_publish_ref_check(const char *text, char *why, size_t why_len);
#define OCI_DIGEST_PUSH_REFUSED \
  "cannot publish to a digest reference; give a tag"

bool oci_tag_valid(const char *tag);
bool oci_repo_valid(const char *repo);
bool oci_digest_valid(const char *digest);
/* The host without its port is localhost, 127.0.0.0/8 or ::1. */
bool oci_host_is_loopback(const char *host);

#endif
