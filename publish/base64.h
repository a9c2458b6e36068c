/* Base64 (RFC 4648, standard alphabet with padding): Basic auth, auth.json
 * "auth" fields and cosign signature annotations. */
#ifndef VAB_PUBLISH_BASE64_H
#define VAB_PUBLISH_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* A malloc'd NUL-terminated encoding, or NULL when out of memory. */
char *base64_encode(const void *data, size_t len);
/* Decode text (whitespace not allowed); *out is malloc'd and
 * NUL-terminated.  -1 on bad input or no memory. */
int base64_decode(const char *text, uint8_t **out, size_t *out_len);

#endif
