/* safetensors files (https://github.com/huggingface/safetensors), read and written.
 *
 * Layout: an 8-byte little-endian header length N; N bytes of JSON mapping each tensor name to
 * {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]} (offsets relative to the byte
 * after the header) plus an optional "__metadata__" object of strings; then the raw
 * little-endian data. The writer pads the header with spaces to a multiple of 8 bytes and
 * writes the tensors in the order given, contiguously. */
#ifndef MRM_IO_SAFETENSORS_H
#define MRM_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "mrmnet.h"

#define ST_MAX_NDIM 8

typedef enum st_dtype { ST_F32, ST_I64, ST_I8, ST_OTHER } st_dtype;

typedef struct st_tensor_info {
    char *name;
    st_dtype dtype;
    char dtype_name[16]; /* as written in the file ("F32", "BF16", ...) */
    int ndim;            /* 0 = scalar */
    long long shape[ST_MAX_NDIM];
    long long numel;
    size_t begin, end;   /* byte offsets in the data section */
} st_tensor_info;

typedef struct st_file {
    char path[512];
    char *buf;           /* the whole file */
    int borrowed;        /* buf is the caller's (st_read_mem): st_free leaves it */
    size_t len;
    size_t data_start;   /* 8 + N */
    int n;               /* tensors, in the order of the file's header */
    st_tensor_info *t;
    mrm_meta meta;       /* "__metadata__" (empty when absent) */
} st_file;

/* Reads and validates a file: header length within the file, JSON well-formed, every entry
 * with a known-size dtype, a shape of non-negative integers and data_offsets [begin, end]
 * within the data with end - begin = numel * dtype size, no two tensors overlapping, metadata
 * values strings. On failure *f is left empty (safe to st_free). */
mrm_status st_read(st_file *f, const char *path, mrm_error *err);
/* The same for a file held in memory (`name` names it in messages); f borrows buf, which must
 * outlive it. Safe on any bytes: the fuzzing entry point. */
mrm_status st_read_mem(st_file *f, const void *buf, size_t len, const char *name, mrm_error *err);
void st_free(st_file *f);
/* The entry of that name, or NULL. */
const st_tensor_info *st_find(const st_file *f, const char *name);
/* The bytes of a tensor (unaligned: copy out with memcpy). */
const void *st_data(const st_file *f, const st_tensor_info *t);
/* Checks that `name` is present with dtype and shape (ndim values); returns its entry, or NULL
 * with a message naming the file, tensor and field. */
const st_tensor_info *st_expect(const st_file *f, const char *name, st_dtype dtype, int ndim,
                                const long long *shape, mrm_error *err);
/* Copies a float32 tensor checked with st_expect into out. */
mrm_status st_read_f32(const st_file *f, const char *name, int ndim, const long long *shape, float *out,
                       mrm_error *err);

/* One tensor to write. */
typedef struct st_entry {
    const char *name;
    st_dtype dtype; /* ST_F32, ST_I64 or ST_I8 */
    int ndim;
    long long shape[ST_MAX_NDIM];
    const void *data;
} st_entry;

/* Writes the entries (in this order) and the metadata (may be NULL) atomically. */
mrm_status st_write(const char *path, const st_entry *e, int n, const mrm_meta *meta, mrm_error *err);

#endif
