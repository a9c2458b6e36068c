/* The VMDK format: streamOptimized (default) and monolithicSparse sparse
 * extents with an embedded descriptor.  Writer in vmdk-write.c, reader in
 * vmdk-read.c, on-disk encoding in vmdk-meta.c. */
#include "formats/registry.h"
#include "formats/vmdk/vmdk.h"

const struct vab_format vab_format_vmdk = {
    .name = "vmdk",
    .extension = "vmdk",
    .description = "VMware virtual disk (streamOptimized, monolithicSparse)",
    .caps = VAB_FMT_READ | VAB_FMT_WRITE | VAB_FMT_SPARSE | VAB_FMT_COMPRESS |
            VAB_FMT_STREAM,
    .options = vmdk_options,
    .check_options = vmdk_check_options,
    .set_option = vmdk_set_option,
    .open = vmdk_open,
    .encode = vmdk_encode,
    .put = vmdk_put,
    .close = vmdk_close,
    .free = vmdk_free,
    .probe = vmdk_probe,
    .reader_open = vmdk_reader_open,
    .block_status = vmdk_block_status,
    .pread = vmdk_pread,
    .check = vmdk_check,
    .reader_close = vmdk_reader_close,
};
