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
#include <sys/mman.h>
#include <unistd.h>

#include "vab/format.h"
#include "formats/vmdk/vmdk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Bounds per input, so a huge (valid) capacity cannot make a run slow. */
#define MAX_RUNS 4096
#define MAX_READ (8u << 20)

static void walk(const char *path) {
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_reader *r = NULL;
  if (ctx != NULL && vab_image_open(ctx, path, "vmdk", 0, &r) == 0) {
    static uint8_t buf[1u << 20];
    uint64_t offset = 0, read_total = 0;
    for (int runs = 0; runs < MAX_RUNS && offset < r->info.virtual_size;
         runs++) {
      uint64_t run;
      bool is_zero;
      if (r->format->block_status(r, offset, r->info.virtual_size - offset,
                                  &run, &is_zero) < 0)
        break;
      if (run == 0)
        abort();  /* no progress: the walk would never end */
      if (!is_zero && read_total < MAX_READ) {
        size_t n = run < sizeof buf ? (size_t)run : sizeof buf;
        if (vab_image_pread(r, buf, n, offset) < 0)
          break;
        read_total += n;
      }
      offset += run;
    }
    struct vab_check_result result;
    r->format->check(r, &result);
  }
  vab_image_close(r);
  vab_ctx_free(ctx);
}

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

  int fd = memfd_create("fuzz.vmdk", 0);
  if (fd < 0)
    return 0;
  if (write(fd, data, size) != (ssize_t)size) {
    close(fd);
    return 0;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  walk(path);
  close(fd);

  char child[96], parent[96];
  snprintf(child, sizeof child, "%s/fuzz.vmdk", folder());
  snprintf(parent, sizeof parent, "%s/parent.vmdk", folder());
  /* Files cost time: only for inputs that can name a parent. */
  if (memmem(data, size, "parent", 6) != NULL &&
      write_file(child, data, size) == 0 && write_file(parent, data, size) == 0)
    walk(child);
  return 0;
}
