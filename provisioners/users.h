/* How the users provisioner treats a name the guest already knows.
 *
 * Debian's base-passwd reserves many names as groups with no user of the
 * same name (operator, staff, disk, sudo...).  useradd -U then fails with
 * "group NAME exists", and adduser refuses too ("The group `NAME' already
 * exists") unless it is told which group to use instead (--ingroup).
 * Joining the existing group would be wrong: many of them grant privileges
 * (disk reads raw disks, shadow reads password hashes, staff writes
 * /usr/local, sudo is root).  So vab does what `adduser --ingroup users`
 * does: the new user's primary group is "users" (gid 100 on Debian), and it
 * joins a privileged group only when the template lists it in `groups`.
 *
 * A name that is already a *user*: root is root (no useradd); a system
 * account (uid below 1000, or nobody) is refused, because taking it over
 * would give a package's account a login shell, a password or SSH keys; a
 * regular account (from an image source) is updated in place.
 *
 * Pure functions on the text of the guest's /etc/passwd and /etc/group, so
 * that the decision is testable without a VM. */
#ifndef VAB_PROVISIONERS_USERS_H
#define VAB_PROVISIONERS_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

/* The first uid of regular accounts (Debian's UID_MIN). */
#define USERS_FIRST_REGULAR_UID 1000u

enum users_action {
  USERS_ROOT,             /* root: exists, is never created */
  USERS_UPDATE,           /* a regular account that exists: usermod */
  USERS_CREATE,           /* useradd with a new group of the same name */
  USERS_CREATE_IN_USERS,  /* useradd -N -g users: a group has the name */
};

struct users_plan {
  enum users_action action;
};

/* Decides what to do with user name (has_uid: the template gave uid),
 * given the guest's passwd and group files (NULL counts as empty).  -1
 * with a sentence in why (no trailing full stop) when the step cannot
 * proceed: a system account, a uid in use, no group "users". */
int users_plan_for(const char *name, bool has_uid, uint32_t uid,
                   const char *passwd, const char *group,
                   struct users_plan *plan, char *why, size_t why_len);

/* Appends the shell line that creates or updates the account, for a script
 * that has set $name and $user_shell; nothing for USERS_ROOT.  Template
 * values never appear in it unquoted.  -1 when out of memory. */
int users_account_command(struct buf *b, const struct users_plan *plan,
                          bool has_uid, uint32_t uid);

#endif
