/* The source stage: where the guest's operating system comes from.
 *
 *   bootstrap  mmdebstrap runs as a host subprocess and writes a rootfs
 *              tarball.  vab adds what every appliance needs: the kernel,
 *              GRUB for BIOS and UEFI, systemd as init and systemd-resolved
 *              (systemd-networkd, part of systemd, gets its config in the
 *              layout stage).  The tarball is an entry of the step cache
 *              (builder/cache.h) under a key of the source's spec, so the
 *              next build, or one running at the same time, reuses it; it
 *              is verified and linked (or copied) into the work folder.
 *   rootfs     a tarball the user gives (tar, tar.gz, tar.xz, tar.zst),
 *              checksum verified, decompressed on the host.
 *   image      a qcow2, raw or vmdk disk, checksum verified, converted to
 *              the raw work disk and grown to disk.size (the layout stage
 *              grows its root filesystem).
 *
 * The host side happens here, before the builder VM starts; the tarball is
 * unpacked inside the VM by the layout stage. */
#ifndef VAB_BUILDER_SOURCE_H
#define VAB_BUILDER_SOURCE_H

#include <stdbool.h>
#include "vab/template.h"

struct vab_source_opts {
  const char *cache_dir;     /* bootstrap tarballs live here */
  const char *work_dir;      /* the build's temporary folder */
  const char *key;           /* the source step's plan key */
  const char *disk_path;     /* image: the work disk to write */
  const char *label;         /* the step's label, for its cache entry */
  bool refresh;              /* --no-cache: bootstrap again, replace the entry */
  struct vab_remote_cache *cache_remote;  /* --cache-from, or NULL */
  /* Called once, before the step's work, when it is known whether the
   * cache has it (NULL: not told). */
  void (*decided)(void *opaque, bool cached);
  void *opaque;
};

struct vab_source_result {
  char *tarball;             /* an uncompressed tar to unpack, or NULL */
  bool disk_ready;           /* image: disk_path holds the guest */
  bool cached;               /* bootstrap: the cache had it */
};

/* What vab installs besides the template's packages (NULL-terminated). */
extern const char *const vab_bootstrap_base_packages[];

/* The mmdebstrap command line that bootstraps src into the tarball target
 * (NULL-terminated, malloc'd; free with vab_bootstrap_argv_free).  The
 * suite, mirror, variant and package names are checked against their
 * grammars first (common/debian.h), and "--" precedes the positional
 * arguments. */
int vab_bootstrap_argv(struct vab_ctx *ctx, const struct vab_source *src,
                       const char *target, char ***argv);
void vab_bootstrap_argv_free(char **argv);

int vab_source_prepare(struct vab_ctx *ctx, const struct vab_template *t,
                       const struct vab_source_opts *opts,
                       struct vab_source_result *result);
void vab_source_result_release(struct vab_source_result *result);

/* The default cache folder: $XDG_CACHE_HOME/vab or ~/.cache/vab. */
char *vab_default_cache_dir(void);

#endif
