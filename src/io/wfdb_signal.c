/* WFDB signal files: storage formats, decoding, and reading a record's samples.
 *
 * Formats (all little-endian unless said otherwise; "invalid" is the digital value WFDB reads as
 * a missing sample, which becomes NaN):
 *   8    8-bit first differences, summed from the initial value      (no invalid code)
 *   16   16-bit two's complement                                      invalid -32768
 *   24   24-bit two's complement                                      invalid -8388608
 *   32   32-bit two's complement                                      invalid -2147483648
 *   61   16-bit two's complement, big-endian                          invalid -32768
 *   80   8-bit offset binary (byte - 128)                             invalid -128
 *   160  16-bit offset binary (value - 32768)                         invalid -32768
 *   212  two 12-bit samples in 3 bytes                                invalid -2048
 *   310  three 10-bit samples in two 16-bit words (bits 1-10, 11-15)  invalid -512
 *   311  three 10-bit samples in one 32-bit word (bits 0-9, 10-19, 20-29)  invalid -512
 * The packed formats pack the sample stream of the file (all its signals, frame after frame). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "io/wfdb.h"

int wfdb_format_supported(int format) {
    switch (format) {
    case 8: case 16: case 24: case 32: case 61: case 80: case 160: case 212: case 310: case 311: return 1;
    default: return 0;
    }
}

long long wfdb_format_bytes(int format, long long n) {
    if (n < 0 || n > LLONG_MAX / 8) return -1;
    switch (format) {
    case 8: case 80: return n;
    case 16: case 61: case 160: return 2 * n;
    case 24: return 3 * n;
    case 32: return 4 * n;
    case 212: return (3 * n + 1) / 2;
    case 310: return 4 * (n / 3) + (n % 3 == 1 ? 2 : n % 3 == 2 ? 4 : 0);
    case 311: return 4 * (n / 3) + (n % 3 == 1 ? 2 : n % 3 == 2 ? 3 : 0);
    default: return -1;
    }
}

long long wfdb_format_values(int format, long long b) {
    if (b < 0) return 0;
    switch (format) {
    case 8: case 80: return b;
    case 16: case 61: case 160: return b / 2;
    case 24: return b / 3;
    case 32: return b / 4;
    case 212: return (b / 3) * 2 + (b % 3 >= 2 ? 1 : 0);
    case 310: return (b / 4) * 3 + (b % 4 >= 2 ? 1 : 0);
    case 311: return (b / 4) * 3 + (b % 4 == 3 ? 2 : b % 4 == 2 ? 1 : 0);
    default: return 0;
    }
}

int32_t wfdb_invalid_code(int format, int *has) {
    *has = 1;
    switch (format) {
    case 16: case 61: case 160: return -32768;
    case 24: return -8388608;
    case 32: return INT32_MIN;
    case 80: return -128;
    case 212: return -2048;
    case 310: case 311: return -512;
    default: *has = 0; return 0;
    }
}

static inline int32_t sign_extend(uint32_t v, int bits) {
    uint32_t m = 1u << (bits - 1);
    return (int32_t)((v ^ m) - m);
}

void wfdb_decode(int format, const uint8_t *b, int k, long long n_frames, const int *init_values, int32_t *out) {
    long long m = n_frames * k; /* values in the sample stream */
    switch (format) {
    case 8: {
        /* Running sums per signal, in unsigned arithmetic so a wrap is defined. */
        for (int j = 0; j < k; j++) {
            uint32_t acc = (uint32_t)init_values[j];
            for (long long t = 0; t < n_frames; t++) {
                acc += (uint32_t)(int32_t)(int8_t)b[t * k + j];
                out[t * k + j] = (int32_t)acc;
            }
        }
        break;
    }
    case 16:
        for (long long i = 0; i < m; i++) out[i] = sign_extend((uint32_t)b[2 * i] | (uint32_t)b[2 * i + 1] << 8, 16);
        break;
    case 61:
        for (long long i = 0; i < m; i++) out[i] = sign_extend((uint32_t)b[2 * i] << 8 | (uint32_t)b[2 * i + 1], 16);
        break;
    case 160:
        for (long long i = 0; i < m; i++) out[i] = (int32_t)((uint32_t)b[2 * i] | (uint32_t)b[2 * i + 1] << 8) - 32768;
        break;
    case 24:
        for (long long i = 0; i < m; i++)
            out[i] = sign_extend((uint32_t)b[3 * i] | (uint32_t)b[3 * i + 1] << 8 | (uint32_t)b[3 * i + 2] << 16, 24);
        break;
    case 32:
        for (long long i = 0; i < m; i++)
            out[i] = (int32_t)((uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 | (uint32_t)b[4 * i + 2] << 16 |
                               (uint32_t)b[4 * i + 3] << 24);
        break;
    case 80:
        for (long long i = 0; i < m; i++) out[i] = (int32_t)b[i] - 128;
        break;
    case 212:
        for (long long i = 0; i < m; i++) {
            const uint8_t *p = b + (i / 2) * 3;
            uint32_t v = (i & 1) ? ((uint32_t)p[2] | (uint32_t)(p[1] & 0xf0) << 4) : ((uint32_t)p[0] | (uint32_t)(p[1] & 0x0f) << 8);
            out[i] = sign_extend(v, 12);
        }
        break;
    case 310:
        for (long long i = 0; i < m; i++) {
            const uint8_t *p = b + (i / 3) * 4;
            uint32_t w0 = (uint32_t)p[0] | (uint32_t)p[1] << 8, w1 = (uint32_t)p[2] | (uint32_t)p[3] << 8, v;
            switch (i % 3) {
            case 0: v = (w0 >> 1) & 0x3ff; break;
            case 1: v = (w1 >> 1) & 0x3ff; break;
            default: v = ((w0 >> 11) & 0x1f) | ((w1 >> 11) & 0x1f) << 5; break;
            }
            out[i] = sign_extend(v, 10);
        }
        break;
    case 311:
        for (long long i = 0; i < m; i++) {
            const uint8_t *p = b + (i / 3) * 4;
            uint32_t w = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            out[i] = sign_extend((w >> (10 * (i % 3))) & 0x3ff, 10);
        }
        break;
    default: break;
    }
}

/* A run of consecutive signals stored in one file. */
typedef struct signal_group {
    int first, count; /* signals [first, first + count) */
    char *path;      /* the file's path (its name when read from memory); owned */
    long long file_size;
    const uint8_t *mem; /* the file's bytes when the record is read from memory, else NULL */
} signal_group;

static int ends_with_ci(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcasecmp(s + n - m, suffix);
}

/* Finds the groups and the size of each file: on disk in `dir`, or among files[n_files] when
 * the record is read from memory (files != NULL). */
static mrm_status find_groups(const mrm_record *rec, const wfdb_header_extra *extra, const char *dir, const mrm_mem_file *files,
                              int n_files, const char *hp, signal_group *groups, int *n_groups, mrm_error *err) {
    int g = 0;
    for (int s = 0; s < rec->n_signals; s++) {
        if (s > 0 && !strcmp(rec->signals[s].file, rec->signals[s - 1].file)) {
            groups[g - 1].count++;
            continue;
        }
        signal_group *G = &groups[g++];
        G->first = s;
        G->count = 1;
        const char *file = rec->signals[s].file;
        if (files) {
            int k = 0;
            while (k < n_files && !(files[k].name && !strcmp(files[k].name, file))) k++;
            if (k == n_files)
                return mrm_fail(err, MRM_ERR_NOTFOUND, "%s:%d: signal %d: signal file '%s': not found", hp, extra->signal_line[s], s + 1,
                                file);
            if (!files[k].data && files[k].len)
                return mrm_fail(err, MRM_ERR_INVALID, "%s:%d: signal file '%s': no buffer", hp, extra->signal_line[s], file);
            if (!(G->path = strdup(file))) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", hp);
            G->mem = files[k].data ? files[k].data : (const uint8_t *)"";
            G->file_size = files[k].len > (size_t)LLONG_MAX ? LLONG_MAX : (long long)files[k].len;
            continue;
        }
        char path[4096];
        if (file[0] == '/' ? snprintf(path, sizeof path, "%s", file) >= (int)sizeof path
                           : mrm_path_join(path, sizeof path, dir, file))
            return mrm_fail(err, MRM_ERR_INVALID, "%s:%d: signal %d: file name: path too long", hp, extra->signal_line[s], s + 1);
        if (!(G->path = strdup(path))) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", hp);
        struct stat st;
        if (stat(G->path, &st) != 0)
            return mrm_fail(err, errno == ENOENT ? MRM_ERR_NOTFOUND : MRM_ERR_IO, "%s:%d: signal %d: signal file '%s': %s", hp,
                            extra->signal_line[s], s + 1, G->path, errno == ENOENT ? "not found" : strerror(errno));
        if (!S_ISREG(st.st_mode))
            return mrm_fail(err, MRM_ERR_IO, "%s:%d: signal %d: signal file '%s' is not a regular file", hp, extra->signal_line[s],
                            s + 1, G->path);
        /* inside the folder the header was named in, or (a folder of links to records) inside the
         * folder the header itself resolves to */
        int inside = mrm_path_inside(dir, G->path);
        if (inside == 0) {
            char *real = realpath(hp, NULL), *slash = real ? strrchr(real, '/') : NULL;
            if (slash) {
                *slash = '\0';
                inside = mrm_path_inside(real[0] ? real : "/", G->path);
            }
            free(real);
            if (inside < 0) inside = 0;
        }
        if (inside != 1)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: signal %d: signal file '%s' %s; refused", hp, extra->signal_line[s], s + 1,
                            G->path, inside == 0 ? "is a link that leads out of the record's folder" : "cannot be resolved");
        G->file_size = (long long)st.st_size;
    }
    *n_groups = g;
    return MRM_OK;
}

/* Checks that a group's file holds n_samples frames after its offset; sets *need to their bytes. */
static mrm_status check_group_size(const mrm_record *rec, const wfdb_header_extra *extra, const signal_group *G,
                                   const char *hp, long long *need, mrm_error *err) {
    const mrm_signal_info *si = &rec->signals[G->first];
    int line = extra->signal_line[G->first], k = G->count;
    long long n = rec->n_samples, values;
    *need = -1;
    if (!__builtin_mul_overflow(n, (long long)k, &values)) *need = wfdb_format_bytes(si->format, values);
    if (*need < 0 || *need > LLONG_MAX - si->byte_offset || (unsigned long long)*need > SIZE_MAX - 8)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: signal %d: %lld samples of %d signal(s) in format %d overflow a file size", hp,
                        line, G->first + 1, n, k, si->format);
    if (si->byte_offset + *need > G->file_size)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: signal %d: signal file '%s' is truncated: %lld samples of %d signal(s) in "
                        "format %d need %lld bytes after an offset of %lld (%lld in all), the file has %lld bytes", hp, line,
                        G->first + 1, G->path, n, k, si->format, *need, si->byte_offset, *need + si->byte_offset, G->file_size);
    return MRM_OK;
}

/* Reads one group's bytes and decodes them into digital[n_samples * count] (frame-major). */
static mrm_status read_group(const mrm_record *rec, const wfdb_header_extra *extra, const signal_group *G, const char *hp,
                             int32_t *digital, mrm_error *err) {
    const mrm_signal_info *si = &rec->signals[G->first];
    int line = extra->signal_line[G->first], k = G->count;
    long long n = rec->n_samples, need;
    mrm_status st = check_group_size(rec, extra, G, hp, &need, err);
    if (st) return st;
    uint8_t *bytes = malloc((size_t)need + 4);
    if (!bytes) return mrm_fail(err, MRM_ERR_NOMEM, "%s:%d: signal file '%s': cannot allocate %lld bytes", hp, line, G->path, need);
    memset(bytes + need, 0, 4);
    FILE *f = G->mem ? NULL : fopen(G->path, "rb");
    if (G->mem) {
        memcpy(bytes, G->mem + si->byte_offset, (size_t)need); /* check_group_size: inside the buffer */
        if (si->byte_offset > 0 && ends_with_ci(si->file, ".mat") && si->format == 16) {
            size_t hl = si->byte_offset < 128 ? (size_t)si->byte_offset : 128;
            st = mat_check_v4_header(G->path, G->mem, hl, si->byte_offset, k, n, G->file_size, err);
            if (st) mrm_error_prefix(err, "%s:%d", hp, line);
        }
    } else if (!f) {
        st = mrm_fail(err, MRM_ERR_IO, "%s:%d: signal file '%s': cannot open: %s", hp, line, G->path, strerror(errno));
    } else {
        size_t got = 0;
        if (fseeko(f, (off_t)si->byte_offset, SEEK_SET) == 0) got = fread(bytes, 1, (size_t)need, f);
        if (got != (size_t)need)
            st = mrm_fail(err, MRM_ERR_IO, "%s:%d: signal file '%s': read %zu of %lld bytes at offset %lld", hp, line, G->path, got,
                          need, si->byte_offset);
        /* A MATLAB v4 signal file (Challenge 2020): its own header must agree with ours. */
        if (!st && si->byte_offset > 0 && ends_with_ci(si->file, ".mat")) {
            uint8_t head[128];
            size_t hl = si->byte_offset < (long long)sizeof head ? (size_t)si->byte_offset : sizeof head;
            if (fseeko(f, 0, SEEK_SET) || fread(head, 1, hl, f) != hl)
                st = mrm_fail(err, MRM_ERR_IO, "%s:%d: signal file '%s': cannot read its first %zu bytes", hp, line, G->path, hl);
            else if (si->format == 16)
                st = mat_check_v4_header(G->path, head, hl, si->byte_offset, k, n, G->file_size, err);
            if (st) mrm_error_prefix(err, "%s:%d", hp, line);
        }
        fclose(f);
    }
    int *init = st ? NULL : malloc((size_t)k * sizeof *init);
    if (!st && !init) st = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", hp);
    if (!st) {
        for (int j = 0; j < k; j++) init[j] = rec->signals[G->first + j].init_value;
        wfdb_decode(si->format, bytes, k, n, init, digital);
    }
    free(init);
    free(bytes);
    return st;
}

static mrm_status read_signals(mrm_record *rec, const wfdb_header_extra *extra, const char *dir, const mrm_mem_file *files,
                               int n_files, const char *hp, int flags, mrm_error *err) {
    if (rec->n_signals == 0) {
        if (!extra->n_samples_given) rec->n_samples = 0;
        if (flags & MRM_READ_HEADER_ONLY) return MRM_OK;
        return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: record '%s' has no signals", hp, rec->name);
    }
    signal_group *groups = calloc((size_t)rec->n_signals, sizeof *groups);
    if (!groups) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", hp);
    int n_groups = 0, *first = NULL; /* first: each signal's first digital sample */
    mrm_status st = find_groups(rec, extra, dir, files, n_files, hp, groups, &n_groups, err);
    if (st) goto done;

    /* No sample count in the header: as many whole frames as the shortest file holds. */
    if (!extra->n_samples_given) {
        long long n = LLONG_MAX;
        for (int g = 0; g < n_groups; g++) {
            const mrm_signal_info *si = &rec->signals[groups[g].first];
            long long avail = groups[g].file_size - si->byte_offset;
            if (avail < 0) {
                st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: signal %d: signal file '%s' has %lld bytes, fewer than its byte offset %lld",
                              hp, extra->signal_line[groups[g].first], groups[g].first + 1, groups[g].path, groups[g].file_size,
                              si->byte_offset);
                goto done;
            }
            long long frames = wfdb_format_values(si->format, avail) / groups[g].count;
            if (frames < n) n = frames;
        }
        rec->n_samples = n;
    }
    if (flags & MRM_READ_HEADER_ONLY) goto done;

    size_t total, bytes;
    if (mrm_mul_size((size_t)rec->n_signals, (size_t)rec->n_samples, &total) || mrm_mul_size(total, sizeof(double), &bytes)) {
        st = mrm_fail(err, MRM_ERR_NOMEM, "%s: %d signals x %lld samples do not fit in memory", hp, rec->n_signals, rec->n_samples);
        goto done;
    }
    /* Size checks come first, so a header claiming absurd counts fails before any allocation. */
    for (int g = 0; g < n_groups && !st; g++) {
        long long need;
        st = check_group_size(rec, extra, &groups[g], hp, &need, err);
    }
    if (st) goto done;
    first = malloc((size_t)rec->n_signals * sizeof *first);
    rec->data = malloc(bytes ? bytes : 1);
    rec->checks = calloc((size_t)rec->n_signals, sizeof *rec->checks);
    if (!rec->data || !rec->checks || !first) {
        st = mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate %zu bytes for the samples", hp, bytes);
        goto done;
    }
    long long n = rec->n_samples;
    for (int g = 0; g < n_groups && !st; g++) {
        const signal_group *G = &groups[g];
        int k = G->count;
        int32_t *digital = malloc((size_t)n * (size_t)k * sizeof *digital + 1);
        if (!digital) {
            st = mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate the samples of '%s'", hp, G->path);
            break;
        }
        st = read_group(rec, extra, G, hp, digital, err);
        for (int j = 0; j < k && !st; j++) {
            int s = G->first + j;
            const mrm_signal_info *si = &rec->signals[s];
            int has_invalid;
            int32_t invalid = wfdb_invalid_code(si->format, &has_invalid);
            double *row = rec->data + (size_t)s * (size_t)n;
            uint32_t sum = 0;
            for (long long t = 0; t < n; t++) {
                int32_t d = digital[t * k + j];
                sum += (uint32_t)d;
                row[t] = has_invalid && d == invalid ? NAN : ((double)d - (double)si->baseline) / si->gain;
            }
            first[s] = n > 0 ? digital[j] : 0;
            mrm_signal_check *c = &rec->checks[s];
            c->computed_checksum = (int)(sum & 0xffff);
            c->checksum_ok = si->has_checksum ? ((uint32_t)si->checksum & 0xffff) == (sum & 0xffff) : -1;
            /* Format 8 starts its differences from the initial value, so there is nothing to compare. */
            c->init_value_ok = si->has_init_value && n > 0 && si->format != 8 ? digital[j] == si->init_value : -1;
        }
        free(digital);
    }
    if (st) goto done;
    if (flags & MRM_READ_STRICT) {
        for (int s = 0; s < rec->n_signals; s++) {
            const mrm_signal_info *si = &rec->signals[s];
            const mrm_signal_check *c = &rec->checks[s];
            if (c->checksum_ok == 0) {
                st = mrm_fail(err, MRM_ERR_CHECK, "%s:%d: signal %d (%s): checksum: the header says %d, the samples sum to %d (mod 65536)",
                              hp, extra->signal_line[s], s + 1, si->description, si->checksum, c->computed_checksum);
                break;
            }
            if (c->init_value_ok == 0) {
                st = mrm_fail(err, MRM_ERR_CHECK, "%s:%d: signal %d (%s): initial value: the header says %d, the first sample is %d",
                              hp, extra->signal_line[s], s + 1, si->description, si->init_value, first[s]);
                break;
            }
        }
    }
done:
    free(first);
    for (int g = 0; g < rec->n_signals; g++) free(groups[g].path);
    free(groups);
    return st;
}

mrm_status wfdb_read_signals(mrm_record *rec, const wfdb_header_extra *extra, const char *dir, const char *hp, int flags,
                             mrm_error *err) {
    return read_signals(rec, extra, dir, NULL, 0, hp, flags, err);
}

mrm_status wfdb_read_signals_mem(mrm_record *rec, const wfdb_header_extra *extra, const mrm_mem_file *files, int n_files,
                                 const char *hp, int flags, mrm_error *err) {
    static const mrm_mem_file none = {NULL, NULL, 0};
    return read_signals(rec, extra, NULL, files ? files : &none, files ? n_files : 0, hp, flags, err);
}
