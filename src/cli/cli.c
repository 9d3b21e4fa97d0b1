#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Standard output goes through a stream of our own over file descriptor 1 that remembers the first
 * write error's errno: stdio's error flag alone does not keep the reason. */
static int stdout_errno;

static ssize_t stdout_write(void *cookie, const char *buf, size_t n) {
    (void)cookie;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(STDOUT_FILENO, buf + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (!stdout_errno) stdout_errno = w < 0 ? errno : EIO;
            return -1;
        }
        done += (size_t)w;
    }
    return (ssize_t)n;
}

void cli_stdout_begin(void) {
    cookie_io_functions_t io = {NULL, stdout_write, NULL, NULL};
    FILE *f = fopencookie(NULL, "w", io);
    if (!f) return; /* stdout stays glibc's; its error flag is still checked */
    if (isatty(STDOUT_FILENO))
        setvbuf(f, NULL, _IOLBF, BUFSIZ);
    else
        setvbuf(f, NULL, _IOFBF, 1 << 16);
    stdout = f;
}

int cli_stdout_end(const char *cmd) {
    int bad = fflush(stdout) != 0 || ferror(stdout);
    if (!bad) return 0;
    int e = stdout_errno ? stdout_errno : errno ? errno : EIO;
    fprintf(stderr, "mrmnet%s%s: cannot write standard output: %s\n", cmd ? " " : "", cmd ? cmd : "", strerror(e));
    return 1;
}

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

int cli_parse_double_in(const char *cmd, const char *opt, const char *s, double lo, int lo_open, double hi, int hi_open,
                        double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    int ok = !errno && end != s && !*end && isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
    if (!ok) {
        char a[32], b[32];
        snprintf(a, sizeof a, "%g", lo);
        snprintf(b, sizeof b, "%g", hi);
        fprintf(stderr, "mrmnet %s: %s: '%s' is not a number in %c%s, %s%c\n", cmd, opt, s, lo_open ? '(' : '[',
                isinf(lo) ? "-inf" : a, isinf(hi) ? "inf" : b, hi_open || isinf(hi) ? ')' : ']');
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_engine_isa(const char *cmd, const char *opt, const char *s) {
    for (int i = 0; i <= MRM_ENGINE_ISA_LAST; i++)
        if (!strcmp(s, mrm_engine_isa_name(i))) return i;
    fprintf(stderr, "mrmnet %s: %s: '%s' is not a kernel set; the sets:", cmd, opt, s);
    for (int i = 0; i <= MRM_ENGINE_ISA_LAST; i++) fprintf(stderr, "%s %s", i ? "," : "", mrm_engine_isa_name(i));
    fprintf(stderr, " (the CPU runs some of them)\n");
    return -1;
}

int cli_parse_u64(const char *cmd, const char *opt, const char *s, unsigned long long *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || s[0] == '+' || s[0] == ' ') {
        fprintf(stderr, "mrmnet %s: %s: '%s' is not an integer in [0, %llu]\n", cmd, opt, s, (unsigned long long)-1);
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

/* ---- the model's variant options ------------------------------------------------------------ */

/* "--lambda-feat" -> "lambda_feat" in out; 0 when arg is not a config key's option. */
static int model_key_of(const char *arg, char *out, size_t n) {
    if (strncmp(arg, "--", 2)) return 0;
    for (int i = 0;; i++) {
        const char *k = mrm_model_config_key(i, NULL, NULL, 0, NULL);
        if (!k) return 0;
        if (!strcmp(k, "n_classes")) continue;
        size_t j = 0;
        for (; k[j] && arg[2 + j]; j++)
            if ((k[j] == '_' ? '-' : k[j]) != arg[2 + j]) break;
        if (!k[j] && !arg[2 + j]) {
            snprintf(out, n, "%s", k);
            return 1;
        }
    }
}

int cli_model_extract(const char *cmd, int *argc, char **argv, cli_model_opts *mo) {
    static const char *const keys_static[] = {"width", "attention", "fusion", "branches", "combine", "lambda_feat",
                                              "lambda_logit", "temperature"};
    mo->n = 0;
    int w = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        char key[64];
        const char *k = NULL, *v = NULL;
        if (!strcmp(a, "--hi-attention")) {
            k = "attention", v = "both";
        } else if (!strcmp(a, "--variant") || model_key_of(a, key, sizeof key)) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "mrmnet %s: %s needs a value\n", cmd, a);
                return 2;
            }
            v = argv[++i];
            k = "variant";
            for (size_t j = 0; strcmp(a, "--variant") && j < sizeof keys_static / sizeof *keys_static; j++)
                if (!strcmp(keys_static[j], key)) k = keys_static[j];
        } else {
            argv[w++] = argv[i];
            continue;
        }
        if (mo->n == CLI_MODEL_MAX_OPTS) {
            fprintf(stderr, "mrmnet %s: too many model options\n", cmd);
            return 2;
        }
        mo->key[mo->n] = k;
        mo->value[mo->n++] = v;
    }
    *argc = w;
    argv[w] = NULL;
    return 0;
}

int cli_model_apply(const char *cmd, const cli_model_opts *mo, mrm_model_config *cfg) {
    mrm_error err = {0};
    for (int i = 0; i < mo->n; i++) {
        mrm_status s = strcmp(mo->key[i], "variant") ? mrm_model_config_set(cfg, mo->key[i], mo->value[i], &err)
                                                     : mrm_model_config_parse(cfg, mo->value[i], &err);
        if (s) {
            fprintf(stderr, "mrmnet %s: %s\n", cmd, err.msg);
            return 2;
        }
    }
    mrm_status s = mrm_model_config_check(cfg, &err);
    if (s) {
        fprintf(stderr, "mrmnet %s: %s\n", cmd, err.msg);
        return 2;
    }
    return 0;
}

void cli_model_usage(FILE *f) {
    mrm_model_config d;
    mrm_model_config_default(&d);
    fprintf(f, "\nmodel variant (defaults: the released MRM-Net):\n");
    for (int i = 0;; i++) {
        char v[64], opt[64];
        const char *allowed;
        const char *k = mrm_model_config_key(i, &d, v, sizeof v, &allowed);
        if (!k) break;
        if (!strcmp(k, "n_classes")) continue;
        size_t j = 0;
        for (; k[j] && j + 1 < sizeof opt; j++) opt[j] = k[j] == '_' ? '-' : k[j];
        opt[j] = '\0';
        fprintf(f, "  --%-13s %s (%s)\n", opt, allowed, v);
    }
    fprintf(f, "  --variant K=V,...  several of them at once, e.g. attention=none,fusion=off\n"
               "  --hi-attention     the same as --attention both\n");
}

void cli_note_checkpoint(const char *cmd, const char *path, const mrm_meta *meta) {
    if (!mrm_meta_get(meta, "optimizer")) return;
    const char *t = mrm_meta_get(meta, "optimizer_t");
    fprintf(stderr,
            "mrmnet %s: note: %s is a training checkpoint (weights and optimizer state after %s steps): its current "
            "weights are used, without thresholds; the run's best.safetensors holds the selected weights and thresholds\n",
            cmd, path, t ? t : "?");
}
