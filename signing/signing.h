/* Keys, detached signatures and build manifests.  signing/ is the only user
 * of OpenSSL.
 *
 * Signature format (docs/signing.md): NAME.manifest.json.sig holds the raw
 * signature bytes over the manifest file's exact bytes:
 *   ed25519     pure Ed25519 (64 bytes)
 *   ecdsa-p256  ECDSA over SHA-256, DER encoded
 *   rsa-3072    RSASSA-PKCS1-v1_5 over SHA-256
 * so plain `openssl dgst -sha256 -verify` (or `openssl pkeyutl -verify
 * -rawin` for Ed25519) checks it without vab. */
#ifndef VAB_SIGNING_SIGNING_H
#define VAB_SIGNING_SIGNING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vab/error.h"

enum vab_key_type {
  VAB_KEY_ED25519,
  VAB_KEY_ECDSA_P256,
  VAB_KEY_RSA_3072,
};

int vab_key_type_parse(const char *text, enum vab_key_type *out);
const char *vab_key_type_name(enum vab_key_type type);

struct vab_keygen_opts {
  enum vab_key_type type;
  const char *cert_subject;   /* "/CN=..." ; NULL: "/CN=vab signing key" */
  unsigned cert_days;         /* 0: 3650 */
  const char *passphrase;     /* encrypt NAME.key with it, or NULL */
  bool force;                 /* replace existing files */
};

/* Write NAME.key (mode 0600), NAME.pub and NAME.crt, each atomically. */
int vab_keygen(struct vab_ctx *ctx, const char *name,
               const struct vab_keygen_opts *opts);

struct vab_signer;   /* a loaded private key (and optional certificate) */

/* Load a private key.  Refuses a key file that group or others can read. */
int vab_signer_load(struct vab_ctx *ctx, const char *key_path,
                    const char *cert_path, const char *passphrase,
                    struct vab_signer **out);
void vab_signer_free(struct vab_signer *s);
enum vab_key_type vab_signer_type(const struct vab_signer *s);

/* Who signs: lowercase hex SHA-256 of the public key (DER) and, when
 * there is one, the certificate (DER).  What a signed artifact depends
 * on, for a cache key; no secret goes into it. */
int vab_signer_identity(struct vab_ctx *ctx, const struct vab_signer *s,
                        char out[65]);

/* Sign data; *sig is malloc'd. */
int vab_sign_buffer(struct vab_ctx *ctx, struct vab_signer *s,
                    const void *data, size_t len, uint8_t **sig,
                    size_t *sig_len);
/* Sign a file's bytes and write the signature to sig_path atomically. */
int vab_sign_file(struct vab_ctx *ctx, struct vab_signer *s,
                  const char *path, const char *sig_path);

/* The OVF-standard .cert text for an OVA: "SHA256(MF_NAME)= <hex
 * signature of the .mf bytes>" and the signer's PEM certificate.  *text is
 * NULL (and a warning logged) when the signer has no certificate or is an
 * Ed25519 key, which OVA consumers do not verify. */
int vab_signer_ova_cert(struct vab_ctx *ctx, struct vab_signer *s,
                        const char *mf_name, const void *mf, size_t len,
                        char **text);

struct vab_verifier;  /* a public key, from a .pub or a .crt */

int vab_verifier_load(struct vab_ctx *ctx, const char *pubkey_path,
                      const char *cert_path, struct vab_verifier **out);
void vab_verifier_free(struct vab_verifier *v);
/* 0 if sig is a valid signature of data, else -1 with VAB_E_SIGNATURE and
 * a message naming what (a file name) was signed. */
int vab_verify_buffer(struct vab_ctx *ctx, struct vab_verifier *v,
                      const char *what, const void *data, size_t len,
                      const uint8_t *sig, size_t sig_len);


#endif
