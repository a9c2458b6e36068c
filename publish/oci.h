/* OCI image manifests: the media types vab uses, building manifest JSON
 * and reading (untrusted) manifests back from a registry. */
#ifndef VAB_PUBLISH_OCI_H
#define VAB_PUBLISH_OCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/vector.h"
#include "vab/error.h"

#define OCI_MANIFEST_TYPE "application/vnd.oci.image.manifest.v1+json"
#define OCI_INDEX_TYPE "application/vnd.oci.image.index.v1+json"
#define OCI_CONFIG_TYPE "application/vnd.oci.image.config.v1+json"
#define OCI_LAYER_TAR_TYPE "application/vnd.oci.image.layer.v1.tar"
#define OCI_EMPTY_TYPE "application/vnd.oci.empty.v1+json"
#define OCI_EMPTY_DIGEST \
  "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
#define DOCKER_MANIFEST_TYPE "application/vnd.docker.distribution.manifest.v2+json"
#define DOCKER_LIST_TYPE "application/vnd.docker.distribution.manifest.list.v2+json"
/* docker-registry 2.8.2 answers 404 for OCI manifests unless asked for
 * them by name. */
#define OCI_ACCEPT                                                           \
  OCI_MANIFEST_TYPE ", " OCI_INDEX_TYPE ", " DOCKER_MANIFEST_TYPE ", "      \
  DOCKER_LIST_TYPE

#define VAB_ARTIFACT_TYPE "application/vnd.vab.appliance.v1"
#define VAB_MANIFEST_LAYER_TYPE "application/vnd.vab.manifest.v1+json"
#define VAB_SIGNATURE_LAYER_TYPE "application/vnd.vab.manifest.signature.v1"
#define OCI_TITLE "org.opencontainers.image.title"

/* Registries cap manifests at 4 MiB (distribution 2.8.2 does). */
#define OCI_MANIFEST_MAX (4u << 20)

struct oci_annotation {
  char *key;
  char *value;
};
DEFINE_VECTOR_TYPE(oci_annotations, struct oci_annotation);

struct oci_descriptor {
  char *media_type;
  char *digest;
  uint64_t size;
  struct oci_annotations annotations;
};

struct oci_manifest {
  char *media_type;        /* NULL when absent (allowed by the spec) */
  char *artifact_type;     /* or NULL */
  struct oci_descriptor config;
  struct oci_descriptor *layers;
  size_t n_layers;
  size_t layers_cap;       /* allocated (common/vector.h) */
  struct oci_annotations annotations;
};

/* The layer media type for a build manifest "format". */
const char *oci_media_type_for_format(const char *format);

/* A layer title vab writes into a folder: a plain file name, not "." or
 * "..", no '/', no leading '.', no control characters, at most 255
 * bytes. */
bool oci_title_valid(const char *title);

/* Add an annotation (copies both strings). */
int oci_annotate(struct oci_annotations *list, const char *key,
                 const char *value);
/* Add a layer; its annotations are added afterwards with oci_annotate. */
struct oci_descriptor *oci_add_layer(struct oci_manifest *m,
                                     const char *media_type,
                                     const char *digest, uint64_t size);
int oci_set_config(struct oci_descriptor *d, const char *media_type,
                   const char *digest, uint64_t size);
const char *oci_annotation_get(const struct oci_descriptor *d,
                               const char *key);

/* Compact JSON of an image manifest, members in a fixed order; NULL when
 * out of memory. */
char *oci_manifest_to_json(const struct oci_manifest *m);

/* Read an image manifest as a registry sent it.  Refuses anything that
 * is not one (an index, schema 1, a bad descriptor) with a message
 * naming what. */
int oci_manifest_parse(struct vab_ctx *ctx, const char *what, const char *text,
                       size_t len, struct oci_manifest *m);
void oci_manifest_release(struct oci_manifest *m);

#endif
