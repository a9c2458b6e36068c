/* Per-thread compressors for the writers' encode() callbacks, which run on
 * the core's worker threads and must share no mutable state: each thread
 * makes its libdeflate and zstd contexts on first use and keeps them, since
 * making one per cluster or grain costs more than compressing it.  They
 * are freed when the thread exits, or by vab_thread_compressors_release()
 * on a thread that lives on (the core's own).  Used by the qcow2 and VMDK
 * writers. */
#ifndef VAB_FORMATS_COMPRESSORS_H
#define VAB_FORMATS_COMPRESSORS_H

#include <stddef.h>
#include <stdint.h>

#include <libdeflate.h>
#include <zstd.h>

/* The calling thread's libdeflate compressor at level (remade when the
 * level changes), or NULL when memory ran out. */
struct libdeflate_compressor *vab_thread_deflate(int level);

/* The calling thread's zstd compression context, or NULL. */
ZSTD_CCtx *vab_thread_zstd(void);

/* data (len bytes) copied into the thread's buffer and zero-padded to
 * size >= len, for compressing a short last cluster or grain as it reads
 * back; NULL when memory ran out. */
const uint8_t *vab_thread_zero_padded(const void *data, size_t len,
                                      size_t size);

/* Free the calling thread's compressors now. */
void vab_thread_compressors_release(void);

#endif
