#include "common/bigalloc.h"

#include <stdlib.h>
#include <sys/mman.h>

enum { HUGE_PAGE = 2 << 20, LINE = 64 };

void *mrm_alloc_large(size_t bytes) {
    if (bytes < HUGE_PAGE) { /* whole cache lines */
        size_t size = (bytes + LINE - 1) / LINE * LINE;
        return size < bytes ? NULL : aligned_alloc(LINE, size ? size : LINE);
    }
    size_t size = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    void *p = NULL;
    if (size < bytes || posix_memalign(&p, HUGE_PAGE, size)) return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, size, MADV_HUGEPAGE); /* advice only */
#endif
    return p;
}
