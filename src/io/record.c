/* mrm_record_read: a record by name, by its ".hea", or an original CPSC2018 ".mat". */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "io/wfdb.h"

#define MAX_HEADER_BYTES (16u << 20)

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

void mrm_record_free(mrm_record *rec) {
    if (!rec) return;
    free(rec->signals);
    free(rec->checks);
    free(rec->data);
    for (int i = 0; i < rec->n_comments; i++) free(rec->comments[i]);
    free(rec->comments);
    memset(rec, 0, sizeof *rec);
    rec->age = -1;
}

static mrm_status read_wfdb(mrm_record *rec, const char *header_path, int flags, mrm_error *err) {
    char *text = NULL;
    size_t len = 0;
    mrm_status st = mrm_read_file(header_path, MAX_HEADER_BYTES, &text, &len, err);
    if (st) return st;
    wfdb_header_extra extra;
    st = wfdb_header_parse(text, len, header_path, rec, &extra, err);
    free(text);
    if (st) return st;
    char dir[4096];
    const char *slash = strrchr(header_path, '/');
    if (slash)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - header_path) ? (int)(slash - header_path) : 1, header_path);
    else
        snprintf(dir, sizeof dir, ".");
    st = wfdb_read_signals(rec, &extra, dir, header_path, flags, err);
    wfdb_header_extra_free(&extra);
    return st;
}

mrm_status mrm_record_read(mrm_record *rec, const char *path, int flags, mrm_error *err) {
    memset(rec, 0, sizeof *rec);
    rec->age = -1;
    if (!path || !*path) return mrm_fail(err, MRM_ERR_INVALID, "record path is empty");
    size_t n = strlen(path);
    if (n + 5 > 4096) return mrm_fail(err, MRM_ERR_INVALID, "%.64s...: record path too long", path);
    char hea[4096];
    mrm_status st;
    if (ends_with(path, ".hea")) {
        st = read_wfdb(rec, path, flags, err);
    } else if (ends_with(path, ".mat")) {
        /* Challenge 2020 style: a WFDB header beside the .mat reads it as format 16. */
        snprintf(hea, sizeof hea, "%.*s.hea", (int)(n - 4), path);
        if (is_file(hea))
            st = read_wfdb(rec, hea, flags, err);
        else if (!is_file(path))
            st = mrm_fail(err, MRM_ERR_NOTFOUND, "%s: not found", path);
        else
            st = mat_read_cpsc_v5(rec, path, err);
    } else {
        snprintf(hea, sizeof hea, "%s.hea", path);
        char mat[4096];
        snprintf(mat, sizeof mat, "%s.mat", path);
        if (is_file(hea))
            st = read_wfdb(rec, hea, flags, err);
        else if (is_file(mat))
            st = mat_read_cpsc_v5(rec, mat, err);
        else
            st = mrm_fail(err, MRM_ERR_NOTFOUND, "record '%s': neither %s nor %s exists", path, hea, mat);
    }
    if (st) {
        mrm_record_free(rec);
    } else if (flags & MRM_READ_HEADER_ONLY) {
        free(rec->data); /* a MATLAB v5 record is read whole; keep the promise of the flag */
        rec->data = NULL;
    }
    return st;
}
