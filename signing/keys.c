/* Key generation, loading, signing and verification (OpenSSL 3). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/files.h"
#include "signing/signing.h"
#include "vab/progress.h"

/* Keys and certificates are small; anything larger is not one. */
#define KEY_FILE_MAX (64u * 1024)

struct vab_signer {
  EVP_PKEY *key;
  X509 *cert;
  enum vab_key_type type;
};

struct vab_verifier {
  EVP_PKEY *key;
};

static const char *const key_type_names[] = {
  [VAB_KEY_ED25519] = "ed25519",
  [VAB_KEY_ECDSA_P256] = "ecdsa-p256",
  [VAB_KEY_RSA_3072] = "rsa-3072",
};

int vab_key_type_parse(const char *text, enum vab_key_type *out) {
  for (size_t i = 0; i < sizeof key_type_names / sizeof key_type_names[0]; i++)
    if (strcmp(text, key_type_names[i]) == 0) {
      *out = (enum vab_key_type)i;
      return 0;
    }
  return -1;
}

const char *vab_key_type_name(enum vab_key_type type) {
  return key_type_names[type];
}

/* The first queued OpenSSL error, for messages. */
static const char *openssl_reason(char *buf, size_t len) {
  unsigned long e = ERR_get_error();
  if (e == 0)
    snprintf(buf, len, "no detail from OpenSSL");
  else
    ERR_error_string_n(e, buf, len);
  ERR_clear_error();
  return buf;
}

static int ssl_error(struct vab_ctx *ctx, const char *what) {
  char reason[256];
  return vab_error(ctx, VAB_E_SIGNATURE, "%s: %s", what,
                   openssl_reason(reason, sizeof reason));
}

/* Write what a PEM writer put in a memory BIO to path. */
static int write_bio(struct vab_ctx *ctx, BIO *bio, const char *path,
                     unsigned mode) {
  char *data = NULL;
  long len = BIO_get_mem_data(bio, &data);
  if (len <= 0)
    return ssl_error(ctx, "cannot encode PEM");
  return vab_write_file_atomic(ctx, path, data, (size_t)len, mode);
}

static EVP_PKEY *generate_key(enum vab_key_type type) {
  switch (type) {
  case VAB_KEY_ED25519: return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
  case VAB_KEY_ECDSA_P256: return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  case VAB_KEY_RSA_3072: return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
  }
  return NULL;
}

static const EVP_MD *digest_for(enum vab_key_type type) {
  /* Ed25519 hashes internally: OpenSSL wants no digest for it. */
  return type == VAB_KEY_ED25519 ? NULL : EVP_sha256();
}

/* "/CN=vab/O=Example Ltd" -> name entries. */
static int parse_subject(struct vab_ctx *ctx, const char *subject,
                         X509_NAME *name) {
  if (subject[0] != '/')
    return vab_error(ctx, VAB_E_USAGE,
                     "certificate subject '%s' must look like /CN=name/O=org",
                     subject);
  char *copy = strdup(subject);
  if (copy == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  int r = 0;
  char *save = NULL;
  for (char *part = strtok_r(copy + 1, "/", &save); part != NULL;
       part = strtok_r(NULL, "/", &save)) {
    char *eq = strchr(part, '=');
    if (eq == NULL || eq == part || eq[1] == '\0') {
      r = vab_error(ctx, VAB_E_USAGE,
                    "certificate subject part '%s' is not KEY=VALUE", part);
      break;
    }
    *eq = '\0';
    if (!X509_NAME_add_entry_by_txt(name, part, MBSTRING_UTF8,
                                    (const unsigned char *)(eq + 1), -1, -1, 0)) {
      ERR_clear_error();
      r = vab_error(ctx, VAB_E_USAGE,
                    "certificate subject has an unknown field '%s'", part);
      break;
    }
  }
  free(copy);
  return r;
}

static int add_extension(X509 *cert, int nid, const char *value) {
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
  if (ext == NULL)
    return -1;
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok ? 0 : -1;
}

static X509 *make_certificate(struct vab_ctx *ctx, EVP_PKEY *key,
                              enum vab_key_type type,
                              const struct vab_keygen_opts *opts) {
  X509 *cert = X509_new();
  BIGNUM *serial = BN_new();
  unsigned char serial_bytes[16];
  if (cert == NULL || serial == NULL ||
      RAND_bytes(serial_bytes, sizeof serial_bytes) != 1) {
    ssl_error(ctx, "cannot create a certificate");
    goto fail;
  }
  serial_bytes[0] &= 0x7f;  /* a positive serial number */
  unsigned days = opts->cert_days ? opts->cert_days : 3650;
  if (!X509_set_version(cert, 2) ||
      !BN_bin2bn(serial_bytes, sizeof serial_bytes, serial) ||
      !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert)) ||
      !X509_gmtime_adj(X509_getm_notBefore(cert), 0) ||
      !X509_gmtime_adj(X509_getm_notAfter(cert), (long)days * 86400) ||
      !X509_set_pubkey(cert, key)) {
    ssl_error(ctx, "cannot fill in the certificate");
    goto fail;
  }
  X509_NAME *name = X509_get_subject_name(cert);
  if (parse_subject(ctx, opts->cert_subject ? opts->cert_subject
                                            : "/CN=vab signing key",
                    name) < 0)
    goto fail;
  if (!X509_set_issuer_name(cert, name) ||
      add_extension(cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
      add_extension(cert, NID_key_usage, "critical,digitalSignature") < 0 ||
      add_extension(cert, NID_subject_key_identifier, "hash") < 0 ||
      X509_sign(cert, key, digest_for(type)) <= 0) {
    ssl_error(ctx, "cannot sign the certificate");
    goto fail;
  }
  BN_free(serial);
  return cert;
fail:
  BN_free(serial);
  X509_free(cert);
  return NULL;
}

static int refuse_existing(struct vab_ctx *ctx, const char *path, bool force) {
  if (!force && access(path, F_OK) == 0)
    return vab_error(ctx, VAB_E_IO,
                     "'%s' already exists; use --force to replace it", path);
  return 0;
}

int vab_keygen(struct vab_ctx *ctx, const char *name,
               const struct vab_keygen_opts *opts) {
  char key_path[PATH_MAX], pub_path[PATH_MAX], crt_path[PATH_MAX];
  if (strlen(name) + 5 > sizeof key_path)
    return vab_error(ctx, VAB_E_USAGE, "key name '%s' is too long", name);
  snprintf(key_path, sizeof key_path, "%s.key", name);
  snprintf(pub_path, sizeof pub_path, "%s.pub", name);
  snprintf(crt_path, sizeof crt_path, "%s.crt", name);
  if (refuse_existing(ctx, key_path, opts->force) < 0 ||
      refuse_existing(ctx, pub_path, opts->force) < 0 ||
      refuse_existing(ctx, crt_path, opts->force) < 0)
    return -1;

  int r = -1;
  EVP_PKEY *key = generate_key(opts->type);
  X509 *cert = NULL;
  BIO *key_bio = BIO_new(BIO_s_mem());
  BIO *pub_bio = BIO_new(BIO_s_mem());
  BIO *crt_bio = BIO_new(BIO_s_mem());
  if (key == NULL || key_bio == NULL || pub_bio == NULL || crt_bio == NULL) {
    ssl_error(ctx, "cannot generate the key");
    goto out;
  }
  cert = make_certificate(ctx, key, opts->type, opts);
  if (cert == NULL)
    goto out;
  const char *pass = opts->passphrase;
  if (!PEM_write_bio_PKCS8PrivateKey(key_bio, key,
                                     pass ? EVP_aes_256_cbc() : NULL,
                                     pass, pass ? (int)strlen(pass) : 0,
                                     NULL, NULL) ||
      !PEM_write_bio_PUBKEY(pub_bio, key) || !PEM_write_bio_X509(crt_bio, cert)) {
    ssl_error(ctx, "cannot encode the key");
    goto out;
  }
  /* The private key is created 0600 from its first byte. */
  if (write_bio(ctx, key_bio, key_path, 0600) < 0 ||
      write_bio(ctx, pub_bio, pub_path, 0644) < 0 ||
      write_bio(ctx, crt_bio, crt_path, 0644) < 0)
    goto out;
  r = 0;
out:
  BIO_free(key_bio);
  BIO_free(pub_bio);
  BIO_free(crt_bio);
  X509_free(cert);
  EVP_PKEY_free(key);
  return r;
}

static int key_type_of(struct vab_ctx *ctx, EVP_PKEY *key, const char *path,
                       enum vab_key_type *out) {
  switch (EVP_PKEY_get_base_id(key)) {
  case EVP_PKEY_ED25519:
    *out = VAB_KEY_ED25519;
    return 0;
  case EVP_PKEY_EC: {
    char group[64] = "";
    size_t len = 0;
    EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                   sizeof group, &len);
    if (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0)
      return vab_error(ctx, VAB_E_UNSUPPORTED,
                       "'%s': EC curve '%s' is not supported (use P-256)", path,
                       group);
    *out = VAB_KEY_ECDSA_P256;
    return 0;
  }
  case EVP_PKEY_RSA:
    if (EVP_PKEY_get_bits(key) < 2048)
      return vab_error(ctx, VAB_E_UNSUPPORTED,
                       "'%s': RSA keys shorter than 2048 bits are refused", path);
    *out = VAB_KEY_RSA_3072;
    return 0;
  default:
    return vab_error(ctx, VAB_E_UNSUPPORTED,
                     "'%s': key type is not ed25519, ecdsa-p256 or RSA", path);
  }
}

static int passphrase_cb(char *buf, int size, int rwflag, void *opaque) {
  (void)rwflag;
  const char *pass = opaque;
  if (pass == NULL)
    return 0;
  size_t len = strlen(pass);
  if (len > (size_t)size)
    return 0;
  memcpy(buf, pass, len);
  return (int)len;
}

static X509 *read_cert(struct vab_ctx *ctx, const char *path) {
  uint8_t *data = NULL;
  size_t len = 0;
  if (vab_read_small_file(ctx, path, KEY_FILE_MAX, &data, &len) < 0)
    return NULL;
  BIO *bio = BIO_new_mem_buf(data, (int)len);
  X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
  BIO_free(bio);
  free(data);
  if (cert == NULL) {
    char reason[256];
    vab_error(ctx, VAB_E_SIGNATURE, "'%s' is not a PEM certificate: %s", path,
              openssl_reason(reason, sizeof reason));
  }
  return cert;
}

int vab_signer_load(struct vab_ctx *ctx, const char *key_path,
                    const char *cert_path, const char *passphrase,
                    struct vab_signer **out) {
  *out = NULL;
  struct stat st;
  if (stat(key_path, &st) < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot open key '%s'",
                           key_path);
  if (st.st_mode & 077)
    return vab_error(ctx, VAB_E_SIGNATURE,
                     "private key '%s' can be read by group or others (mode "
                     "%04o); run 'chmod 600 %s'",
                     key_path, (unsigned)(st.st_mode & 07777), key_path);
  uint8_t *data = NULL;
  size_t len = 0;
  if (vab_read_small_file(ctx, key_path, KEY_FILE_MAX, &data, &len) < 0)
    return -1;
  bool encrypted = strstr((const char *)data, "ENCRYPTED") != NULL;
  BIO *bio = BIO_new_mem_buf(data, (int)len);
  EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, passphrase_cb,
                                                (void *)passphrase)
                      : NULL;
  BIO_free(bio);
  OPENSSL_cleanse(data, len);
  free(data);
  if (key == NULL) {
    char reason[256];
    openssl_reason(reason, sizeof reason);
    if (encrypted && passphrase == NULL)
      return vab_error(ctx, VAB_E_SIGNATURE,
                       "key '%s' is encrypted; give its passphrase with "
                       "--passphrase-env or --passphrase-fd",
                       key_path);
    if (encrypted)
      return vab_error(ctx, VAB_E_SIGNATURE,
                       "cannot decrypt key '%s': wrong passphrase?", key_path);
    return vab_error(ctx, VAB_E_SIGNATURE,
                     "'%s' is not a PEM private key: %s", key_path, reason);
  }
  struct vab_signer *s = calloc(1, sizeof *s);
  if (s == NULL) {
    EVP_PKEY_free(key);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  s->key = key;
  if (key_type_of(ctx, key, key_path, &s->type) < 0) {
    vab_signer_free(s);
    return -1;
  }
  if (cert_path != NULL) {
    s->cert = read_cert(ctx, cert_path);
    if (s->cert == NULL) {
      vab_signer_free(s);
      return -1;
    }
    if (X509_check_private_key(s->cert, key) != 1) {
      ERR_clear_error();
      vab_signer_free(s);
      return vab_error(ctx, VAB_E_SIGNATURE,
                       "certificate '%s' does not match key '%s'", cert_path,
                       key_path);
    }
  }
  *out = s;
  return 0;
}

void vab_signer_free(struct vab_signer *s) {
  if (s == NULL)
    return;
  EVP_PKEY_free(s->key);
  X509_free(s->cert);
  free(s);
}

enum vab_key_type vab_signer_type(const struct vab_signer *s) { return s->type; }

int vab_signer_identity(struct vab_ctx *ctx, const struct vab_signer *s,
                        char out[65]) {
  unsigned char *pub = NULL, *cert = NULL;
  int pub_len = i2d_PUBKEY(s->key, &pub);
  int cert_len = s->cert != NULL ? i2d_X509(s->cert, &cert) : 0;
  int r = 0;
  if (pub_len <= 0 || cert_len < 0)
    r = vab_error(ctx, VAB_E_SIGNATURE, "cannot encode the signing key");
  EVP_MD_CTX *md = r == 0 ? EVP_MD_CTX_new() : NULL;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  if (r == 0 &&
      (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
       EVP_DigestUpdate(md, pub, (size_t)pub_len) != 1 ||
       (cert_len > 0 && EVP_DigestUpdate(md, cert, (size_t)cert_len) != 1) ||
       EVP_DigestFinal_ex(md, digest, &digest_len) != 1 || digest_len != 32))
    r = vab_error(ctx, VAB_E_SIGNATURE, "cannot hash the signing key");
  EVP_MD_CTX_free(md);
  OPENSSL_free(pub);
  OPENSSL_free(cert);
  if (r == 0)
    for (unsigned int i = 0; i < 32; i++)
      snprintf(out + 2 * i, 3, "%02x", digest[i]);
  return r;
}

int vab_sign_buffer(struct vab_ctx *ctx, struct vab_signer *s,
                    const void *data, size_t len, uint8_t **sig,
                    size_t *sig_len) {
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  size_t n = 0;
  uint8_t *out = NULL;
  if (md == NULL ||
      EVP_DigestSignInit(md, NULL, digest_for(s->type), NULL, s->key) != 1 ||
      EVP_DigestSign(md, NULL, &n, data, len) != 1 ||
      (out = malloc(n)) == NULL || EVP_DigestSign(md, out, &n, data, len) != 1) {
    free(out);
    EVP_MD_CTX_free(md);
    return ssl_error(ctx, "signing failed");
  }
  EVP_MD_CTX_free(md);
  *sig = out;
  *sig_len = n;
  return 0;
}

int vab_signer_ova_cert(struct vab_ctx *ctx, struct vab_signer *s,
                        const char *mf_name, const void *mf, size_t len,
                        char **text) {
  *text = NULL;
  if (s->cert == NULL || s->type == VAB_KEY_ED25519) {
    vab_log(ctx, VAB_LOG_WARNING,
            "no .cert in the OVA: %s", s->cert == NULL
                ? "sign: has no cert"
                : "OVA consumers do not verify Ed25519 signatures");
    return 0;
  }
  uint8_t *sig = NULL;
  size_t sig_len = 0;
  if (vab_sign_buffer(ctx, s, mf, len, &sig, &sig_len) < 0)
    return -1;
  BIO *bio = BIO_new(BIO_s_mem());
  int ok = bio != NULL && BIO_printf(bio, "SHA256(%s)= ", mf_name) > 0;
  /* Hex, not base64, as ovftool writes it. */
  for (size_t i = 0; ok && i < sig_len; i++)
    ok = BIO_printf(bio, "%02x", sig[i]) == 2;
  ok = ok && BIO_printf(bio, "\n") == 1 && PEM_write_bio_X509(bio, s->cert);
  free(sig);
  char *data = NULL;
  long n = ok ? BIO_get_mem_data(bio, &data) : 0;
  if (n > 0)
    *text = strndup(data, (size_t)n);
  BIO_free(bio);
  if (*text == NULL)
    return ssl_error(ctx, "cannot write the OVA certificate");
  return 0;
}

int vab_sign_file(struct vab_ctx *ctx, struct vab_signer *s, const char *path,
                  const char *sig_path) {
  uint8_t *data = NULL, *sig = NULL;
  size_t len = 0, sig_len = 0;
  if (vab_read_small_file(ctx, path, 64u * 1024 * 1024, &data, &len) < 0)
    return -1;
  int r = vab_sign_buffer(ctx, s, data, len, &sig, &sig_len);
  if (r == 0)
    r = vab_write_file_atomic(ctx, sig_path, sig, sig_len, 0644);
  free(data);
  free(sig);
  return r;
}

int vab_verifier_load(struct vab_ctx *ctx, const char *pubkey_path,
                      const char *cert_path, struct vab_verifier **out) {
  *out = NULL;
  EVP_PKEY *key = NULL;
  if (cert_path != NULL) {
    X509 *cert = read_cert(ctx, cert_path);
    if (cert == NULL)
      return -1;
    key = X509_get_pubkey(cert);
    X509_free(cert);
  } else {
    uint8_t *data = NULL;
    size_t len = 0;
    if (vab_read_small_file(ctx, pubkey_path, KEY_FILE_MAX, &data, &len) < 0)
      return -1;
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    key = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    free(data);
    if (key == NULL) {
      char reason[256];
      return vab_error(ctx, VAB_E_SIGNATURE, "'%s' is not a PEM public key: %s",
                       pubkey_path, openssl_reason(reason, sizeof reason));
    }
  }
  if (key == NULL)
    return ssl_error(ctx, "cannot read the certificate's public key");
  enum vab_key_type type;
  if (key_type_of(ctx, key, cert_path ? cert_path : pubkey_path, &type) < 0) {
    EVP_PKEY_free(key);
    return -1;
  }
  struct vab_verifier *v = calloc(1, sizeof *v);
  if (v == NULL) {
    EVP_PKEY_free(key);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  v->key = key;
  *out = v;
  return 0;
}

void vab_verifier_free(struct vab_verifier *v) {
  if (v == NULL)
    return;
  EVP_PKEY_free(v->key);
  free(v);
}

int vab_verify_buffer(struct vab_ctx *ctx, struct vab_verifier *v,
                      const char *what, const void *data, size_t len,
                      const uint8_t *sig, size_t sig_len) {
  enum vab_key_type type = VAB_KEY_RSA_3072;
  if (EVP_PKEY_get_base_id(v->key) == EVP_PKEY_ED25519)
    type = VAB_KEY_ED25519;
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  int ok = md != NULL &&
           EVP_DigestVerifyInit(md, NULL, digest_for(type), NULL, v->key) == 1 &&
           EVP_DigestVerify(md, sig, sig_len, data, len) == 1;
  EVP_MD_CTX_free(md);
  ERR_clear_error();
  if (!ok)
    return vab_error(ctx, VAB_E_SIGNATURE,
                     "bad signature on '%s': it or its signature was changed, "
                     "or it was signed with another key",
                     what);
  return 0;
}
