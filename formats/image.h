/* Helpers of formats/ that are not public API. */
#ifndef VAB_FORMATS_IMAGE_H
#define VAB_FORMATS_IMAGE_H

#include <stdbool.h>
#include <stdint.h>
#include "vab/format.h"

/* block_status() through the vtable, checking the run the reader gives. */
int vab_image_block_status(struct vab_reader *r, uint64_t offset,
                           uint64_t len, uint64_t *run, bool *is_zero);

/* A backing file name as qemu resolves it: relative names are relative to
 * the folder of the image that names them.  malloc'd, NULL if no memory. */
char *vab_image_relative_path(const char *image_path, const char *name);

/* Open the backing file, parent or extent (what, for errors) that image
 * parent names, by the rules of docs/formats.md (Confinement): it must be
 * a regular file and, unless the chain is trusted, resolve inside the
 * folder of parent.  The new reader inherits parent's open flags. */
int vab_image_open_backing(struct vab_reader *parent, const char *name,
                           const char *format_name, const char *what,
                           struct vab_reader **out);

/* Read len guest bytes at offset from r's backing image, zeros where it
 * has none or past its end. */
int vab_image_read_backing(struct vab_reader *r, void *buf, size_t len,
                           uint64_t offset);

/* The virtual size a sector-based format writes for the writer's size:
 * rounded up to a whole 512-byte sector, with a warning on the context's
 * log when that grows it (the extra bytes read as zeros). */
uint64_t vab_writer_sector_size(struct vab_writer *w, const char *format);

/* True if all len bytes are zero. */
bool vab_buffer_is_zero(const void *buf, size_t len);

#endif
