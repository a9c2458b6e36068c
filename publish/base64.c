/* Base64, written out because publish/ must not use OpenSSL for it. */
#include <stdlib.h>
#include <string.h>

#include "publish/base64.h"

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const void *data, size_t len) {
  const uint8_t *in = data;
  char *out = malloc((len + 2) / 3 * 4 + 1);
  if (out == NULL)
    return NULL;
  size_t o = 0;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < len)
      v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < len)
      v |= in[i + 2];
    out[o++] = alphabet[(v >> 18) & 63];
    out[o++] = alphabet[(v >> 12) & 63];
    out[o++] = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < len ? alphabet[v & 63] : '=';
  }
  out[o] = '\0';
  return out;
}

static int value_of(char c) {
  const char *p = c ? strchr(alphabet, c) : NULL;
  return p ? (int)(p - alphabet) : -1;
}

int base64_decode(const char *text, uint8_t **out, size_t *out_len) {
  size_t len = strlen(text);
  if (len % 4 != 0)
    return -1;
  uint8_t *buf = malloc(len / 4 * 3 + 1);
  if (buf == NULL)
    return -1;
  size_t o = 0;
  for (size_t i = 0; i < len; i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; k++) {
      char c = text[i + k];
      /* '=' only at the very end: "xx==" or "xxx=". */
      if (c == '=' && i + 4 == len && k >= 2 &&
          (k == 3 || text[i + 3] == '=')) {
        v[k] = 0;
        pad++;
      } else if ((v[k] = value_of(c)) < 0) {
        free(buf);
        return -1;
      }
    }
    uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
                 (uint32_t)v[2] << 6 | (uint32_t)v[3];
    /* Bits the padding leaves over must be zero: one text, one encoding. */
    if ((pad == 1 && (w & 0xff) != 0) || (pad == 2 && (w & 0xffff) != 0)) {
      free(buf);
      return -1;
    }
    buf[o++] = (uint8_t)(w >> 16);
    if (pad < 2)
      buf[o++] = (uint8_t)(w >> 8);
    if (pad < 1)
      buf[o++] = (uint8_t)w;
  }
  buf[o] = 0;
  *out = buf;
  *out_len = o;
  return 0;
}
