/* NumPy .npy files, format version 1.0, float32 little-endian ('<f4'), C order.
 *
 * Layout: "\x93NUMPY", major 1, minor 0, header length (uint16 LE), then the header: a Python
 * dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with spaces
 * and ended by '\n' so that the data starts at a multiple of 64 bytes; then the raw values. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "io/npy.h"
#include "mrmnet.h"

#define NPY_MAX_NDIM 4
#define NPY_MAX_ELEMENTS (1LL << 40) /* refuse anything absurd before trusting the file size */

/* Builds the header (magic, version, length, dict, padding, '\n') into buf exactly as numpy >= 1.24
 * writes it: the dict, then room for the first dimension to grow to 21 digits, then spaces so that
 * the data starts at a multiple of 64 bytes (a full 64 when already aligned), then '\n'.
 * Returns the header's length, 0 if it does not fit. */
size_t mrm_npy_header_f32(char *buf, size_t bufsz, int ndim, const long long *shape) {
    char dict[1024];
    size_t n = (size_t)snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < ndim && n < sizeof dict; i++)
        n += (size_t)snprintf(dict + n, sizeof dict - n, i ? ", %lld" : "%lld", shape[i]);
    /* a 1-tuple is "(N,)", the empty shape "()" */
    if (n < sizeof dict) n += (size_t)snprintf(dict + n, sizeof dict - n, ndim == 1 ? ",), }" : "), }");
    if (n >= sizeof dict) return 0;
    size_t growth = 0;
    if (ndim > 0) {
        char first[32];
        growth = 21 - (size_t)snprintf(first, sizeof first, "%lld", shape[0]);
    }
    size_t hlen = n + growth + 1;                          /* dict + growth room + '\n' */
    size_t padlen = 64 - ((10 + hlen) % 64);
    size_t total = 10 + hlen + padlen;
    if (total > bufsz || total - 10 > 65535) return 0;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)((total - 10) & 0xff);
    buf[9] = (char)((total - 10) >> 8);
    memcpy(buf + 10, dict, n);
    memset(buf + 10 + n, ' ', total - 11 - n);
    buf[total - 1] = '\n';
    return total;
}

mrm_status mrm_npy_write_f32(const char *path, const float *data, int ndim, const long long *shape,
                             mrm_error *err) {
    if (ndim < 0 || ndim > 32) return mrm_fail(err, MRM_ERR_INVALID, "%s: ndim %d out of range 0..32", path, ndim);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return mrm_fail(err, MRM_ERR_INVALID, "%s: dimension %d is negative (%lld)", path, i, shape[i]);
        if (mrm_mul_size(count, (size_t)shape[i], &count) != 0)
            return mrm_fail(err, MRM_ERR_INVALID, "%s: shape overflows", path);
    }
    if (count > 0 && !data) return mrm_fail(err, MRM_ERR_INVALID, "%s: no data", path);
    char header[2048];
    size_t hlen = mrm_npy_header_f32(header, sizeof header, ndim, shape);
    if (!hlen) return mrm_fail(err, MRM_ERR_INVALID, "%s: header too long", path);
    mrm_atomic_file a;
    FILE *f = mrm_atomic_open(&a, path, err);
    if (!f) return err ? err->code : MRM_ERR_IO;
    int ok = fwrite(header, 1, hlen, f) == hlen;
    /* little-endian host assumed for the payload (x86-64, aarch64) */
    if (ok && count) ok = fwrite(data, sizeof(float), count, f) == count;
    if (!ok) {
        int e = errno;
        mrm_atomic_abort(&a);
        return mrm_fail(err, MRM_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return mrm_atomic_commit(&a, err);
}

/* Finds the value of key `key` in the header dict; returns a pointer after "'key':" and spaces. */
static const char *npy_find_key(const char *dict, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(dict, pat);
    if (!p) {
        snprintf(pat, sizeof pat, "\"%s\"", key);
        p = strstr(dict, pat);
    }
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ') p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

static mrm_status npy_parse_dict(const char *dict, unsigned long long hlen, unsigned long long hstart,
                                 unsigned long long fsize, const char *path, int *ndim, long long shape[4], size_t *data_off,
                                 size_t *count_out, mrm_error *err);

/* Parses the preamble and header held in buf (avail bytes: at least the preamble and header, or
 * the whole file) of a file of fsize bytes: the shape, where the data starts and how many values
 * it holds, checked against fsize before anything is allocated. */
static mrm_status npy_parse_header(const uint8_t *pre, size_t avail, unsigned long long fsize, const char *path, int *ndim,
                                   long long shape[4], size_t *data_off, size_t *count_out, mrm_error *err) {
    if (fsize < 10 || avail < 10) return mrm_fail(err, MRM_ERR_FORMAT, "%s: %llu bytes, too short for a .npy file", path, fsize);
    if (memcmp(pre, "\x93NUMPY", 6) != 0) return mrm_fail(err, MRM_ERR_FORMAT, "%s: bad magic (not a .npy file)", path);
    unsigned long long hlen, hstart;
    if (pre[6] == 1) {
        hlen = (unsigned long long)pre[8] | ((unsigned long long)pre[9] << 8);
        hstart = 10;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fsize < 12 || avail < 12) return mrm_fail(err, MRM_ERR_FORMAT, "%s: truncated preamble", path);
        hlen = (unsigned long long)pre[8] | ((unsigned long long)pre[9] << 8) | ((unsigned long long)pre[10] << 16) |
               ((unsigned long long)pre[11] << 24);
        hstart = 12;
    } else {
        return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: .npy format version %d.%d not supported", path, pre[6], pre[7]);
    }
    if (hlen > 65536 || hstart + hlen > fsize || hstart + hlen > avail)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: header length %llu goes beyond the file (%llu bytes)", path, hlen, fsize);
    char *dict = malloc((size_t)hlen + 1);
    if (!dict) return mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate the header", path);
    memcpy(dict, pre + hstart, (size_t)hlen);
    dict[hlen] = '\0';
    mrm_status rc = npy_parse_dict(dict, hlen, hstart, fsize, path, ndim, shape, data_off, count_out, err);
    free(dict);
    return rc;
}

/* The header's dict (hlen characters, NUL-terminated) of a file of fsize bytes. */
static mrm_status npy_parse_dict(const char *dict, unsigned long long hlen, unsigned long long hstart,
                                 unsigned long long fsize, const char *path, int *ndim, long long shape[4], size_t *data_off,
                                 size_t *count_out, mrm_error *err) {
    if (strlen(dict) != hlen) return mrm_fail(err, MRM_ERR_FORMAT, "%s: header contains a NUL byte", path);
    const char *p = npy_find_key(dict, "descr");
    if (!p) return mrm_fail(err, MRM_ERR_FORMAT, "%s: header: no 'descr' key", path);
    if (strncmp(p, "'<f4'", 5) != 0 && strncmp(p, "\"<f4\"", 5) != 0) {
        char d[24] = {0};
        size_t k = 0;
        while (p[k] && p[k] != ',' && p[k] != '}' && k < sizeof d - 1) d[k] = p[k], k++;
        return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: header: descr %s is not '<f4' (little-endian float32)", path, d);
    }
    p = npy_find_key(dict, "fortran_order");
    if (!p) return mrm_fail(err, MRM_ERR_FORMAT, "%s: header: no 'fortran_order' key", path);
    if (strncmp(p, "False", 5) != 0)
        return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: header: fortran_order is not False (only C order is read)", path);
    p = npy_find_key(dict, "shape");
    if (!p || *p != '(') return mrm_fail(err, MRM_ERR_FORMAT, "%s: header: no 'shape' tuple", path);
    p++;
    int nd = 0;
    unsigned long long count = 1;
    for (;;) {
        while (*p == ' ') p++;
        if (*p == ')') break;
        if (!isdigit((unsigned char)*p))
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: header: shape: bad dimension at '%.10s'", path, p);
        if (nd == NPY_MAX_NDIM)
            return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: header: shape has more than %d dimensions", path, NPY_MAX_NDIM);
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (errno || v > (unsigned long long)NPY_MAX_ELEMENTS)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: header: shape: dimension %d is absurd", path, nd);
        shape[nd++] = (long long)v;
        if (v && count > (unsigned long long)NPY_MAX_ELEMENTS / v)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: header: shape is absurd (more than 2^40 elements)", path);
        count *= v;
        p = end;
        while (*p == ' ') p++;
        if (*p == ',') p++;
        else if (*p != ')') return mrm_fail(err, MRM_ERR_FORMAT, "%s: header: shape: expected ',' or ')' at '%.10s'", path, p);
    }
    /* the shape must account for the file's bytes exactly, before anything is allocated for it */
    unsigned long long need = hstart + hlen + count * 4ULL;
    if (need != fsize)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: shape needs %llu data bytes but the file has %llu", path, count * 4ULL,
                        fsize - hstart - hlen);
    *ndim = nd;
    *data_off = (size_t)(hstart + hlen);
    *count_out = (size_t)count;
    return MRM_OK;
}

mrm_status mrm_npy_read_f32_mem(const void *buf, size_t len, const char *name, float **data, int *ndim, long long shape[4],
                                mrm_error *err) {
    *data = NULL;
    *ndim = 0;
    for (int i = 0; i < 4; i++) shape[i] = 0;
    if (!name) name = "(memory)";
    if (!buf && len) return mrm_fail(err, MRM_ERR_INVALID, "%s: no buffer", name);
    int nd;
    long long sh[4] = {0, 0, 0, 0};
    size_t off, count;
    mrm_status rc = npy_parse_header(buf, len, len, name, &nd, sh, &off, &count, err);
    if (rc) return rc;
    float *out = malloc(count ? count * sizeof(float) : 1);
    if (!out) return mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate %zu floats", name, count);
    if (count) memcpy(out, (const uint8_t *)buf + off, count * sizeof(float)); /* little-endian host, as the writer */
    *data = out;
    *ndim = nd;
    memcpy(shape, sh, sizeof sh);
    return MRM_OK;
}

mrm_status mrm_npy_read_f32(const char *path, float **data, int *ndim, long long shape[4], mrm_error *err) {
    *data = NULL;
    *ndim = 0;
    for (int i = 0; i < 4; i++) shape[i] = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return mrm_fail(err, errno == ENOENT ? MRM_ERR_NOTFOUND : MRM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return mrm_fail(err, MRM_ERR_IO, "%s: not a regular file", path);
    }
    unsigned long long fsize = (unsigned long long)st.st_size;
    /* the preamble and header: at most 12 + 65536 bytes */
    size_t want = fsize < 12 + 65536 ? (size_t)fsize : 12 + 65536;
    uint8_t *head = malloc(want ? want : 1);
    if (!head) {
        fclose(f);
        return mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate the header", path);
    }
    size_t got = fread(head, 1, want, f);
    int nd = 0;
    long long sh[4] = {0, 0, 0, 0};
    size_t off = 0, count = 0;
    mrm_status rc = got != want ? mrm_fail(err, MRM_ERR_IO, "%s: cannot read the header", path)
                                : npy_parse_header(head, got, fsize, path, &nd, sh, &off, &count, err);
    free(head);
    float *out = NULL;
    if (!rc) {
        out = malloc(count ? count * sizeof(float) : 1);
        if (!out) rc = mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate %zu floats", path, count);
    }
    if (!rc && count && (fseeko(f, (off_t)off, SEEK_SET) != 0 || fread(out, sizeof(float), count, f) != count))
        rc = mrm_fail(err, MRM_ERR_IO, "%s: cannot read the data", path);
    fclose(f);
    if (rc) {
        free(out);
        return rc;
    }
    *data = out;
    *ndim = nd;
    memcpy(shape, sh, sizeof sh);
    return MRM_OK;
}

mrm_status mrm_npy_map_f32(const char *path, mrm_npy_map *map, mrm_error *err) {
    memset(map, 0, sizeof *map);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mrm_fail(err, errno == ENOENT ? MRM_ERR_NOTFOUND : MRM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return mrm_fail(err, MRM_ERR_IO, "%s: not a regular file", path);
    }
    unsigned long long fsize = (unsigned long long)st.st_size;
    if (fsize > (unsigned long long)SIZE_MAX) {
        close(fd);
        return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: %llu bytes, more than this machine can map", path, fsize);
    }
    /* the preamble and header (at most 12 + 65536 bytes) are read, parsed and checked against the
     * file's size before anything is mapped */
    size_t want = fsize < 12 + 65536 ? (size_t)fsize : 12 + 65536;
    uint8_t *head = malloc(want ? want : 1);
    if (!head) {
        close(fd);
        return mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate the header", path);
    }
    size_t got = 0;
    while (got < want) {
        ssize_t r = pread(fd, head + got, want - got, (off_t)got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    int nd = 0;
    long long sh[4] = {0, 0, 0, 0};
    size_t off = 0, count = 0;
    mrm_status rc = got != want ? mrm_fail(err, MRM_ERR_IO, "%s: cannot read the header: %s", path,
                                           errno ? strerror(errno) : "the file is shorter than it was")
                                : npy_parse_header(head, got, fsize, path, &nd, sh, &off, &count, err);
    free(head);
    if (!rc && count && off % sizeof(float) != 0) {
        /* the values do not start at a float boundary (numpy aligns them to 64 bytes; another
         * writer may not): read them into memory instead */
        float *copy = malloc(count * sizeof(float));
        if (!copy) rc = mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate %zu floats", path, count);
        size_t done = 0, bytes = count * sizeof(float);
        while (!rc && done < bytes) {
            ssize_t r = pread(fd, (char *)copy + done, bytes - done, (off_t)(off + done));
            if (r <= 0) rc = mrm_fail(err, MRM_ERR_IO, "%s: cannot read the data: %s", path, r ? strerror(errno) : "file truncated");
            else done += (size_t)r;
        }
        if (rc) free(copy);
        else map->owned_ = copy, map->data = copy;
    } else if (!rc && count) {
        void *base = mmap(NULL, (size_t)fsize, PROT_READ, MAP_SHARED, fd, 0);
        if (base == MAP_FAILED) rc = mrm_fail(err, MRM_ERR_IO, "%s: cannot map %llu bytes: %s", path, fsize, strerror(errno));
        else map->base_ = base, map->len_ = (size_t)fsize, map->data = (const float *)((const char *)base + off);
    }
    close(fd);
    if (rc) {
        memset(map, 0, sizeof *map);
        return rc;
    }
    map->count = count;
    map->ndim = nd;
    memcpy(map->shape, sh, sizeof sh);
    return MRM_OK;
}

void mrm_npy_map_advise(const mrm_npy_map *map, int advice, size_t first, size_t count) {
    if (!map->base_ || first >= map->count) return;
    if (count == 0 || count > map->count - first) count = map->count - first;
    /* the byte range of those values, widened to whole pages of the mapping */
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t lo = (size_t)((const char *)(map->data + first) - (const char *)map->base_);
    size_t hi = lo + count * sizeof(float);
    lo -= lo % page;
    hi = hi > map->len_ - map->len_ % page ? map->len_ : (hi + page - 1) / page * page;
    if (hi > map->len_) hi = map->len_;
    int a = advice == MRM_NPY_SEQUENTIAL ? MADV_SEQUENTIAL : advice == MRM_NPY_DONTNEED ? MADV_DONTNEED : MADV_NORMAL;
    (void)madvise((char *)map->base_ + lo, hi - lo, a); /* advice only */
}

void mrm_npy_unmap(mrm_npy_map *map) {
    if (map->base_) munmap(map->base_, map->len_);
    free(map->owned_);
    memset(map, 0, sizeof *map);
}

mrm_status mrm_check_finite_f32(const char *path, const float *data, int ndim, const long long *shape, mrm_error *err) {
    size_t count = 1;
    for (int i = 0; i < ndim; i++) count *= (size_t)(shape[i] > 0 ? shape[i] : 0);
    for (size_t k = 0; k < count; k++) {
        if (isfinite(data[k])) continue;
        char idx[160];
        size_t used = 0, rest = k;
        long long at[8] = {0};
        for (int i = ndim - 1; i >= 0 && i < 8; i--) {
            at[i] = (long long)(rest % (size_t)shape[i]);
            rest /= (size_t)shape[i];
        }
        idx[0] = '\0';
        for (int i = 0; i < ndim && i < 8 && used < sizeof idx; i++)
            used += (size_t)snprintf(idx + used, sizeof idx - used, "%s%lld", i ? ", " : "", at[i]);
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: element [%s] (flat index %zu) is %s; the values must be finite", path, idx, k,
                        isnan(data[k]) ? "nan" : data[k] > 0 ? "inf" : "-inf");
    }
    return MRM_OK;
}
