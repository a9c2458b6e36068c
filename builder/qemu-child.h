/* Finding the appliance's qemu among this process's children, for the
 * guest session's watchdog while guestfs_launch() runs (builder/guest.c).
 *
 * libguestfs's direct backend forks qemu itself and only tells its pid
 * once the launch is over.  A cancel during the launch must still stop
 * that qemu, and only that one: the same process may run other qemus (a
 * boot test's, another session's).  The appliance's qemu is the child
 * whose command line attaches the session's work disk ("file=DISK" in a
 * -drive option string); a boot test boots an overlay of a disk, never
 * the disk itself, and two sessions never share a writable disk. */
#ifndef VAB_BUILDER_QEMU_CHILD_H
#define VAB_BUILDER_QEMU_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* True if the NUL-separated command line (len bytes, as in
 * /proc/PID/cmdline) names disk_path (as given, with "./" before a
 * relative one, or made absolute) as the file= of an option string. */
bool qemu_cmdline_uses_disk(const char *cmdline, size_t len,
                            const char *disk_path);

/* The pids (at most max) of the children of this process whose command
 * name starts with "qemu" and whose command line uses disk_path.  Returns
 * how many were found; 0 also when /proc cannot be read.  It allocates,
 * so it is for threads, not signal handlers. */
size_t qemu_children_using_disk(const char *disk_path, pid_t *pids,
                                size_t max);

#endif
