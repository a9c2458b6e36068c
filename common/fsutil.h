/* Small file-system helpers with no vab dependency. */
#ifndef VAB_COMMON_FSUTIL_H
#define VAB_COMMON_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* mkdir -p.  On failure returns -1 with errno set, and copies the folder
 * that could not be made into failed (if not NULL). */
int mkdir_p(const char *path, mode_t mode, char *failed, size_t failed_len);

/* Open path read-only without ever blocking: O_NONBLOCK lets open() return
 * at once on a FIFO or a device, fstat then says what it is, and only a
 * regular file is kept (O_NONBLOCK cleared again for ordinary reads).
 * Returns the descriptor with its stat in *st, or -1 with errno set and
 * *not_regular true when path exists but is not a regular file. */
int open_regular_file(const char *path, struct stat *st, bool *not_regular);
/* The same, but a symbolic link as the last component is refused
 * (*not_regular true, errno ELOOP) instead of followed. */
int open_regular_file_nofollow(const char *path, struct stat *st,
                               bool *not_regular);

/* The part of path after its last '/' (a pointer into path). */
const char *path_base_name(const char *path);

/* An output's temporary sibling: creates ".NAME.vab-XXXXXX" in dst's folder
 * (so that rename() onto dst is atomic), open read-write, O_CLOEXEC, mode
 * 0600, never through a link planted at the name.  The descriptor holds an
 * exclusive flock for the writer's whole life: rename before closing it.
 * Temporaries of dst that no live writer holds (left by a killed one) are
 * removed first.  Returns the descriptor and the malloc'd name in *tmp, or
 * -1 with errno set and *tmp NULL. */
int create_temp_beside(const char *dst, char **tmp);

/* A private folder "PARENT/.PREFIX-XXXXXX" (mode 0700) for as long as the
 * returned descriptor is open: it holds an exclusive flock on the folder.
 * Folders of that PREFIX that no live process holds (left by a killed
 * one, SIGKILL included) are removed first, by the rule and under the
 * parent's lock that create_temp_beside() uses.  Remove the folder before
 * closing the descriptor.  Returns the O_CLOEXEC descriptor and the
 * malloc'd path in *path, or -1 with errno set and *path NULL. */
int create_locked_folder(const char *parent, const char *prefix, char **path);

/* Create path as a new empty file with mode, replacing whatever is there
 * (a planted symbolic or hard link is replaced, never followed or
 * truncated): a temporary beside it, renamed onto path at once.  For files
 * written in place while they grow, such as logs.  Returns an O_CLOEXEC
 * read-write descriptor, or -1 with errno set. */
int create_replacing(const char *path, mode_t mode);

/* The step of commit_temp() that failed. */
enum temp_commit_step {
  TEMP_COMMIT_SYNC = 1,   /* fsync or fstat of the temporary */
  TEMP_COMMIT_RENAME,     /* rename onto dst */
  TEMP_COMMIT_CLOSE,      /* close after the rename; dst is removed */
  TEMP_COMMIT_SYNC_FOLDER /* fsync of dst's folder; dst stays */
};

/* Make a complete temporary from create_temp_beside() the file dst: fsync
 * fd (and fstat it into *st when st is not NULL), rename tmp onto dst while
 * fd is still open, so that its lock marks the temporary as a live
 * writer's until the end, close fd, and fsync dst's folder.  fd is closed
 * in every case.  Returns 0, or -1 with errno set and *failed saying which
 * step; a temporary that was not renamed is unlinked, and so is dst when
 * closing it failed (its data may not be on disk). */
int commit_temp(int fd, const char *tmp, const char *dst, struct stat *st,
                enum temp_commit_step *failed);

/* fsync the folder holding path, so a rename into it is durable.  -1 with
 * errno set on failure. */
int sync_parent_folder(const char *path);

/* rm -rf, without following symbolic links.  Best effort. */
void remove_tree(const char *path);

#endif
