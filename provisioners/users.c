/* users: create users (groups, ssh keys, password or password hash, sudo)
 * and decide root's fate: locked unless the template says otherwise. */
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "provisioners/util.h"
#include "provisioners/users.h"
#include "vab/guest.h"
#include "vab/progress.h"
#include "common/buf.h"
#include "common/shell-quote.h"

struct user_spec {
  struct vab_mark mark;              /* the user's mapping */
  const char *name;
  struct vab_mark name_mark;
  bool has_uid;
  uint32_t uid;
  struct prov_list groups;
  const char *shell;                 /* default /bin/bash */
  struct vab_mark shell_mark;
  bool sudo;                         /* passwordless sudo; default false */
  /* Plain text: hashed before it touches the image, never logged or
   * echoed in a message. */
  const char *password;
  struct vab_mark password_mark;
  const char *password_hash;         /* crypt(3) format, "$6$..." */
  struct vab_mark password_hash_mark;
  struct prov_list ssh_keys;         /* authorized_keys lines */
};

struct users_config {
  struct vab_mark mark;              /* the step */
  struct user_spec *users;
  size_t n_users;
  bool lock_root;                    /* default true */
  struct vab_mark lock_root_mark;
};

static const char *const users_keys[] = {"users", "lock_root", NULL};
static const char *const user_keys[] = {
  "name", "uid", "groups", "shell", "sudo", "password", "password_hash",
  "ssh_authorized_keys", NULL,
};

static void users_free(void *opaque) {
  struct users_config *c = opaque;
  if (c == NULL)
    return;
  for (size_t i = 0; i < c->n_users; i++) {
    prov_list_free(&c->users[i].groups);
    prov_list_free(&c->users[i].ssh_keys);
  }
  free(c->users);
  free(c);
}

static int read_user(struct vab_ctx *ctx, const struct vab_node *map,
                     struct user_spec *u) {
  u->mark = map->mark;
  u->shell = "/bin/bash";
  int r = vab_node_check_keys(ctx, map, "a user", user_keys);
  if (prov_string(ctx, map, "name", "name", &u->name, &u->name_mark) < 0)
    r = -1;
  const struct vab_node *uid = vab_node_get(map, "uid");
  uint64_t v = 0;
  if (uid != NULL && uid->kind != VAB_NODE_NULL) {
    if (vab_node_uint(ctx, uid, "uid", 65533, &v) < 0)
      r = -1;
    u->has_uid = true;
    u->uid = (uint32_t)v;
  }
  if (prov_list_read(ctx, map, "groups", "groups", &u->groups) < 0)
    r = -1;
  if (prov_string(ctx, map, "shell", "shell", &u->shell, &u->shell_mark) < 0)
    r = -1;
  if (vab_node_bool(ctx, vab_node_get(map, "sudo"), "sudo", &u->sudo) < 0)
    r = -1;
  if (prov_string(ctx, map, "password", "password", &u->password,
                  &u->password_mark) < 0)
    r = -1;
  if (prov_string(ctx, map, "password_hash", "password_hash",
                  &u->password_hash, &u->password_hash_mark) < 0)
    r = -1;
  if (prov_list_read(ctx, map, "ssh_authorized_keys", "ssh_authorized_keys",
                     &u->ssh_keys) < 0)
    r = -1;
  return r;
}

static int users_config(struct vab_ctx *ctx, const struct vab_node *spec,
                        const char *template_dir, void **out) {
  struct users_config *c = calloc(1, sizeof *c);
  if (c == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  c->mark = spec->mark;
  c->lock_root = true;
  int r = 0;
  const struct vab_node *lock = vab_node_get(spec, "lock_root");
  c->lock_root_mark = lock != NULL ? lock->mark : spec->mark;
  if (vab_node_bool(ctx, lock, "lock_root", &c->lock_root) < 0)
    r = -1;
  const struct vab_node *list = vab_node_get(spec, "users");
  if (list != NULL && list->kind == VAB_NODE_SEQ && list->n > PROV_LIST_MAX) {
    r = vab_error_at(ctx, VAB_E_SCHEMA, &list->mark,
                     "users has %zu items, at most %d", list->n,
                     PROV_LIST_MAX);
  } else if (list != NULL && list->kind == VAB_NODE_SEQ && list->n > 0) {
    c->users = calloc(list->n, sizeof *c->users);
    if (c->users == NULL) {
      users_free(c);
      return vab_error(ctx, VAB_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < list->n; i++) {
      const struct vab_node *item = list->items[i];
      if (item->kind != VAB_NODE_MAP) {
        r = vab_error_at(ctx, VAB_E_SCHEMA, &item->mark,
                         "each user must be a mapping with at least 'name'");
        continue;
      }
      if (read_user(ctx, item, &c->users[c->n_users++]) < 0)
        r = -1;
    }
  } else if (list != NULL && list->kind != VAB_NODE_NULL &&
             list->kind != VAB_NODE_SEQ) {
    r = vab_error_at(ctx, VAB_E_SCHEMA, &list->mark,
                     "users must be a list of users");
  }
  if (r < 0) {
    users_free(c);
    return -1;
  }
  *out = c;
  return 0;
}

/* crypt(3) output "$id$[params$]salt$hash" with a known id, or a locked
 * marker ("!" or "*", optionally followed by a hash). */
static bool valid_password_hash(const char *hash) {
  static const char *const ids[] = {"$1$", "$5$", "$6$", "$y$", "$gy$",
                                    "$2b$", "$2y$", "$7$", NULL};
  if (strcmp(hash, "!") == 0 || strcmp(hash, "*") == 0)
    return true;
  if (hash[0] == '!')
    hash++;
  bool known = false;
  for (size_t i = 0; ids[i] != NULL && !known; i++)
    known = strncmp(hash, ids[i], strlen(ids[i])) == 0;
  if (!known)
    return false;
  size_t dollars = 0;
  for (const char *p = hash; *p; p++) {
    if (*p == '$')
      dollars++;
    else if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
               (*p >= '0' && *p <= '9') || strchr("./=,-", *p) != NULL))
      return false;
  }
  return dollars >= 3 && hash[strlen(hash) - 1] != '$';
}

/* "TYPE BASE64 [comment]" with a key type OpenSSH knows. */
static bool valid_ssh_key(const char *line) {
  static const char *const types[] = {
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com", NULL,
  };
  if (strchr(line, '\n') != NULL)
    return false;
  size_t type_len = strcspn(line, " ");
  bool known = false;
  for (size_t i = 0; types[i] != NULL && !known; i++)
    known = strlen(types[i]) == type_len &&
            strncmp(line, types[i], type_len) == 0;
  if (!known || line[type_len] != ' ')
    return false;
  const char *key = line + type_len + 1;
  size_t key_len = strcspn(key, " ");
  if (key_len < 16)
    return false;
  for (size_t i = 0; i < key_len; i++) {
    char ch = key[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '+' || ch == '/' || ch == '='))
      return false;
  }
  return true;
}

static int check_user(struct vab_ctx *ctx, const struct users_config *c,
                      const struct user_spec *u) {
  int r = 0;
  if (u->name == NULL)
    return vab_error_at(ctx, VAB_E_SCHEMA, &u->mark, "a user needs 'name'");
  if (!prov_valid_unix_name(u->name)) {
    r = vab_error_at(ctx, VAB_E_SCHEMA, &u->name_mark,
                     "'%.200s' is not a valid user name", u->name);
    vab_diag_hint(ctx, "use up to 32 of a-z, 0-9, '_' and '-', starting with "
                       "a letter or '_'");
  }
  bool root = strcmp(u->name, "root") == 0;
  if (u->has_uid && u->uid == 0 && !root)
    r = vab_error_at(ctx, VAB_E_SCHEMA, &u->name_mark,
                     "uid 0 belongs to root; '%.200s' needs another uid", u->name);
  for (size_t i = 0; i < u->groups.n; i++)
    if (!prov_valid_unix_name(u->groups.items[i]))
      r = vab_error_at(ctx, VAB_E_SCHEMA, prov_list_mark(&u->groups, i),
                       "'%.200s' is not a valid group name", u->groups.items[i]);
  if (u->shell != NULL && u->shell[0] != '/')
    r = vab_error_at(ctx, VAB_E_SCHEMA, &u->shell_mark,
                     "shell must be an absolute path such as /bin/bash, not "
                     "'%.200s'",
                     u->shell);
  if (u->password != NULL && u->password_hash != NULL)
    r = vab_error_at(ctx, VAB_E_SCHEMA, &u->password_hash_mark,
                     "user '%.200s' has both 'password' and 'password_hash'; "
                     "give one",
                     u->name);
  /* The message never quotes the password itself. */
  if (u->password != NULL && u->password[0] == '\0')
    r = vab_error_at(ctx, VAB_E_SCHEMA, &u->password_mark,
                     "user '%.200s' has an empty password", u->name);
  if (u->password_hash != NULL && !valid_password_hash(u->password_hash)) {
    r = vab_error_at(ctx, VAB_E_SCHEMA, &u->password_hash_mark,
                     "the password_hash of '%.200s' is not in crypt(3) format",
                     u->name);
    vab_diag_hint(ctx, "make one with: mkpasswd -m sha-512, or use "
                       "'password' and let vab hash it");
  }
  for (size_t i = 0; i < u->ssh_keys.n; i++)
    if (!valid_ssh_key(u->ssh_keys.items[i])) {
      r = vab_error_at(ctx, VAB_E_SCHEMA, prov_list_mark(&u->ssh_keys, i),
                       "not an SSH public key line: expected 'TYPE BASE64 "
                       "[comment]' as in ~/.ssh/id_ed25519.pub");
    }
  if (root && c->lock_root &&
      (u->password != NULL ||
       (u->password_hash != NULL && u->password_hash[0] != '!' &&
        u->password_hash[0] != '*'))) {
    r = vab_error_at(ctx, VAB_E_SCHEMA, &u->mark,
                     "root gets a password, but root is locked");
    vab_diag_hint(ctx, "add 'lock_root: false' to this step to unlock it");
  }
  return r;
}

static int users_check(struct vab_ctx *ctx, const void *opaque) {
  const struct users_config *c = opaque;
  int r = 0;
  if (c->n_users == 0)
    return vab_error_at(ctx, VAB_E_SCHEMA, &c->mark,
                        "a users step needs 'users', a list of users");
  for (size_t i = 0; i < c->n_users; i++) {
    if (check_user(ctx, c, &c->users[i]) < 0)
      r = -1;
    for (size_t j = 0; j < i; j++)
      if (c->users[i].name != NULL && c->users[j].name != NULL &&
          strcmp(c->users[i].name, c->users[j].name) == 0) {
        r = vab_error_at(ctx, VAB_E_SCHEMA, &c->users[i].name_mark,
                         "user '%.200s' is listed twice", c->users[i].name);
        vab_note_at(ctx, &c->users[j].name_mark, "'%.200s' is first listed here",
                    c->users[j].name);
      }
  }
  return r;
}

/* A SHA-512 crypt(3) hash of a plain password, with a fresh 16-character
 * salt.  The plain text goes no further than this function. */
static int hash_password(struct vab_ctx *ctx, const char *password,
                         char **out) {
  static const char alphabet[] =
      "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  unsigned char random[16];
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot open /dev/urandom");
  ssize_t n = read(fd, random, sizeof random);
  close(fd);
  if (n != (ssize_t)sizeof random)
    return vab_error(ctx, VAB_E_IO, "cannot read /dev/urandom");
  char setting[3 + sizeof random + 1] = "$6$";
  for (size_t i = 0; i < sizeof random; i++)
    setting[3 + i] = alphabet[random[i] % 64];
  setting[3 + sizeof random] = '\0';
  struct crypt_data *data = calloc(1, sizeof *data);
  if (data == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  const char *hash = crypt_r(password, setting, data);
  int r = 0;
  if (hash == NULL || hash[0] != '$')
    r = vab_error(ctx, VAB_E_INTERNAL, "crypt(3) cannot make a SHA-512 hash");
  else if ((*out = strdup(hash)) == NULL)
    r = vab_error(ctx, VAB_E_NOMEM, "out of memory");
  explicit_bzero(data, sizeof *data);
  free(data);
  return r;
}

/* The entry for name in a passwd or group file: its third field (uid or
 * gid) in *id.  false when there is none. */
static bool db_lookup(const char *text, const char *name, unsigned long *id) {
  size_t len = strlen(name);
  for (const char *line = text; line != NULL && *line != '\0';) {
    const char *end = strchr(line, '\n');
    size_t line_len = end != NULL ? (size_t)(end - line) : strlen(line);
    if (line_len > len && strncmp(line, name, len) == 0 && line[len] == ':') {
      const char *field = memchr(line + len + 1, ':', line_len - len - 1);
      *id = field != NULL ? strtoul(field + 1, NULL, 10) : ULONG_MAX;
      return true;
    }
    line = end != NULL ? end + 1 : NULL;
  }
  return false;
}

/* The name of the user with this uid, other than skip, into out. */
static bool db_uid_owner(const char *passwd, unsigned long uid,
                         const char *skip, char *out, size_t out_len) {
  for (const char *line = passwd; line != NULL && *line != '\0';) {
    const char *end = strchr(line, '\n');
    size_t line_len = end != NULL ? (size_t)(end - line) : strlen(line);
    const char *colon = memchr(line, ':', line_len);
    size_t rest = colon != NULL ? line_len - (size_t)(colon + 1 - line) : 0;
    const char *field = colon != NULL ? memchr(colon + 1, ':', rest) : NULL;
    if (field != NULL) {
      char *after = NULL;
      unsigned long v = strtoul(field + 1, &after, 10);
      size_t name_len = (size_t)(colon - line);
      if (after != field + 1 && *after == ':' && v == uid &&
          !(strlen(skip) == name_len && strncmp(line, skip, name_len) == 0)) {
        snprintf(out, out_len, "%.*s", (int)name_len, line);
        return true;
      }
    }
    line = end != NULL ? end + 1 : NULL;
  }
  return false;
}

int users_plan_for(const char *name, bool has_uid, uint32_t uid,
                   const char *passwd, const char *group,
                   struct users_plan *plan, char *why, size_t why_len) {
  unsigned long existing = 0, gid = 0;
  if (strcmp(name, "root") == 0) {
    plan->action = USERS_ROOT;
    return 0;
  }
  if (db_lookup(passwd, name, &existing)) {
    if (existing < USERS_FIRST_REGULAR_UID || existing == 65534) {
      snprintf(why, why_len,
               "'%s' is a system account of the guest (uid %lu); a users "
               "step does not take it over",
               name, existing);
      return -1;
    }
    if (has_uid && existing != uid) {
      snprintf(why, why_len,
               "user '%s' exists in the guest with uid %lu, not %" PRIu32,
               name, existing, uid);
      return -1;
    }
    plan->action = USERS_UPDATE;
    return 0;
  }
  char owner[64];
  if (has_uid && db_uid_owner(passwd, uid, name, owner, sizeof owner)) {
    snprintf(why, why_len,
             "uid %" PRIu32 " of '%s' already belongs to '%s' in the guest",
             uid, name, owner);
    return -1;
  }
  if (!db_lookup(group, name, &gid)) {
    plan->action = USERS_CREATE;
    return 0;
  }
  if (!db_lookup(group, "users", &gid)) {
    snprintf(why, why_len,
             "the guest has a group '%s' but no group 'users' to put user "
             "'%s' in instead",
             name, name);
    return -1;
  }
  plan->action = USERS_CREATE_IN_USERS;
  return 0;
}

int users_account_command(struct buf *b, const struct users_plan *plan,
                          bool has_uid, uint32_t uid) {
  /* "--": no name or shell can be read as an option. */
  switch (plan->action) {
  case USERS_ROOT:
    return 0;
  case USERS_UPDATE:
    return buf_puts(b, "usermod -s \"$user_shell\" -- \"$name\"\n");
  case USERS_CREATE:
  case USERS_CREATE_IN_USERS:
    /* -U or -N -g users: never -g NAME, see users.h. */
    if (buf_puts(b, plan->action == USERS_CREATE
                        ? "useradd -m -U"
                        : "useradd -m -N -g users") < 0 ||
        (has_uid && buf_printf(b, " -u %" PRIu32, uid) < 0) ||
        buf_puts(b, " -s \"$user_shell\" -- \"$name\"\n") < 0)
      return -1;
    return 0;
  }
  return -1;
}

/* The script for one user.  It is never logged (only its output is), and
 * the hash reaches chpasswd on stdin, never on a command line. */
static int user_script(struct buf *b, const struct user_spec *u,
                       const struct users_plan *plan, const char *hash) {
  if (buf_puts(b, "set -e\nname=") < 0 || shell_quote(b, u->name) < 0 ||
      buf_puts(b, "\nuser_shell=") < 0 ||
      shell_quote(b, u->shell != NULL ? u->shell : "/bin/bash") < 0 ||
      buf_putc(b, '\n') < 0 ||
      users_account_command(b, plan, u->has_uid, u->uid) < 0)
    return -1;
  if (u->groups.n > 0) {
    if (buf_puts(b, "usermod -a -G ") < 0)
      return -1;
    struct buf list = BUF_INIT;
    int r = 0;
    for (size_t i = 0; i < u->groups.n && r == 0; i++)
      r = buf_printf(&list, "%s%s", i > 0 ? "," : "", u->groups.items[i]);
    if (r == 0)
      r = shell_quote(b, list.data);
    buf_release(&list);
    if (r < 0 || buf_puts(b, " -- \"$name\"\n") < 0)
      return -1;
  }
  if (hash != NULL &&
      buf_printf(b, "chpasswd -e <<'VAB_END'\n%s:%s\nVAB_END\n", u->name,
                 hash) < 0)
    return -1;
  if (u->sudo &&
      buf_puts(b, "mkdir -p /etc/sudoers.d\n"
                  "printf '%s ALL=(ALL) NOPASSWD:ALL\\n' \"$name\" > "
                  "\"/etc/sudoers.d/vab-$name\"\n"
                  "chmod 0440 \"/etc/sudoers.d/vab-$name\"\n") < 0)
    return -1;
  if (u->ssh_keys.n > 0) {
    if (buf_puts(b, "home=$(getent passwd \"$name\" | cut -d: -f6)\n"
                    "mkdir -p \"$home/.ssh\"\n"
                    "cat >> \"$home/.ssh/authorized_keys\" <<'VAB_END'\n") < 0)
      return -1;
    for (size_t i = 0; i < u->ssh_keys.n; i++)
      if (buf_printf(b, "%s\n", u->ssh_keys.items[i]) < 0)
        return -1;
    if (buf_puts(b, "VAB_END\n"
                    "chown -R -- \"$name:$(id -gn -- \"$name\")\" "
                    "\"$home/.ssh\"\n"
                    "chmod 0700 -- \"$home/.ssh\"\n"
                    "chmod 0600 -- \"$home/.ssh/authorized_keys\"\n") < 0)
      return -1;
  }
  return 0;
}

/* users_plan_for() on the guest's current /etc/passwd and /etc/group:
 * read again for each user, since the one before may have added to them. */
static int plan_user(struct vab_ctx *ctx, struct vab_guest *guest,
                     const struct user_spec *u, struct users_plan *plan) {
  char *passwd = NULL, *group = NULL;
  size_t len = 0;
  if (vab_guest_read(guest, "/etc/passwd", &passwd, &len) < 0)
    return -1;
  if (vab_guest_read(guest, "/etc/group", &group, &len) < 0) {
    free(passwd);
    return -1;
  }
  char why[256];
  int r = users_plan_for(u->name, u->has_uid, u->uid, passwd, group, plan,
                         why, sizeof why);
  free(passwd);
  free(group);
  if (r < 0) {
    vab_error_at(ctx, VAB_E_PROVISION, &u->name_mark, "users: %s", why);
    vab_diag_hint(ctx, "choose another name; docs/template.md (users) says "
                       "which names vab creates, updates or refuses");
    return -1;
  }
  if (plan->action == USERS_CREATE_IN_USERS)
    vab_log(ctx, VAB_LOG_INFO,
            "users: the guest has a group '%s'; user '%s' gets primary group "
            "'users' and does not join it",
            u->name, u->name);
  return 0;
}

static int users_run(struct vab_ctx *ctx, const void *opaque,
                     struct vab_guest *guest) {
  const struct users_config *c = opaque;
  for (size_t i = 0; i < c->n_users; i++) {
    const struct user_spec *u = &c->users[i];
    char *hash = NULL;
    if (u->password != NULL && hash_password(ctx, u->password, &hash) < 0)
      return -1;
    struct users_plan plan;
    if (plan_user(ctx, guest, u, &plan) < 0) {
      free(hash);
      return -1;
    }
    struct buf script = BUF_INIT;
    int r = user_script(&script, u, &plan,
                        hash != NULL ? hash : u->password_hash);
    free(hash);
    if (r < 0) {
      buf_release(&script);
      return vab_error(ctx, VAB_E_NOMEM, "out of memory");
    }
    vab_log(ctx, VAB_LOG_INFO, "users: %s", u->name);
    r = vab_guest_script_at(guest, script.data, NULL, &u->mark, "users");
    explicit_bzero(script.data, script.len);
    buf_release(&script);
    if (r < 0)
      return -1;
  }
  if (c->lock_root) {
    const char lock[] = "set -e\nusermod -L root\n";
    if (vab_guest_script_at(guest, lock, NULL, &c->lock_root_mark,
                            "users: locking root") < 0)
      return -1;
  }
  return 0;
}

const struct vab_step_type vab_step_type_users = {
  .name = "users",
  .summary = "create users with groups, SSH keys and passwords",
  .keys = users_keys,
  .flags = 0,
  .config = users_config,
  .check = users_check,
  .free = users_free,
};

const struct vab_provisioner vab_provisioner_users = {
  .name = "users",
  .run = users_run,
};
