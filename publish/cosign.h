/* cosign-style ("legacy", tag-based) signatures: a simple-signing payload
 * naming the manifest digest, signed with ECDSA P-256 over SHA-256 and
 * pushed as an image under the tag sha256-<hex>.sig (registry.md 4.1). */
#ifndef VAB_PUBLISH_COSIGN_H
#define VAB_PUBLISH_COSIGN_H

#include "vab/error.h"

#define COSIGN_LAYER_TYPE "application/vnd.dev.cosign.simplesigning.v1+json"
#define COSIGN_SIGNATURE_ANNOTATION "dev.cosignproject.cosign/signature"

/* {"critical":{"identity":{"docker-reference":REF},"image":{
 * "docker-manifest-digest":DIGEST},"type":"cosign container image
 * signature"},"optional":null}; malloc'd. */
char *cosign_payload(const char *docker_reference, const char *digest);
/* The stub image config cosign writes; malloc'd. */
char *cosign_config(const char *payload_digest);
/* "sha256:<hex>" -> "sha256-<hex>.sig" (out holds 80 bytes). */
void cosign_tag(const char *digest, char out[80]);

#endif
