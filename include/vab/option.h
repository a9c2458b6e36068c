/* vab: typed option vocabularies.
 *
 * A format says which -o options its writer takes as a table of specs
 * (struct vab_format.options); the template schema reads the same table,
 * handed to it through its load options, so that `vab validate` and
 * `vab convert -o` accept exactly the same values.  This header is only
 * vocabulary: it knows no format and no template.
 */
#ifndef VAB_OPTION_H
#define VAB_OPTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vab/error.h"

/* One KEY=VALUE option. */
struct vab_option {
  const char *key;
  const char *value;
};

enum vab_option_kind {
  VAB_OPTION_ENUM,     /* one of values */
  VAB_OPTION_INT,      /* a decimal integer in [min, max] */
  VAB_OPTION_SIZE,     /* a size (common/size.h) in [min, max] */
  VAB_OPTION_BOOL,     /* on/off, true/false, yes/no, 1/0 */
  VAB_OPTION_STRING,   /* any text; the owner's check says more */
};

/* struct vab_option_spec.flags */
enum {
  VAB_OPTION_POWER_OF_TWO = 1u << 0,  /* SIZE: a power of two */
  /* The template's canonical form always shows it, with its default. */
  VAB_OPTION_CANONICAL = 1u << 1,
  /* Not a template output key: it names other files, which a build's
   * outputs never do (backing_file, extent_file) or fixes ids. */
  VAB_OPTION_NOT_IN_TEMPLATES = 1u << 2,
};

struct vab_option_spec {
  const char *key;                 /* NULL ends a table */
  enum vab_option_kind kind;
  const char *const *values;       /* ENUM: NULL-terminated */
  uint64_t min, max;               /* INT, SIZE */
  const char *default_value;       /* what the owner uses when absent */
  unsigned flags;
  const char *help;                /* one line, for docs and errors */
};

/* A value that passed its spec, in the spec's kind: what a format's
 * set_option() stores, with nothing left to check. */
struct vab_option_value {
  const struct vab_option_spec *spec;
  const char *text;                /* as given */
  size_t choice;                   /* ENUM: index into spec->values */
  uint64_t number;                 /* INT, SIZE */
  bool on;                         /* BOOL */
};

/* Why a set of options was refused: the option at fault and the message,
 * for the caller to record where it knows the option came from. */
struct vab_option_problem {
  size_t index;                    /* into the options checked */
  enum vab_code code;              /* VAB_E_USAGE or VAB_E_UNSUPPORTED */
  char message[256];
};

#endif
