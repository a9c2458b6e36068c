/* File names on qemu and qemu-img command lines.
 *
 * qemu reads "nbd:host", "json:{...}" or "https://..." in a file name as a
 * protocol, so a relative name with a ':' before its first '/' would not be
 * the file meant.  A name that starts with '/' or "./" never is one.  In
 * -drive and other option strings a ',' separates options, and ",," is a
 * literal comma. */
#ifndef VAB_COMMON_QEMU_NAME_H
#define VAB_COMMON_QEMU_NAME_H

struct buf;

/* Append path as a plain file name: "./" before a relative one.  For
 * positional arguments (after "--"). */
int qemu_file_name(struct buf *b, const char *path);

/* Append path for an option string ("file=" of -drive): as above, with
 * every ',' doubled. */
int qemu_option_file_name(struct buf *b, const char *path);

#endif
