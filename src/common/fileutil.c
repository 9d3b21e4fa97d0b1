#include "common/fileutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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
        a->tmp[0] = '\0';
        mrm_fail(err, MRM_ERR_INVALID, "%s: path too long", path);
        return NULL;
    }
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        a->tmp[0] = '\0';
        mrm_fail(err, MRM_ERR_IO, "%s: cannot write: it is a folder", path);
        return NULL;
    }
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        /* a device, pipe or socket (/dev/stdout, a FIFO): written in place, never replaced */
        a->tmp[0] = '\0';
        a->direct = 1;
        a->f = fopen(path, "wb");
        if (!a->f) mrm_fail(err, MRM_ERR_IO, "%s: cannot open for writing: %s", path, strerror(errno));
        return a->f;
    }
    a->f = fopen(a->tmp, "wb");
    if (!a->f) {
        int e = errno;
        a->tmp[0] = '\0';
        mrm_fail(err, MRM_ERR_IO, "%s: cannot create: %s", path, strerror(e));
    }
    return a->f;
}

mrm_status mrm_atomic_commit(mrm_atomic_file *a, mrm_error *err) {
    if (!a->f) return mrm_fail(err, MRM_ERR_IO, "%s: not open", a->path);
    int e = 0;
    if (fflush(a->f) != 0 || ferror(a->f)) e = errno ? errno : EIO;
    /* a device or pipe may not support fsync (EINVAL, EROFS): only a regular file must be synced */
    if (!e && !a->direct && fsync(fileno(a->f)) != 0) e = errno;
    errno = 0;
    if (fclose(a->f) != 0 && !e) e = errno ? errno : EIO;
    a->f = NULL;
    if (e) {
        if (a->tmp[0]) unlink(a->tmp);
        return mrm_fail(err, MRM_ERR_IO, "%s: write failed: %s", a->path, strerror(e));
    }
    if (a->tmp[0] && rename(a->tmp, a->path) != 0) {
        e = errno;
        unlink(a->tmp);
        return mrm_fail(err, MRM_ERR_IO, "%s: cannot rename into place: %s", a->path, strerror(e));
    }
    return MRM_OK;
}

void mrm_atomic_abort(mrm_atomic_file *a) {
    int e = errno; /* kept for the caller's message */
    if (a->f) fclose(a->f);
    a->f = NULL;
    if (a->tmp[0]) unlink(a->tmp);
    errno = e;
}

/* A file can be created in `dir`: one is created and removed. */
static mrm_status probe_dir(const char *dir, const char *shown, mrm_error *err) {
    char probe[4096];
    if (snprintf(probe, sizeof probe, "%s/.mrmnet-probe.%ld", dir, (long)getpid()) >= (int)sizeof probe)
        return mrm_fail(err, MRM_ERR_INVALID, "%s: path too long", shown);
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return mrm_fail(err, MRM_ERR_IO, "%s: cannot write in folder '%s': %s", shown, dir, strerror(errno));
    close(fd);
    unlink(probe);
    return MRM_OK;
}

mrm_status mrm_check_output_file(const char *path, mrm_error *err) {
    struct stat st;
    if (!path || !path[0]) return mrm_fail(err, MRM_ERR_INVALID, "empty output path");
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return mrm_fail(err, MRM_ERR_IO, "%s: cannot write: it is a folder", path);
        if (!S_ISREG(st.st_mode)) {
            if (access(path, W_OK) != 0) return mrm_fail(err, MRM_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
            return MRM_OK;
        }
    }
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else if (snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path) >= (int)sizeof dir)
        return mrm_fail(err, MRM_ERR_INVALID, "%s: path too long", path);
    if (stat(dir, &st) != 0) return mrm_fail(err, MRM_ERR_IO, "%s: cannot write: folder '%s': %s", path, dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return mrm_fail(err, MRM_ERR_IO, "%s: cannot write: '%s' is not a folder", path, dir);
    return probe_dir(dir, path, err);
}

mrm_status mrm_check_output_dir(const char *path, mrm_error *err) {
    char dir[4096];
    if (!path || !path[0]) return mrm_fail(err, MRM_ERR_INVALID, "empty output folder");
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) return mrm_fail(err, MRM_ERR_INVALID, "%s: path too long", path);
    /* the folder, or the nearest of its parents that exists (mrm_mkdir_p creates the rest) */
    for (;;) {
        struct stat st;
        if (stat(dir, &st) == 0) {
            if (!S_ISDIR(st.st_mode)) return mrm_fail(err, MRM_ERR_IO, "%s: cannot create the folder: '%s' is not a folder", path, dir);
            return probe_dir(dir, path, err);
        }
        if (errno != ENOENT) return mrm_fail(err, MRM_ERR_IO, "%s: cannot create the folder: '%s': %s", path, dir, strerror(errno));
        char *slash = strrchr(dir, '/');
        while (slash && slash > dir && slash[1] == '\0') { /* trailing slashes */
            *slash = '\0';
            slash = strrchr(dir, '/');
        }
        if (!slash) {
            snprintf(dir, sizeof dir, ".");
        } else if (slash == dir) {
            snprintf(dir, sizeof dir, "/");
        } else {
            *slash = '\0';
        }
    }
}

mrm_status mrm_write_file_atomic(const char *path, const void *data, size_t len, mrm_error *err) {
    mrm_atomic_file a;
    FILE *f = mrm_atomic_open(&a, path, err);
    if (!f) return err ? err->code : MRM_ERR_IO;
    if (len && fwrite(data, 1, len, f) != len) {
        int e = errno;
        mrm_atomic_abort(&a);
        return mrm_fail(err, MRM_ERR_IO, "%s: write failed: %s", path, strerror(e));
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

int mrm_path_escapes(const char *rel) {
    if (rel[0] == '/') return 1;
    for (const char *c = rel; *c;) {
        if (c[0] == '.' && c[1] == '.' && (c[2] == '/' || c[2] == '\0')) return 1;
        const char *slash = strchr(c, '/');
        if (!slash) break;
        c = slash + 1;
    }
    return 0;
}

int mrm_dir_lock(const char *dir, const char *what, mrm_error *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        mrm_fail(err, MRM_ERR_IO, "%s: cannot open the folder: %s", dir, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            mrm_fail(err, MRM_ERR_INVALID, "%s: another process is %s in this folder; wait for it to end, or use another folder", dir, what);
        else
            mrm_fail(err, MRM_ERR_IO, "%s: cannot lock the folder: %s", dir, strerror(e));
        return -1;
    }
    return fd;
}

void mrm_dir_unlock(int fd) {
    if (fd >= 0) close(fd); /* closing the descriptor releases the lock */
}

int mrm_path_inside(const char *dir, const char *path) {
    char *d = realpath(dir && dir[0] ? dir : ".", NULL), *f = realpath(path, NULL);
    int r = -1;
    if (d && f) {
        size_t n = strlen(d);
        r = !strcmp(d, "/") || (!strncmp(f, d, n) && f[n] == '/');
    }
    free(d);
    free(f);
    return r;
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
