/* mrmnet check: read every record under a folder and report those that fail validation. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: mrmnet check DIR\n\n"
               "Reads every record under DIR with all samples: each WFDB record (*.hea), each original CPSC2018\n"
               ".mat that has no .hea beside it, and each file whose content is HL7 aECG, GE MUSE or Philips\n"
               "Sierra XML, SCP-ECG, DICOM waveform or EDF (whatever its name); prints one line per record\n"
               "that fails (read error, checksum or initial-value mismatch) and a summary. Exit status 0 when all pass, 1 otherwise.\n");
}

typedef struct path_list {
    char **items;
    size_t n, cap;
} path_list;

static int push(path_list *l, const char *p) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **grown = realloc(l->items, cap * sizeof *grown);
        if (!grown) return -1;
        l->items = grown;
        l->cap = cap;
    }
    if (!(l->items[l->n] = strdup(p))) return -1;
    l->n++;
    return 0;
}

/* Collects record paths under dir (depth-first; symbolic links to folders are not followed). */
static int walk(const char *dir, path_list *out, int depth) {
    if (depth > 64) return 0;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "mrmnet check: cannot open folder '%s'\n", dir);
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) && !rc) {
        if (e->d_name[0] == '.') continue;
        char p[4096];
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p) continue;
        struct stat st;
        if (lstat(p, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            rc = walk(p, out, depth + 1);
        } else if (S_ISREG(st.st_mode) && mrm_record_file_format(p)) {
            rc = push(out, p);
        }
    }
    closedir(d);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Why a record fails, or "" when it passes. */
static void validate(const char *path, char *why, size_t whysz) {
    mrm_record rec;
    mrm_error err = {0};
    why[0] = '\0';
    if (mrm_record_read(&rec, path, 0, &err)) {
        snprintf(why, whysz, "%s", err.msg);
        return;
    }
    size_t used = 0;
    for (int s = 0; s < rec.n_signals && used < whysz; s++) {
        const mrm_signal_info *si = &rec.signals[s];
        const mrm_signal_check *c = &rec.checks[s];
        if (c->checksum_ok == 0)
            used += (size_t)snprintf(why + used, whysz - used, "%ssignal %d (%s): checksum mismatch (header %d, data %d)",
                                     used ? "; " : "", s + 1, si->description, si->checksum, c->computed_checksum);
        if (used < whysz && c->init_value_ok == 0)
            used += (size_t)snprintf(why + used, whysz - used, "%ssignal %d (%s): initial value mismatch (header %d)",
                                     used ? "; " : "", s + 1, si->description, si->init_value);
    }
    mrm_record_free(&rec);
}

int cmd_check(int argc, char **argv) {
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "mrmnet check: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (dir) {
            fprintf(stderr, "mrmnet check: one folder at a time\n");
            return 2;
        } else {
            dir = argv[i];
        }
    }
    if (!dir) {
        usage(stderr);
        return 2;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "mrmnet check: '%s' is not a folder\n", dir);
        return 1;
    }
    path_list paths = {0};
    if (walk(dir, &paths, 0)) {
        fprintf(stderr, "mrmnet check: cannot list the records under '%s'\n", dir);
        for (size_t i = 0; i < paths.n; i++) free(paths.items[i]);
        free(paths.items);
        return 1;
    }
    qsort(paths.items, paths.n, sizeof *paths.items, cmp_str);
    size_t failed = 0;
    char why[2048];
    for (size_t i = 0; i < paths.n; i++) {
        validate(paths.items[i], why, sizeof why);
        if (why[0]) {
            printf("FAIL %s: %s\n", paths.items[i], why);
            failed++;
        }
        free(paths.items[i]);
    }
    free(paths.items);
    printf("%zu records, %zu ok, %zu failed\n", paths.n, paths.n - failed, failed);
    return failed ? 1 : 0;
}
