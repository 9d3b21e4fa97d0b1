/* Large working buffers (a model's activations, its scratch, its gradient stack) on transparent
 * huge pages where the system grants them on request. */
#ifndef MRM_COMMON_BIGALLOC_H
#define MRM_COMMON_BIGALLOC_H

#include <stddef.h>

/* bytes of memory (NULL when there is none), released with free(), aligned to 64 bytes (a cache
 * line). From 2 MiB on it is aligned to 2 MiB and advised as a candidate for transparent huge
 * pages (Linux madvise MADV_HUGEPAGE: the default "madvise" setting of the kernel's
 * transparent_hugepage gives them only to memory that asks). The advice is only advice: refused
 * or not available, the memory is the same. Streaming passes over maps of tens of MB then walk
 * one page table entry every 2 MiB instead of every 4 KiB, and the hardware prefetchers, which
 * stop at page boundaries, stop 512 times less. */
void *mrm_alloc_large(size_t bytes);

#endif
