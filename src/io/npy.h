/* Internal: the .npy header, for writers that stream an array's rows to a file themselves. */
#ifndef MRM_IO_NPY_H
#define MRM_IO_NPY_H

#include <stddef.h>

/* Builds the version-1.0 header of a '<f4' C-order array of the given shape into buf, byte for
 * byte as numpy >= 1.24 writes it. Returns its length (a multiple of 64), 0 if it does not fit. */
size_t mrm_npy_header_f32(char *buf, size_t bufsz, int ndim, const long long *shape);

#endif
