/* Shared by the image reader targets (fuzz-qcow2, fuzz-vmdk): an input
 * as a file, and the walk that vab convert and vab inspect make over an
 * image.  Any crash, leak, hang or sanitizer report is a bug: hostile
 * images must only ever produce diagnostics. */
#ifndef VAB_FUZZ_IMAGE_H
#define VAB_FUZZ_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* The input in a memfd, named by *path (/proc/self/fd/N); returns the
 * descriptor for the caller to close, or -1. */
int fuzz_memfd(const uint8_t *data, size_t size, const char *name,
               char *path, size_t path_len);

/* Open path as format, walk its block status to the end, read its data
 * and check its metadata, each bounded so that a huge (valid) virtual
 * size cannot make a run slow. */
void fuzz_walk_image(const char *path, const char *format);

#endif
