#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"

struct json_parser {
  const char *text;
  size_t len;
  size_t pos;
  char *err;
  size_t err_len;
  bool failed;
};

static void parse_fail(struct json_parser *p, const char *what) {
  if (!p->failed)
    snprintf(p->err, p->err_len, "%s at byte %zu", what, p->pos);
  p->failed = true;
}

static void skip_space(struct json_parser *p) {
  while (p->pos < p->len) {
    char c = p->text[p->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
      break;
    p->pos++;
  }
}

static bool consume(struct json_parser *p, const char *word) {
  size_t n = strlen(word);
  if (p->len - p->pos >= n && memcmp(p->text + p->pos, word, n) == 0) {
    p->pos += n;
    return true;
  }
  return false;
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static bool read_hex4(struct json_parser *p, unsigned *out) {
  if (p->len - p->pos < 4)
    return false;
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    int d = hex_digit(p->text[p->pos + i]);
    if (d < 0)
      return false;
    v = v * 16 + (unsigned)d;
  }
  p->pos += 4;
  *out = v;
  return true;
}

static int put_utf8(struct buf *b, unsigned cp) {
  char tmp[4];
  size_t n;
  if (cp < 0x80) {
    tmp[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    tmp[0] = (char)(0xc0 | (cp >> 6));
    tmp[1] = (char)(0x80 | (cp & 0x3f));
    n = 2;
  } else if (cp < 0x10000) {
    tmp[0] = (char)(0xe0 | (cp >> 12));
    tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    tmp[2] = (char)(0x80 | (cp & 0x3f));
    n = 3;
  } else {
    tmp[0] = (char)(0xf0 | (cp >> 18));
    tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    tmp[3] = (char)(0x80 | (cp & 0x3f));
    n = 4;
  }
  return buf_append(b, tmp, n);
}

/* Length of a valid UTF-8 sequence starting at s (n bytes left), or 0. */
static size_t utf8_sequence(const unsigned char *s, size_t n) {
  if (s[0] < 0x80)
    return 1;
  size_t len;
  unsigned min;
  unsigned cp;
  if ((s[0] & 0xe0) == 0xc0) { len = 2; min = 0x80; cp = s[0] & 0x1f; }
  else if ((s[0] & 0xf0) == 0xe0) { len = 3; min = 0x800; cp = s[0] & 0x0f; }
  else if ((s[0] & 0xf8) == 0xf0) { len = 4; min = 0x10000; cp = s[0] & 0x07; }
  else return 0;
  if (n < len)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

static char *parse_string_raw(struct json_parser *p) {
  if (p->pos >= p->len || p->text[p->pos] != '"') {
    parse_fail(p, "expected a string");
    return NULL;
  }
  p->pos++;
  struct buf b = BUF_INIT;
  while (!p->failed) {
    if (p->pos >= p->len) {
      parse_fail(p, "unterminated string");
      break;
    }
    unsigned char c = (unsigned char)p->text[p->pos];
    if (c == '"') {
      p->pos++;
      if (buf_reserve(&b, 0) < 0) {
        parse_fail(p, "out of memory");
        break;
      }
      return buf_detach(&b);
    }
    if (c < 0x20) {
      parse_fail(p, "control character in string");
      break;
    }
    if (c == '\\') {
      p->pos++;
      if (p->pos >= p->len) {
        parse_fail(p, "unterminated escape");
        break;
      }
      char e = p->text[p->pos++];
      unsigned cp = 0;
      switch (e) {
      case '"': cp = '"'; break;
      case '\\': cp = '\\'; break;
      case '/': cp = '/'; break;
      case 'b': cp = '\b'; break;
      case 'f': cp = '\f'; break;
      case 'n': cp = '\n'; break;
      case 'r': cp = '\r'; break;
      case 't': cp = '\t'; break;
      case 'u':
        if (!read_hex4(p, &cp)) {
          parse_fail(p, "bad \\u escape");
          break;
        }
        if (cp >= 0xd800 && cp <= 0xdbff) {
          unsigned lo;
          if (!consume(p, "\\u") || !read_hex4(p, &lo) || lo < 0xdc00 ||
              lo > 0xdfff) {
            parse_fail(p, "unpaired surrogate in \\u escape");
            break;
          }
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
          parse_fail(p, "unpaired surrogate in \\u escape");
          break;
        }
        if (cp == 0) {
          parse_fail(p, "NUL character in string");
          break;
        }
        break;
      default:
        parse_fail(p, "unknown escape");
        break;
      }
      if (p->failed)
        break;
      if (put_utf8(&b, cp) < 0)
        parse_fail(p, "out of memory");
      continue;
    }
    size_t n = utf8_sequence((const unsigned char *)p->text + p->pos,
                             p->len - p->pos);
    if (n == 0) {
      parse_fail(p, "invalid UTF-8 in string");
      break;
    }
    if (buf_append(&b, p->text + p->pos, n) < 0)
      parse_fail(p, "out of memory");
    p->pos += n;
  }
  buf_release(&b);
  return NULL;
}

static struct json_value *new_value(struct json_parser *p, enum json_type t) {
  struct json_value *v = calloc(1, sizeof *v);
  if (v == NULL)
    parse_fail(p, "out of memory");
  else
    v->type = t;
  return v;
}

static bool parse_number(struct json_parser *p, struct json_value *v) {
  size_t start = p->pos;
  bool integer = true;
  if (p->pos < p->len && p->text[p->pos] == '-')
    p->pos++;
  if (p->pos >= p->len) {
    parse_fail(p, "bad number");
    return false;
  }
  if (p->text[p->pos] == '0') {
    p->pos++;
  } else if (p->text[p->pos] >= '1' && p->text[p->pos] <= '9') {
    while (p->pos < p->len && p->text[p->pos] >= '0' && p->text[p->pos] <= '9')
      p->pos++;
  } else {
    parse_fail(p, "bad number");
    return false;
  }
  if (p->pos < p->len && p->text[p->pos] == '.') {
    integer = false;
    p->pos++;
    size_t digits = p->pos;
    while (p->pos < p->len && p->text[p->pos] >= '0' && p->text[p->pos] <= '9')
      p->pos++;
    if (p->pos == digits) {
      parse_fail(p, "bad number");
      return false;
    }
  }
  if (p->pos < p->len && (p->text[p->pos] == 'e' || p->text[p->pos] == 'E')) {
    integer = false;
    p->pos++;
    if (p->pos < p->len && (p->text[p->pos] == '+' || p->text[p->pos] == '-'))
      p->pos++;
    size_t digits = p->pos;
    while (p->pos < p->len && p->text[p->pos] >= '0' && p->text[p->pos] <= '9')
      p->pos++;
    if (p->pos == digits) {
      parse_fail(p, "bad number");
      return false;
    }
  }
  char tmp[64];
  size_t n = p->pos - start;
  if (n >= sizeof tmp) {
    parse_fail(p, "number too long");
    return false;
  }
  memcpy(tmp, p->text + start, n);
  tmp[n] = '\0';
  v->number = strtod(tmp, NULL);
  if (integer) {
    errno = 0;
    long long ll = strtoll(tmp, NULL, 10);
    if (errno == 0) {
      v->is_integer = true;
      v->integer = ll;
    }
  }
  return true;
}

static struct json_value *parse_value(struct json_parser *p, int depth);

static bool grow(struct json_parser *p, struct json_value *v, bool with_keys) {
  if (v->n < v->alloc)
    return true;
  size_t new_alloc = v->alloc ? v->alloc * 2 : 4;
  struct json_value **items = realloc(v->items, new_alloc * sizeof *items);
  if (items == NULL) {
    parse_fail(p, "out of memory");
    return false;
  }
  v->items = items;
  if (with_keys) {
    char **keys = realloc(v->keys, new_alloc * sizeof *keys);
    if (keys == NULL) {
      parse_fail(p, "out of memory");
      return false;
    }
    v->keys = keys;
  }
  v->alloc = new_alloc;
  return true;
}

static struct json_value *parse_array(struct json_parser *p, int depth) {
  struct json_value *v = new_value(p, JSON_ARRAY);
  if (v == NULL)
    return NULL;
  p->pos++;  /* '[' */
  skip_space(p);
  if (p->pos < p->len && p->text[p->pos] == ']') {
    p->pos++;
    return v;
  }
  while (!p->failed) {
    if (!grow(p, v, false))
      break;
    struct json_value *item = parse_value(p, depth + 1);
    if (item == NULL)
      break;
    v->items[v->n++] = item;
    skip_space(p);
    if (p->pos < p->len && p->text[p->pos] == ',') {
      p->pos++;
      continue;
    }
    if (p->pos < p->len && p->text[p->pos] == ']') {
      p->pos++;
      return v;
    }
    parse_fail(p, p->pos >= p->len ? "unexpected end of input"
                                   : "expected ',' or ']'");
  }
  json_free(v);
  return NULL;
}

static struct json_value *parse_object(struct json_parser *p, int depth) {
  struct json_value *v = new_value(p, JSON_OBJECT);
  if (v == NULL)
    return NULL;
  p->pos++;  /* '{' */
  skip_space(p);
  if (p->pos < p->len && p->text[p->pos] == '}') {
    p->pos++;
    return v;
  }
  while (!p->failed) {
    skip_space(p);
    size_t key_pos = p->pos;
    char *key = parse_string_raw(p);
    if (key == NULL)
      break;
    if (json_get(v, key) != NULL) {
      p->pos = key_pos;
      parse_fail(p, "duplicate object key");
      free(key);
      break;
    }
    skip_space(p);
    if (p->pos >= p->len || p->text[p->pos] != ':') {
      parse_fail(p, "expected ':'");
      free(key);
      break;
    }
    p->pos++;
    struct json_value *item = parse_value(p, depth + 1);
    if (item == NULL || !grow(p, v, true)) {
      free(key);
      json_free(item);
      break;
    }
    v->keys[v->n] = key;
    v->items[v->n++] = item;
    skip_space(p);
    if (p->pos < p->len && p->text[p->pos] == ',') {
      p->pos++;
      continue;
    }
    if (p->pos < p->len && p->text[p->pos] == '}') {
      p->pos++;
      return v;
    }
    parse_fail(p, p->pos >= p->len ? "unexpected end of input"
                                   : "expected ',' or '}'");
  }
  json_free(v);
  return NULL;
}

static struct json_value *parse_value(struct json_parser *p, int depth) {
  if (depth > JSON_MAX_DEPTH) {
    parse_fail(p, "nesting too deep");
    return NULL;
  }
  skip_space(p);
  if (p->pos >= p->len) {
    parse_fail(p, "unexpected end of input");
    return NULL;
  }
  char c = p->text[p->pos];
  struct json_value *v;
  switch (c) {
  case '{': return parse_object(p, depth);
  case '[': return parse_array(p, depth);
  case '"':
    v = new_value(p, JSON_STRING);
    if (v != NULL && (v->string = parse_string_raw(p)) == NULL) {
      free(v);
      v = NULL;
    }
    return v;
  case 't':
  case 'f':
    if (consume(p, "true") || consume(p, "false")) {
      v = new_value(p, JSON_BOOL);
      if (v != NULL)
        v->boolean = c == 't';
      return v;
    }
    break;
  case 'n':
    if (consume(p, "null"))
      return new_value(p, JSON_NULL);
    break;
  default:
    if (c == '-' || (c >= '0' && c <= '9')) {
      v = new_value(p, JSON_NUMBER);
      if (v != NULL && !parse_number(p, v)) {
        free(v);
        v = NULL;
      }
      return v;
    }
    break;
  }
  parse_fail(p, "unexpected character");
  return NULL;
}

struct json_value *json_parse(const char *text, size_t len, char *err,
                              size_t err_len) {
  struct json_parser p = {text, len, 0, err, err_len, false};
  if (err_len)
    err[0] = '\0';
  struct json_value *v = parse_value(&p, 0);
  if (v != NULL) {
    skip_space(&p);
    if (p.pos != p.len) {
      parse_fail(&p, "trailing data after the JSON value");
      json_free(v);
      v = NULL;
    }
  }
  return v;
}

void json_free(struct json_value *v) {
  if (v == NULL)
    return;
  for (size_t i = 0; i < v->n; i++) {
    json_free(v->items[i]);
    if (v->keys)
      free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
  free(v->string);
  free(v);
}

const struct json_value *json_get(const struct json_value *v, const char *key) {
  if (v == NULL || v->type != JSON_OBJECT)
    return NULL;
  for (size_t i = 0; i < v->n; i++)
    if (strcmp(v->keys[i], key) == 0)
      return v->items[i];
  return NULL;
}

const char *json_get_string(const struct json_value *v, const char *key) {
  const struct json_value *m = json_get(v, key);
  return m != NULL && m->type == JSON_STRING ? m->string : NULL;
}

int json_append_string(struct buf *b, const char *s) {
  if (buf_putc(b, '"') < 0)
    return -1;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    int r;
    switch (*p) {
    case '"': r = buf_puts(b, "\\\""); break;
    case '\\': r = buf_puts(b, "\\\\"); break;
    case '\n': r = buf_puts(b, "\\n"); break;
    case '\r': r = buf_puts(b, "\\r"); break;
    case '\t': r = buf_puts(b, "\\t"); break;
    default:
      if (*p < 0x20)
        r = buf_printf(b, "\\u%04x", *p);
      else
        r = buf_putc(b, (char)*p);
    }
    if (r < 0)
      return -1;
  }
  return buf_putc(b, '"');
}
