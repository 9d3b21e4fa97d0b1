/* Files: whole-file reads with a size limit, atomic writes, paths, checked arithmetic. */
#ifndef MRM_COMMON_FILEUTIL_H
#define MRM_COMMON_FILEUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mrmnet.h"

/* Reads a whole file into a new buffer (NUL-terminated, *len excludes the NUL).
 * Refuses files larger than max_bytes. The caller frees *data. */
mrm_status mrm_read_file(const char *path, size_t max_bytes, char **data, size_t *len, mrm_error *err);

/* Atomic output: write to "<path>.tmp.<pid>" in the same folder, then fsync and rename over path.
 * Usage: f = mrm_atomic_open(&a, path, err); fwrite(..., f); mrm_atomic_commit(&a, err);
 * On any failure call mrm_atomic_abort(&a) (it removes the temporary file and keeps errno).
 * Every message names the user's path, never the temporary file. A path that exists and is not a
 * regular file (a device such as /dev/stdout, a FIFO) is written in place, not replaced. */
typedef struct mrm_atomic_file {
    FILE *f;
    char path[4096];
    char tmp[4096]; /* "" when writing in place */
    int direct;
} mrm_atomic_file;
FILE *mrm_atomic_open(mrm_atomic_file *a, const char *path, mrm_error *err);
mrm_status mrm_atomic_commit(mrm_atomic_file *a, mrm_error *err);
void mrm_atomic_abort(mrm_atomic_file *a);
/* Writes a whole buffer atomically. */
mrm_status mrm_write_file_atomic(const char *path, const void *data, size_t len, mrm_error *err);

/* Checks, before long work, that `path` can be written: its folder exists and a file can be created
 * in it (one is created and removed), and `path` is not a folder. */
mrm_status mrm_check_output_file(const char *path, mrm_error *err);
/* The same for an output folder: the folder, or the nearest of its parents that exists, takes a new file. */
mrm_status mrm_check_output_dir(const char *path, mrm_error *err);

/* Creates a folder and its parents (like mkdir -p). */
mrm_status mrm_mkdir_p(const char *path, mrm_error *err);

/* 1 when a path named inside a file (a header's signal file, a table's record) would leave the folder
 * it is relative to: an absolute path, or a ".." component ("..", "../x", "a/../../x"); else 0. */
int mrm_path_escapes(const char *rel);
/* 1 when path, with every symbolic link resolved, lies inside dir (also resolved); 0 when it lies
 * outside; -1 when either cannot be resolved (errno says why). */
int mrm_path_inside(const char *dir, const char *path);
/* Takes an exclusive advisory lock (flock) on an existing folder, without waiting: returns its
 * descriptor, or -1 with err when another process holds it ("another process is WHAT in this
 * folder") or the folder cannot be opened. The lock lasts until mrm_dir_unlock or the process ends. */
int mrm_dir_lock(const char *dir, const char *what, mrm_error *err);
void mrm_dir_unlock(int fd);

/* Joins dir and name with one '/' into out (size outsz). Returns 0, or -1 if it does not fit. */
int mrm_path_join(char *out, size_t outsz, const char *dir, const char *name);

/* Checked size arithmetic: return 0 and set *out, or -1 on overflow. */
int mrm_mul_size(size_t a, size_t b, size_t *out);
int mrm_add_size(size_t a, size_t b, size_t *out);

#endif
