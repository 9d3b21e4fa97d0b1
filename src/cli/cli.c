#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_report(const char *cmd, const mrm_error *err) {
    fprintf(stderr, "mrmnet %s: %s\n", cmd, err && err->msg[0] ? err->msg : "failed");
    return 1;
}

void cli_progress(void *user, const char *what, size_t done, size_t total) {
    (void)user;
    if (total == 0) return;
    if (isatty(fileno(stderr))) {
        int width = 40, fill = (int)((double)done / (double)total * width);
        fprintf(stderr, "\r%-20.20s [", what);
        for (int i = 0; i < width; i++) fputc(i < fill ? '#' : ' ', stderr);
        fprintf(stderr, "] %zu/%zu", done, total);
        if (done >= total) fputc('\n', stderr);
    } else {
        size_t step = total / 10 ? total / 10 : 1;
        if (done == total || done % step == 0)
            fprintf(stderr, "%s: %zu/%zu\n", what, done, total);
    }
    fflush(stderr);
}

void cli_log(void *user, mrm_log_level level, const char *msg) {
    (void)user;
    if (level >= MRM_LOG_WARN)
        fprintf(stderr, "mrmnet: %s: %s\n", level == MRM_LOG_WARN ? "warning" : "error", msg);
    else if (level == MRM_LOG_INFO)
        fprintf(stderr, "mrmnet: %s\n", msg);
}

int cli_parse_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "mrmnet %s: %s: '%s' is not an integer in [%ld, %ld]\n", cmd, opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_double(const char *cmd, const char *opt, const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) {
        fprintf(stderr, "mrmnet %s: %s: '%s' is not a number\n", cmd, opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_options(const char *cmd, int argc, char **argv, const cli_opt *opts, void (*usage)(FILE *)) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        const cli_opt *o = opts;
        while (o->name && strcmp(a, o->name)) o++;
        if (!o->name || (o->kind != CLI_FLAG && i + 1 >= argc)) {
            fprintf(stderr, "mrmnet %s: unknown option or missing value: '%s'\n", cmd, a);
            usage(stderr);
            return 2;
        }
        if (o->kind == CLI_FLAG)
            *(int *)o->dst = 1;
        else if (o->kind == CLI_STR)
            *(const char **)o->dst = argv[++i];
        else if (cli_parse_int(cmd, a, argv[++i], o->lo, o->hi, (long *)o->dst))
            return 2;
    }
    return -1;
}

int cli_missing(const char *cmd, const char *what, void (*usage)(FILE *)) {
    fprintf(stderr, "mrmnet %s: %s are required\n", cmd, what);
    usage(stderr);
    return 2;
}
