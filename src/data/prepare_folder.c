/* prepare's output folder as a whole. The files are written into a new folder beside the target
 * ("<target>.tmp.<pid>"), which takes the target's place only when complete: by a rename when
 * the target is absent or empty, else by an atomic exchange (renameat2 RENAME_EXCHANGE) after
 * which the previous preparation is removed. A kill at any moment leaves the target either as it
 * was or complete and new, never a mix of two preparations; the next `prepare` beside it removes
 * what a killed one left. Only a folder holding nothing but a prepared folder's files is ever
 * replaced, and only when the caller asks. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "data/dataset.h"

/* A file name of a prepared folder (or an atomic write's temporary file). */
static int is_prepared_name(const char *n) {
    if (!strcmp(n, "classes.txt") || !strcmp(n, "prepare.json") || strstr(n, ".tmp.")) return 1;
    for (int s = 0; s < 3; s++) {
        char b[3][32];
        snprintf(b[0], sizeof b[0], "X_%s.npy", mrm_split_names[s]);
        snprintf(b[1], sizeof b[1], "y_%s.npy", mrm_split_names[s]);
        snprintf(b[2], sizeof b[2], "ids_%s.txt", mrm_split_names[s]);
        for (int k = 0; k < 3; k++)
            if (!strcmp(n, b[k])) return 1;
    }
    return 0;
}

typedef struct folder_scan {
    long long n;       /* entries */
    char names[400];   /* the first few, comma-separated */
    char foreign[256]; /* the first that is not a prepared folder's file ("" if none) */
} folder_scan;

/* 0 and fs filled (n = 0 when the folder does not exist); -1 with err when it is not a folder or
 * cannot be read. */
static int scan_folder(const char *dir, folder_scan *fs, mrm_error *err) {
    memset(fs, 0, sizeof *fs);
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return 0;
        mrm_fail(err, errno == ENOTDIR ? MRM_ERR_INVALID : MRM_ERR_IO, "%s: %s", dir,
                 errno == ENOTDIR ? "not a folder" : strerror(errno));
        return -1;
    }
    size_t used = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (fs->n <= 3) {
            int w = snprintf(fs->names + used, sizeof fs->names - used, "%s%s", fs->n ? ", " : "", fs->n < 3 ? e->d_name : "...");
            if (w > 0 && (size_t)w < sizeof fs->names - used) used += (size_t)w;
        }
        if (!fs->foreign[0] && !is_prepared_name(e->d_name)) snprintf(fs->foreign, sizeof fs->foreign, "%s", e->d_name);
        fs->n++;
    }
    closedir(d);
    return 0;
}

mrm_status mrm_prepare_check_out(const char *out_dir, int replace, mrm_error *err) {
    folder_scan fs;
    if (scan_folder(out_dir, &fs, err)) return err ? err->code : MRM_ERR_IO;
    if (fs.n == 0) return MRM_OK;
    if (fs.foreign[0])
        return mrm_fail(err, MRM_ERR_INVALID, "%s: the folder is not empty and holds '%s', which is not a file of a prepared "
                        "folder: prepare into a new or empty folder", out_dir, fs.foreign);
    if (!replace)
        return mrm_fail(err, MRM_ERR_INVALID, "%s: the folder already holds a prepared dataset (%s): prepare into a new "
                        "folder, or replace it with --force", out_dir, fs.names);
    return MRM_OK;
}

/* Removes a folder that holds only a prepared folder's files; anything else is left alone. */
static mrm_status remove_prepared(const char *dir, mrm_error *err) {
    folder_scan fs;
    if (scan_folder(dir, &fs, err)) return err ? err->code : MRM_ERR_IO;
    if (fs.foreign[0]) return mrm_fail(err, MRM_ERR_INVALID, "%s: holds '%s': not removed", dir, fs.foreign);
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? MRM_OK : mrm_fail(err, MRM_ERR_IO, "%s: %s", dir, strerror(errno));
    struct dirent *e;
    mrm_status st = MRM_OK;
    while (!st && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[4096];
        if (mrm_path_join(p, sizeof p, dir, e->d_name) || (unlink(p) != 0 && errno != ENOENT))
            st = mrm_fail(err, MRM_ERR_IO, "%s/%s: cannot remove: %s", dir, e->d_name, strerror(errno));
    }
    closedir(d);
    if (!st && rmdir(dir) != 0) st = mrm_fail(err, MRM_ERR_IO, "%s: cannot remove: %s", dir, strerror(errno));
    return st;
}

static mrm_status sync_dir(const char *dir, mrm_error *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return mrm_fail(err, MRM_ERR_IO, "%s: cannot open: %s", dir, strerror(errno));
    int bad = fsync(fd) != 0 && errno != EINVAL;
    int e = errno;
    close(fd);
    return bad ? mrm_fail(err, MRM_ERR_IO, "%s: cannot sync: %s", dir, strerror(e)) : MRM_OK;
}

/* What a killed prepare left beside the target ("<base>.tmp.<pid>" or "<base>.old.<pid>" of a
 * process that no longer runs) goes, when it holds only a prepared folder's files. */
static void remove_stale(const char *parent, const char *base) {
    DIR *d = opendir(parent);
    if (!d) return;
    size_t bl = strlen(base);
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (strncmp(n, base, bl) || (strncmp(n + bl, ".tmp.", 5) && strncmp(n + bl, ".old.", 5))) continue;
        char *end;
        long pid = strtol(n + bl + 5, &end, 10);
        if (*end || end == n + bl + 5 || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* still running (or not ours to judge) */
        char p[4096];
        if (!mrm_path_join(p, sizeof p, parent, n)) remove_prepared(p, NULL);
    }
    closedir(d);
}

/* Puts the complete folder tmp in target's place. */
static mrm_status install(const char *tmp, const char *target, mrm_error *err) {
    if (rename(tmp, target) == 0) return MRM_OK; /* target absent or an empty folder */
    if (errno != EEXIST && errno != ENOTEMPTY)
        return mrm_fail(err, MRM_ERR_IO, "%s: cannot rename to %s: %s", tmp, target, strerror(errno));
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, target, RENAME_EXCHANGE) == 0) {
        remove_prepared(tmp, NULL); /* the previous preparation; if it stays, the next prepare removes it */
        return MRM_OK;
    }
    if (errno != EINVAL && errno != ENOSYS)
        return mrm_fail(err, MRM_ERR_IO, "%s: cannot exchange with %s: %s", tmp, target, strerror(errno));
    /* no atomic exchange on this file system: two renames; a kill between them leaves the
     * previous folder at <target>.old.<pid> and the new one at tmp, the target absent */
    char old[4096];
    if (snprintf(old, sizeof old, "%s.old.%ld", target, (long)getpid()) >= (int)sizeof old)
        return mrm_fail(err, MRM_ERR_INVALID, "%s: path too long", target);
    if (rename(target, old) != 0) return mrm_fail(err, MRM_ERR_IO, "%s: cannot rename to %s: %s", target, old, strerror(errno));
    if (rename(tmp, target) != 0) {
        int e = errno;
        if (rename(old, target) != 0)
            return mrm_fail(err, MRM_ERR_IO, "%s: cannot rename to %s: %s (the previous folder is at %s)", tmp, target,
                            strerror(e), old);
        return mrm_fail(err, MRM_ERR_IO, "%s: cannot rename to %s: %s", tmp, target, strerror(e));
    }
    remove_prepared(old, NULL);
    return MRM_OK;
}

static mrm_status write_files(void *ds, const char *dir, mrm_error *err) {
    return mrm_prepare_write_files(ds, dir, err);
}

mrm_status mrm_prepare_write(const mrm_dataset *ds, const char *out_dir, int replace, mrm_error *err) {
    if (ds->signals_ && !ds->X)
        return mrm_fail(err, MRM_ERR_INVALID, "%s: the dataset's signals are not read yet (use mrm_prepare_stream)", out_dir);
    return mrm_prepare_folder(out_dir, replace, write_files, (void *)ds, err);
}

mrm_status mrm_prepare_folder(const char *out_dir, int replace, mrm_prepare_fill_fn fill, void *ctx, mrm_error *err) {
    char target[3900], parent[3900], tmp[4096];
    size_t l = strlen(out_dir);
    while (l > 1 && out_dir[l - 1] == '/') l--;
    if (l == 0 || l >= sizeof target) return mrm_fail(err, MRM_ERR_INVALID, "output folder '%s': empty or too long", out_dir);
    memcpy(target, out_dir, l);
    target[l] = '\0';
    mrm_status rc = mrm_prepare_check_out(target, replace, err);
    if (rc) return rc;
    const char *slash = strrchr(target, '/');
    const char *base = slash ? slash + 1 : target;
    if (!slash) snprintf(parent, sizeof parent, ".");
    else snprintf(parent, sizeof parent, "%.*s", slash == target ? 1 : (int)(slash - target), target);
    if (!strcmp(base, ".") || !strcmp(base, ".."))
        return mrm_fail(err, MRM_ERR_INVALID, "%s: name the output folder itself (not '.' or '..')", out_dir);
    if ((rc = mrm_mkdir_p(parent, err))) return rc;
    remove_stale(parent, base);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", target, (long)getpid());
    if (mkdir(tmp, 0777) != 0) {
        /* left by an earlier process of the same id: removed when it holds only a prepared folder's files */
        int e = errno;
        if (e != EEXIST || remove_prepared(tmp, NULL) || mkdir(tmp, 0777) != 0)
            return mrm_fail(err, MRM_ERR_IO, "%s: cannot create: %s", tmp, strerror(e == EEXIST ? EEXIST : e));
    }
    rc = fill(ctx, tmp, err);
    if (!rc) rc = sync_dir(tmp, err);
    if (!rc) rc = mrm_prepare_check_out(target, replace, err); /* again: it may have changed meanwhile */
    if (!rc) rc = install(tmp, target, err);
    if (rc) {
        remove_prepared(tmp, NULL);
        return rc;
    }
    return sync_dir(parent, err);
}
