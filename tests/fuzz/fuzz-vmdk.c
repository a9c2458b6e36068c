/* libFuzzer target: the VMDK reader.  The input is a VMDK file; it is
 * opened, its block status walked, its data read and its metadata
 * checked.  Any crash, leak, hang or sanitizer report is a bug: hostile
 * images must only ever produce diagnostics.
 *
 * The input also goes, as text, to the descriptor parser, and (if it
 * mentions a parent) is opened a second time from a private folder where
 * it is also "parent.vmdk": a delta disk naming that parent reaches the
 * parent's open, the CID check and the depth limit (a child that is its
 * own parent). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/vmdk/vmdk.h"
#include "fuzz-image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A private folder holding the input as fuzz.vmdk and parent.vmdk,
 * removed at exit. */
static char dir[64];

static void remove_folder(void) {
  char path[96];
  snprintf(path, sizeof path, "%s/fuzz.vmdk", dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/parent.vmdk", dir);
  unlink(path);
  rmdir(dir);
}

static const char *folder(void) {
  if (dir[0] == '\0') {
    snprintf(dir, sizeof dir, "/tmp/fuzz-vmdk.XXXXXX");
    if (mkdtemp(dir) == NULL)
      abort();
    atexit(remove_folder);
  }
  return dir;
}

static int write_file(const char *path, const uint8_t *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (f == NULL)
    return -1;
  size_t n = fwrite(data, 1, size, f);
  return fclose(f) == 0 && n == size ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct vmdk_descriptor d;
  const char *why = NULL;
  vmdk_descriptor_parse((const char *)data, size, &d, &why);

  char path[64];
  int fd = fuzz_memfd(data, size, "fuzz.vmdk", path, sizeof path);
  if (fd < 0)
    return 0;
  fuzz_walk_image(path, "vmdk");
  close(fd);

  char child[96], parent[96];
  snprintf(child, sizeof child, "%s/fuzz.vmdk", folder());
  snprintf(parent, sizeof parent, "%s/parent.vmdk", folder());
  /* Files cost time: only for inputs that can name a parent. */
  if (memmem(data, size, "parent", 6) != NULL &&
      write_file(child, data, size) == 0 && write_file(parent, data, size) == 0)
    fuzz_walk_image(child, "vmdk");
  return 0;
}
