/* VMDK header, marker and descriptor encoding (docs/formats.md, VMDK). */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "formats/vmdk/vmdk.h"

/* Byte offsets inside the 512-byte SparseExtentHeader. */
enum {
  HDR_MAGIC = 0,
  HDR_VERSION = 4,
  HDR_FLAGS = 8,
  HDR_CAPACITY = 12,
  HDR_GRAIN_SIZE = 20,
  HDR_DESCRIPTOR_OFFSET = 28,
  HDR_DESCRIPTOR_SIZE = 36,
  HDR_NUM_GTES = 44,
  HDR_RGD_OFFSET = 48,
  HDR_GD_OFFSET = 56,
  HDR_OVERHEAD = 64,
  HDR_UNCLEAN = 72,
  HDR_CHECK_BYTES = 73,
  HDR_COMPRESS = 77,
};

/* Detects transfers in FTP text mode, which would rewrite these. */
static const uint8_t newline_bytes[4] = {'\n', ' ', '\r', '\n'};

void vmdk_header_encode(const struct vmdk_header *h, uint8_t out[VMDK_SECTOR]) {
  memset(out, 0, VMDK_SECTOR);
  store_le32(out + HDR_MAGIC, VMDK_MAGIC);
  store_le32(out + HDR_VERSION, h->version);
  store_le32(out + HDR_FLAGS, h->flags);
  store_le64(out + HDR_CAPACITY, h->capacity);
  store_le64(out + HDR_GRAIN_SIZE, h->grain_size);
  store_le64(out + HDR_DESCRIPTOR_OFFSET, h->descriptor_offset);
  store_le64(out + HDR_DESCRIPTOR_SIZE, h->descriptor_size);
  store_le32(out + HDR_NUM_GTES, h->num_gtes_per_gt);
  store_le64(out + HDR_RGD_OFFSET, h->rgd_offset);
  store_le64(out + HDR_GD_OFFSET, h->gd_offset);
  store_le64(out + HDR_OVERHEAD, h->overhead);
  out[HDR_UNCLEAN] = h->unclean_shutdown;
  memcpy(out + HDR_CHECK_BYTES, newline_bytes, sizeof newline_bytes);
  store_le16(out + HDR_COMPRESS, h->compress_algorithm);
}

bool vmdk_header_decode(const uint8_t in[VMDK_SECTOR], struct vmdk_header *h) {
  memset(h, 0, sizeof *h);
  if (load_le32(in + HDR_MAGIC) != VMDK_MAGIC)
    return false;
  h->version = load_le32(in + HDR_VERSION);
  h->flags = load_le32(in + HDR_FLAGS);
  h->capacity = load_le64(in + HDR_CAPACITY);
  h->grain_size = load_le64(in + HDR_GRAIN_SIZE);
  h->descriptor_offset = load_le64(in + HDR_DESCRIPTOR_OFFSET);
  h->descriptor_size = load_le64(in + HDR_DESCRIPTOR_SIZE);
  h->num_gtes_per_gt = load_le32(in + HDR_NUM_GTES);
  h->rgd_offset = load_le64(in + HDR_RGD_OFFSET);
  h->gd_offset = load_le64(in + HDR_GD_OFFSET);
  h->overhead = load_le64(in + HDR_OVERHEAD);
  h->unclean_shutdown = in[HDR_UNCLEAN];
  h->newline_bytes_ok =
      memcmp(in + HDR_CHECK_BYTES, newline_bytes, sizeof newline_bytes) == 0;
  h->compress_algorithm = load_le16(in + HDR_COMPRESS);
  return true;
}

void vmdk_marker_encode(uint8_t out[VMDK_SECTOR], uint64_t num_sectors,
                        uint32_t type) {
  memset(out, 0, VMDK_SECTOR);
  store_le64(out, num_sectors);
  /* bytes 8..11: size, 0 for metadata markers */
  store_le32(out + 12, type);
}

/* Spread the 32-bit CID into more bits for ddb.longContentID. */
static uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

int vmdk_descriptor_format(struct buf *out, const struct vmdk_descriptor *d,
                           const char *extent_file) {
  /* Legacy BIOS geometry: IDE disks use 16 heads, SCSI ones 255. */
  unsigned heads = strcmp(d->adapter_type, "ide") == 0 ? 16 : 255;
  uint64_t cylinders = (d->extent_sectors + heads * 63 - 1) / (heads * 63);
  if (cylinders > 65535)
    cylinders = 65535;
  int r = buf_printf(
      out,
      "# Disk DescriptorFile\n"
      "version=1\n"
      "encoding=\"UTF-8\"\n"
      "CID=%08" PRIx32 "\n"
      "parentCID=ffffffff\n"
      "createType=\"%s\"\n"
      "\n"
      "# Extent description\n"
      "RW %" PRIu64 " SPARSE \"%s\"\n"
      "\n"
      "# The Disk Data Base\n"
      "#DDB\n"
      "\n"
      "ddb.adapterType = \"%s\"\n"
      "ddb.geometry.cylinders = \"%" PRIu64 "\"\n"
      "ddb.geometry.heads = \"%u\"\n"
      "ddb.geometry.sectors = \"63\"\n"
      "ddb.longContentID = \"%08" PRIx32 "%08" PRIx32 "%08" PRIx32
      "%08" PRIx32 "\"\n"
      "ddb.virtualHWVersion = \"%s\"\n",
      d->cid, d->create_type, d->extent_sectors, extent_file, d->adapter_type,
      cylinders, heads, mix32(d->cid ^ 0x1u), mix32(d->cid ^ 0x2u),
      mix32(d->cid ^ 0x3u), d->cid, d->hw_version);
  return r < 0 ? -1 : 0;
}

/* Copy a value, dropping surrounding quotes; false if it does not fit. */
static bool copy_value(char *dst, size_t cap, const char *v, size_t n) {
  if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
    v++;
    n -= 2;
  }
  if (n >= cap)
    return false;
  memcpy(dst, v, n);
  dst[n] = '\0';
  return true;
}

/* An extent line: ACCESS SECTORS TYPE ["FILE" [OFFSET]]. */
static bool parse_extent(const char *line, size_t n, struct vmdk_descriptor *d) {
  char copy[512];
  if (n >= sizeof copy)
    return false;
  memcpy(copy, line, n);
  copy[n] = '\0';
  char access[16], type[16];
  unsigned long long sectors;
  int used = 0;
  if (sscanf(copy, "%15s %llu %15s%n", access, &sectors, type, &used) != 3)
    return false;
  if (strcmp(access, "RW") != 0 && strcmp(access, "RDONLY") != 0 &&
      strcmp(access, "NOACCESS") != 0)
    return false;
  /* The file name: quoted, or (leniently) one bare word. */
  const char *p = copy + used;
  while (*p == ' ' || *p == '\t')
    p++;
  const char *name = p, *name_end = p;
  if (*p == '"') {
    name = p + 1;
    name_end = strchr(name, '"');
    if (name_end == NULL)
      return false;
  } else {
    while (*name_end != '\0' && *name_end != ' ' && *name_end != '\t')
      name_end++;
  }
  if (d->n_extents == 0) {
    d->extent_sectors = sectors;
    snprintf(d->extent_type, sizeof d->extent_type, "%s", type);
    snprintf(d->extent_file, sizeof d->extent_file, "%.*s",
             (int)(name_end - name), name);
  }
  d->n_extents++;
  return true;
}

/* A CID value: 1 to 8 hex digits, optionally quoted. */
static bool parse_cid(const char *v, size_t vn, uint32_t *out) {
  char hex[16];
  char *stop;
  if (!copy_value(hex, sizeof hex, v, vn) || hex[0] == '\0' ||
      !isxdigit((unsigned char)hex[0]))
    return false;
  unsigned long cid = strtoul(hex, &stop, 16);
  if (*stop != '\0' || cid > UINT32_MAX)
    return false;
  *out = (uint32_t)cid;
  return true;
}

bool vmdk_descriptor_signature(const uint8_t *text, size_t len) {
  static const char sig[] = "# Disk DescriptorFile";
  return len >= sizeof sig - 1 &&
         strncasecmp((const char *)text, sig, sizeof sig - 1) == 0;
}

int vmdk_descriptor_parse(const char *text, size_t len,
                          struct vmdk_descriptor *d, const char **why) {
  memset(d, 0, sizeof *d);
  d->parent_cid = VMDK_NO_PARENT;
  const char *nul = memchr(text, '\0', len);
  if (nul != NULL)
    len = (size_t)(nul - text);
  const char *end = text + len;
  bool saw_signature = false, saw_cid = false;

  for (const char *p = text; p < end;) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *next = eol ? eol + 1 : end;
    if (eol == NULL)
      eol = end;
    while (p < eol && isspace((unsigned char)*p))
      p++;
    const char *q = eol;
    while (q > p && isspace((unsigned char)q[-1]))
      q--;
    size_t n = (size_t)(q - p);

    if (n == 0) {
      /* blank line */
    } else if (p[0] == '#') {
      static const char sig[] = "# Disk DescriptorFile";
      if (n >= sizeof sig - 1 && strncasecmp(p, sig, sizeof sig - 1) == 0)
        saw_signature = true;
    } else if ((n > 3 && memcmp(p, "RW ", 3) == 0) ||
               (n > 7 && memcmp(p, "RDONLY ", 7) == 0) ||
               (n > 9 && memcmp(p, "NOACCESS ", 9) == 0)) {
      if (!parse_extent(p, n, d)) {
        *why = "malformed extent line";
        return -1;
      }
    } else {
      const char *eq = memchr(p, '=', n);
      if (eq == NULL) {
        *why = "line is neither KEY=VALUE, an extent nor a comment";
        return -1;
      }
      const char *ke = eq;
      while (ke > p && isspace((unsigned char)ke[-1]))
        ke--;
      const char *v = eq + 1;
      while (v < q && isspace((unsigned char)*v))
        v++;
      size_t kn = (size_t)(ke - p), vn = (size_t)(q - v);
      if (kn == 3 && strncasecmp(p, "CID", 3) == 0) {
        if (!parse_cid(v, vn, &d->cid)) {
          *why = "CID is not 8 hex digits";
          return -1;
        }
        saw_cid = true;
      } else if (kn == 9 && strncasecmp(p, "parentCID", 9) == 0) {
        if (!parse_cid(v, vn, &d->parent_cid)) {
          *why = "parentCID is not 8 hex digits";
          return -1;
        }
      } else if (kn == 18 && strncasecmp(p, "parentFileNameHint", 18) == 0) {
        if (!copy_value(d->parent_hint, sizeof d->parent_hint, v, vn)) {
          *why = "parentFileNameHint is too long";
          return -1;
        }
      } else if (kn == 10 && strncasecmp(p, "createType", 10) == 0) {
        if (!copy_value(d->create_type, sizeof d->create_type, v, vn)) {
          *why = "createType is too long";
          return -1;
        }
      } else if (kn == 15 && strncasecmp(p, "ddb.adapterType", 15) == 0) {
        if (!copy_value(d->adapter_type, sizeof d->adapter_type, v, vn)) {
          *why = "ddb.adapterType is too long";
          return -1;
        }
      } else if (kn == 20 && strncasecmp(p, "ddb.virtualHWVersion", 20) == 0) {
        if (!copy_value(d->hw_version, sizeof d->hw_version, v, vn)) {
          *why = "ddb.virtualHWVersion is too long";
          return -1;
        }
      }
    }
    p = next;
  }
  if (!saw_signature) {
    *why = "no '# Disk DescriptorFile' line";
    return -1;
  }
  if (d->create_type[0] == '\0') {
    *why = "no createType";
    return -1;
  }
  if (!saw_cid) {
    *why = "no CID";
    return -1;
  }
  if (d->n_extents == 0) {
    *why = "no extent line";
    return -1;
  }
  return 0;
}
