/* VHD footer encoding, shared by the writer, the reader and unit tests. */
#ifndef VAB_FORMATS_VHD_H
#define VAB_FORMATS_VHD_H

#include <stdbool.h>
#include <stdint.h>

#include "vab/format.h"

#define VHD_FOOTER_SIZE 512u
#define VHD_TYPE_FIXED 2u
#define VHD_TYPE_DYNAMIC 3u
/* Azure's upload limit for a page blob VHD. */
#define VHD_MAX_BYTES (UINT64_C(32) << 40)

struct vhd_footer {
  uint64_t data_offset;
  uint32_t timestamp;        /* seconds since 2000-01-01 UTC */
  char creator_app[4];
  uint32_t creator_version;
  uint64_t original_size;
  uint64_t current_size;
  uint16_t cylinders;
  uint8_t heads;
  uint8_t sectors_per_track;
  uint32_t disk_type;
  uint32_t checksum;         /* decode only */
  uint8_t unique_id[16];
};

/* Ones' complement of the byte sum, the checksum field counted as 0. */
uint32_t vhd_checksum(const uint8_t footer[VHD_FOOTER_SIZE]);
void vhd_footer_encode(const struct vhd_footer *f,
                       uint8_t out[VHD_FOOTER_SIZE]);
bool vhd_footer_decode(const uint8_t in[VHD_FOOTER_SIZE],
                       struct vhd_footer *f);
uint64_t vhd_footer_virtual_size(const struct vhd_footer *f);

/* qemu-img -p progress: "    (12.34/100%)" gives 12.34. */
bool vhdx_parse_progress(const char *line, double *percent);

extern const struct vab_format vab_format_vhd;
extern const struct vab_format vab_format_vhdx;

#endif
