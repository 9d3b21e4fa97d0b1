#include "common/fileutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"

mrm_status mrm_read_file(const char *path, size_t max_bytes, char **data, size_t *len, mrm_error *err) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return mrm_fail(err, errno == ENOENT ? MRM_ERR_NOTFOUND : MRM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return mrm_fail(err, MRM_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > (uint64_t)max_bytes) {
        fclose(f);
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: file is %lld bytes, more than the %zu allowed", path,
                        (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, n + 1);
    }
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != n) {
        free(buf);
        return mrm_fail(err, MRM_ERR_IO, "%s: read %zu of %zu bytes", path, got, n);
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return MRM_OK;
}

FILE *mrm_atomic_open(mrm_atomic_file *a, const char *path, mrm_error *err) {
    memset(a, 0, sizeof *a);
    if (snprintf(a->path, sizeof a->path, "%s", path) >= (int)sizeof a->path ||
        snprintf(a->tmp, sizeof a->tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof a->tmp) {
        mrm_fail(err, MRM_ERR_INVALID, "%s: path too long", path);
        return NULL;
    }
    a->f = fopen(a->tmp, "wb");
    if (!a->f) mrm_fail(err, MRM_ERR_IO, "%s: cannot create: %s", a->tmp, strerror(errno));
    return a->f;
}

mrm_status mrm_atomic_commit(mrm_atomic_file *a, mrm_error *err) {
    if (!a->f) return mrm_fail(err, MRM_ERR_IO, "%s: not open", a->path);
    int bad = fflush(a->f) != 0 || ferror(a->f) || fsync(fileno(a->f)) != 0;
    int e = errno;
    if (fclose(a->f) != 0) bad = 1;
    a->f = NULL;
    if (bad) {
        unlink(a->tmp);
        return mrm_fail(err, MRM_ERR_IO, "%s: write failed: %s", a->tmp, strerror(e));
    }
    if (rename(a->tmp, a->path) != 0) {
        e = errno;
        unlink(a->tmp);
        return mrm_fail(err, MRM_ERR_IO, "%s: cannot rename into place: %s", a->path, strerror(e));
    }
    return MRM_OK;
}

void mrm_atomic_abort(mrm_atomic_file *a) {
    if (a->f) fclose(a->f);
    a->f = NULL;
    if (a->tmp[0]) unlink(a->tmp);
}

mrm_status mrm_write_file_atomic(const char *path, const void *data, size_t len, mrm_error *err) {
    mrm_atomic_file a;
    FILE *f = mrm_atomic_open(&a, path, err);
    if (!f) return err ? err->code : MRM_ERR_IO;
    if (len && fwrite(data, 1, len, f) != len) {
        mrm_atomic_abort(&a);
        return mrm_fail(err, MRM_ERR_IO, "%s: write failed", path);
    }
    return mrm_atomic_commit(&a, err);
}

mrm_status mrm_mkdir_p(const char *path, mrm_error *err) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return mrm_fail(err, MRM_ERR_INVALID, "bad folder path '%s'", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return mrm_fail(err, MRM_ERR_IO, "%s: cannot create folder: %s", buf, strerror(errno));
            buf[i] = c;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return mrm_fail(err, MRM_ERR_IO, "%s: not a folder", path);
    return MRM_OK;
}

int mrm_path_join(char *out, size_t outsz, const char *dir, const char *name) {
    size_t dl = strlen(dir);
    int r;
    if (dl == 0 || name[0] == '/')
        r = snprintf(out, outsz, "%s", name);
    else if (dir[dl - 1] == '/')
        r = snprintf(out, outsz, "%s%s", dir, name);
    else
        r = snprintf(out, outsz, "%s/%s", dir, name);
    return (r < 0 || (size_t)r >= outsz) ? -1 : 0;
}

int mrm_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

int mrm_add_size(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return -1;
    *out = a + b;
    return 0;
}
