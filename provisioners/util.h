/* Helpers the provisioners share for reading and checking their keys. */
#ifndef VAB_PROVISIONERS_UTIL_H
#define VAB_PROVISIONERS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include "vab/provisioner.h"

/* A list of strings read from a step, with the node each came from. */
struct prov_list {
  const char **items;             /* NULL-terminated; strings in the tree */
  size_t n;
  const struct vab_node *node;    /* NULL when the key is absent */
};

/* Most items in one list: the duplicate checks compare every pair. */
#define PROV_LIST_MAX 4096

/* Reads key as a list of strings (one string counts as a list of one). */
int prov_list_read(struct vab_ctx *ctx, const struct vab_node *spec,
                   const char *key, const char *what, struct prov_list *out);
/* Where item i was written. */
const struct vab_mark *prov_list_mark(const struct prov_list *list, size_t i);
void prov_list_free(struct prov_list *list);

/* Reads key as a string; *mark gets where (or the step's mark). */
int prov_string(struct vab_ctx *ctx, const struct vab_node *spec,
                const char *key, const char *what, const char **out,
                struct vab_mark *mark);

/* Reads key as a host path resolved against dir (malloc'd into *out). */
int prov_host_path(struct vab_ctx *ctx, const struct vab_node *spec,
                   const char *key, const char *what, const char *dir,
                   char **out, const char **written, struct vab_mark *mark);

/* Checks a host file that a step reads: exists and is a regular file. */
int prov_check_host_file(struct vab_ctx *ctx, const char *path,
                         const char *written, const struct vab_mark *mark,
                         const char *what);

/* Checks a path inside the guest: absolute, no "..", not "/". */
int prov_check_guest_path(struct vab_ctx *ctx, const char *path,
                          const struct vab_mark *mark, const char *what);

/* "0644" -> 0644: three or four octal digits. */
bool prov_parse_mode(const char *text, unsigned *mode);
/* A user or group name as useradd accepts it: [a-z_][a-z0-9_-]*[$]?, 32 max. */
bool prov_valid_unix_name(const char *name);
/* A shell environment variable name. */
bool prov_valid_env_name(const char *name);

/* Rejects a step that has both or neither of keys a and b. */
int prov_exactly_one(struct vab_ctx *ctx, const struct vab_node *spec,
                     const char *type, const char *a, const char *b);

#endif
