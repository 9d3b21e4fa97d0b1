/* A plain driver for the fuzz harnesses: runs LLVMFuzzerTestOneInput once on each file named on
 * the command line (a folder: on each file in it, in name order), so that the inputs kept in
 * tests/fuzz/regress/ and the seed corpora run in the ordinary build and its ASan + UBSan build,
 * without clang or libFuzzer.
 *
 * As libFuzzer's -malloc_limit_mb does, it fails on any single allocation above a limit
 * (MRM_FUZZ_MALLOC_LIMIT_MB, default 1024): a reader must refuse a file that claims more than it
 * holds before it allocates for the claim. The limit applies to malloc, calloc and realloc calls
 * made from the project's code (linked with -Wl,--wrap=...). Each input is given in a buffer of
 * exactly its size, so a read past its end is caught by AddressSanitizer. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t malloc_limit = (size_t)1024 << 20;
static const char *current = "(none)";

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);

static void over_limit(const char *fn, size_t n) {
    fprintf(stderr, "fuzz driver: %s(%zu) exceeds the limit of %zu MB, input %s\n", fn, n, malloc_limit >> 20, current);
    abort();
}
void *__wrap_malloc(size_t n) {
    if (n > malloc_limit) over_limit("malloc", n);
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t m) {
    if (m && n > malloc_limit / m) over_limit("calloc", n * m);
    return __real_calloc(n, m);
}
void *__wrap_realloc(void *p, size_t n) {
    if (n > malloc_limit) over_limit("realloc", n);
    return __real_realloc(p, n);
}

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    current = path;
    size_t cap = 1 << 16, n = 0; /* the driver's own buffers are not the reader's: no limit */
    uint8_t *buf = __real_malloc(cap);
    for (;;) {
        if (n == cap) buf = __real_realloc(buf, cap *= 2);
        if (!buf) {
            fprintf(stderr, "%s: out of memory\n", path);
            fclose(f);
            return 1;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "%s: read error\n", path);
        free(buf);
        return 1;
    }
    uint8_t *exact = __real_malloc(n ? n : 1); /* exactly n bytes: ASan sees any read past the end */
    if (!exact) {
        free(buf);
        return 1;
    }
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int run_path(const char *path, int *count) {
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
        (*count)++;
        return run_file(path);
    }
    DIR *d = opendir(path);
    if (!d) {
        perror(path);
        return 1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char **nn = realloc(names, (n + 1) * sizeof *names);
        if (!nn) break;
        names = nn;
        names[n] = malloc(strlen(path) + strlen(e->d_name) + 2);
        if (!names[n]) break;
        sprintf(names[n], "%s/%s", path, e->d_name);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        rc |= run_path(names[i], count);
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv) {
    const char *lim = getenv("MRM_FUZZ_MALLOC_LIMIT_MB");
    if (lim && atol(lim) > 0) malloc_limit = (size_t)atol(lim) << 20;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n(runs the fuzz harness once on each input)\n", argv[0]);
        return 2;
    }
    int rc = 0, count = 0;
    for (int i = 1; i < argc; i++) rc |= run_path(argv[i], &count);
    printf("%d input(s) run\n", count);
    return rc;
}
