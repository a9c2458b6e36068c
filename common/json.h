/* A small strict JSON (RFC 8259) reader and writer helpers.
 *
 * The reader is for files vab itself wrote and then gets back from
 * elsewhere (build manifests), so it treats its input as hostile: nesting
 * depth and input size are capped, strings may not contain NUL, duplicate
 * object keys are refused, and every error says at which byte it stopped.
 */
#ifndef VAB_COMMON_JSON_H
#define VAB_COMMON_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define JSON_MAX_DEPTH 64

enum json_type {
  JSON_NULL,
  JSON_BOOL,
  JSON_NUMBER,
  JSON_STRING,
  JSON_ARRAY,
  JSON_OBJECT,
};

struct json_value {
  enum json_type type;
  bool boolean;
  bool is_integer;          /* a number without fraction or exponent */
  int64_t integer;          /* valid when is_integer and it fitted */
  double number;
  char *string;             /* JSON_STRING: UTF-8, NUL-terminated */
  size_t n;                 /* items of an array, members of an object */
  struct json_value **items;
  char **keys;              /* object member names */
  size_t alloc;             /* room in items (and keys) */
};

/* Parse len bytes.  On error returns NULL and writes a message such as
 * "expected ',' or '}' at byte 17" to err. */
struct json_value *json_parse(const char *text, size_t len, char *err,
                              size_t err_len);
void json_free(struct json_value *v);

/* Object member lookup; NULL if absent or v is not an object. */
const struct json_value *json_get(const struct json_value *v, const char *key);
/* The string of member key, or NULL if absent or not a string. */
const char *json_get_string(const struct json_value *v, const char *key);

/* Append s as a JSON string literal (quotes and escapes). */
int json_append_string(struct buf *b, const char *s);

#endif
