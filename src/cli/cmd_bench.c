/* mrmnet bench: time a training step and inference, each case in its own child process.
 *
 * Cases (random seeded inputs, standard normal like a standardised ECG):
 *   train    one training step at batch 96: train-mode forward (dropout 0.2), the loss of spec
 *            section 5 with its backward, one Adam step over the parameter buffer;
 *   infer1   the inference engine (mrmnet/engine.h: BN folded, merged 33-tap kernel, kernels chosen
 *            for the CPU), built once; batch 1;
 *   infer32  the same at batch 32, the records shared out over the threads (one work buffer each);
 *   eval1    the plain evaluation-mode forward (mrm_model_forward, train 0), batch 1;
 *   eval32   the same at batch 32;
 *   infer256 the engine at batch 256 (not run unless named in --cases: for thread scaling).
 * Each case runs in a forked child that sets the OpenMP thread count, builds the model, runs
 * the warm-up steps, then times `iters` steps; the median is reported. The child sends back its
 * numbers and its peak resident memory (VmHWM) through a pipe, so cases do not share memory or
 * thread pools. The parent itself never starts OpenMP or oneDNN threads before forking.
 * cpu% is the case's CPU time over wall time x threads while timed: well below 100% means the
 * cores were busy with other work (or the threads waited), so the timing is pessimistic.
 *
 * GFLOP counting: the REFERENCE work of the model, 1.76 GFLOP per record forward (881.7 M
 * multiply-adds with four separate multi-scale convolutions) and 3x that, 5.28 GFLOP, per record
 * of a training step, whatever mrmnet actually computes: algorithmic savings show up as a
 * higher rate. */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "common/error.h"
#include "common/fileutil.h"
#include "common/rng.h"
#include "mrmnet/engine_build.h"

#define GFLOP_FORWARD 1.76 /* reference GFLOP per record, forward */
#define GFLOP_TRAIN 5.28   /* 3x the forward per record of a training step */
#define MAX_THREADS_LIST 8

typedef enum { CASE_TRAIN, CASE_INFER1, CASE_INFER32, CASE_EVAL1, CASE_EVAL32, CASE_INFER256, N_CASES } case_kind;

static const struct {
    const char *name;
    int batch;
    const char *what;
} cases[N_CASES] = {
    {"train", 96, "training step (forward, loss, backward, Adam)"},
    {"infer1", 1, "inference, engine"},
    {"infer32", 32, "inference, engine"},
    {"eval1", 1, "inference, plain eval forward"},
    {"eval32", 32, "inference, plain eval forward"},
    {"infer256", 256, "inference, engine"},
};

/* What a child sends back. */
typedef struct case_result {
    int ok;
    int iters, warmup;
    double ms_median, ms_min, ms_mean; /* per step (one batch) */
    double peak_rss_mb;
    double cpu_util;                   /* process CPU time / (wall time x threads) while timed */
    double cpu_ms;                     /* process CPU time (all threads) per timed step */
    int classes;                       /* of the model timed */
    double loss;                       /* train: the loss of the last step (a sanity value) */
    int isa;                           /* infer: the engine's kernels (mrm_engine_isa) */
    char msg[MRM_ERROR_MSG_LEN];
} case_result;

typedef struct bench_opts {
    int threads[MAX_THREADS_LIST], n_threads;
    int iters, warmup, classes;
    int run_case[N_CASES];
    double peak_per_thread; /* GFLOP/s */
    const char *model_path, *json_path;
    uint64_t seed;
    int engine_isa;         /* --engine-isa: the engine's kernels, or -1: chosen from the CPU */
    mrm_model_config model; /* the random model's variant */
} bench_opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: mrmnet bench [--threads 1,2] [--iters N] [--warmup N] [--classes 5] [--model W]\n"
            "                    [--cases train,infer1,infer32,eval1,eval32,infer256] [--peak GFLOPS]\n"
            "                    [--engine-isa SET] [--seed S] [--json FILE]\n"
            "                    [--variant K=V,... | variant options]\n\n"
            "Times a training step at batch 96 (forward with dropout 0.2, loss, backward, Adam step),\n"
            "inference through the fast path at batch 1 and 32 (infer1, infer32) and the plain\n"
            "evaluation-mode forward at batch 1 and 32 (eval1, eval32); infer256 (the engine at batch\n"
            "256, for thread scaling) runs only when named in --cases. Each case runs in its own\n"
            "process: warm-up steps, then the median of N timed steps, and the process's peak memory.\n"
            "  --threads L   comma-separated OpenMP thread counts (default 1,2)\n"
            "  --iters N     timed steps per case (default 5; batch-1 cases run 4N)\n"
            "  --warmup N    untimed steps first (default 1; batch-1 cases run 2N)\n"
            "  --classes N   output classes of the random model (default 5)\n"
            "  --model W     time these weights instead of a random model (its classes win); a quantised\n"
            "                model (mrmnet quantize) or an engine image (.mrme) runs the infer cases only\n"
            "  --peak G      peak GFLOP/s of ONE thread (default 167.5: 335 for the two cores)\n"
            "  --engine-isa SET  the engine's kernels for the infer cases instead of the best this CPU\n"
            "                runs: portable, avx2, avx512, avx512vnni (x86-64) or neondot (aarch64);\n"
            "                refused when the CPU lacks them\n"
            "  --json FILE   also write the results as JSON\n"
            "GFLOP/s count the reference work: 1.76 GFLOP per record forward, 5.28 per record of\n"
            "a training step (the released model's; other variants do other work).\n");
    cli_model_usage(f);
}

static double clock_ms(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}
static double now_ms(void) { return clock_ms(CLOCK_MONOTONIC); }

/* Peak resident memory of this process in MiB: VmHWM, else ru_maxrss. */
static double peak_rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        long kb = -1;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
        fclose(f);
        if (kb >= 0) return kb / 1024.0;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One case in this (child) process. Fills r; never exits. */
static void run_case(const bench_opts *o, case_kind k, int threads, case_result *r) {
    mrm_error err = {0};
    mrm_model *m = NULL;
    mrm_engine_runner eng = {0};
    mrm_optimizer opt = {0};
    float *x = NULL, *y = NULL, *l1 = NULL, *l2 = NULL;
    double *ms = NULL;
    int B = cases[k].batch;
    int iters = B == 1 ? 4 * o->iters : o->iters, warmup = B == 1 ? 2 * o->warmup : o->warmup;
    mrm_status s = MRM_OK;
    omp_set_num_threads(threads);
    mrm_rng rng;
    mrm_rng_seed(&rng, o->seed);

    const int image = o->model_path && mrm_engine_image_file(o->model_path);
    if (image) { /* an engine image (mrmnet export, mrmnet quantize): the inference cases only */
        void *img = NULL;
        size_t img_len = 0;
        if (k != CASE_INFER1 && k != CASE_INFER32 && k != CASE_INFER256)
            s = mrm_fail(&err, MRM_ERR_INVALID, "%s is an engine image: only the infer cases run it",
                         o->model_path);
        if (!s) s = mrm_engine_image_load(o->model_path, &img, &img_len, &err);
        if (!s) s = mrm_engine_runner_open(&eng, img, img_len, threads, &err);
    } else if (o->model_path) {
        s = mrm_model_load(&m, NULL, o->model_path, &err);
    } else {
        mrm_model_config cfg = o->model;
        cfg.n_classes = o->classes;
        s = mrm_model_create(&m, &cfg, &err);
        if (!s) mrm_model_init(m, o->seed);
    }
    int N = m ? mrm_model_config_of(m)->n_classes : eng.image ? eng.engine.n_classes : 0;
    size_t nx = (size_t)B * MRM_INPUT_LEADS * MRM_INPUT_LEN;
    if (!s) {
        x = malloc(nx * sizeof(float));
        y = malloc((size_t)B * N * sizeof(float));
        l1 = malloc((size_t)B * N * sizeof(float));
        l2 = malloc((size_t)B * N * sizeof(float));
        ms = malloc((size_t)iters * sizeof(double));
        if (!x || !y || !l1 || !l2 || !ms) s = mrm_fail(&err, MRM_ERR_NOMEM, "bench: out of memory");
    }
    if (!s) {
        mrm_rng_fill_normal(&rng, x, nx);
        for (size_t i = 0; i < (size_t)B * N; i++) y[i] = mrm_rng_uniform(&rng) < 0.3f ? 1.0f : 0.0f;
    }
    if (!s && k == CASE_TRAIN) {
        mrm_model_set_dropout(m, 0.2f);
        s = mrm_optimizer_init(&opt, MRM_OPT_ADAM, mrm_model_num_params(m), &err);
    }
    if (!s && !image && (k == CASE_INFER1 || k == CASE_INFER32 || k == CASE_INFER256))
        s = mrm_engine_runner_create(&eng, m, threads, &err);
    if (!s && eng.image && o->engine_isa >= 0) s = mrm_engine_runner_set_isa(&eng, o->engine_isa, &err);
    r->isa = eng.image ? eng.engine.isa : -1;
    const int two_heads = m ? mrm_model_num_heads(m) > 1 : eng.image && eng.engine.n_heads > 1;

    mrm_loss loss = {0};
    double cpu0 = 0, wall0 = 0;
    for (int it = 0; !s && it < warmup + iters; it++) {
        if (it == warmup) cpu0 = clock_ms(CLOCK_PROCESS_CPUTIME_ID), wall0 = now_ms();
        double t0 = now_ms();
        switch (k) {
        case CASE_TRAIN:
            mrm_model_zero_grad(m);
            s = mrm_model_forward(m, x, B, 1, &rng, &err);
            if (!s) s = mrm_model_backward(m, y, &loss, &err);
            if (!s) mrm_optimizer_step(&opt, mrm_model_params(m), mrm_model_grads(m));
            break;
        case CASE_INFER1:
        case CASE_INFER32:
        case CASE_INFER256:
            s = mrm_engine_runner_run(&eng, x, B, l1, two_heads ? l2 : NULL, &err);
            break;
        default:
            s = mrm_model_forward(m, x, B, 0, NULL, &err);
            break;
        }
        double t = now_ms() - t0;
        if (it >= warmup) ms[it - warmup] = t;
    }
    double cpu = clock_ms(CLOCK_PROCESS_CPUTIME_ID) - cpu0, wall = now_ms() - wall0;
    if (!s && k == CASE_TRAIN && !isfinite(loss.total))
        s = mrm_fail(&err, MRM_ERR_CHECK, "bench: training loss is %g", loss.total);
    if (!s) {
        double sum = 0;
        for (int i = 0; i < iters; i++) sum += ms[i];
        qsort(ms, (size_t)iters, sizeof(double), cmp_double);
        r->ok = 1;
        r->iters = iters;
        r->warmup = warmup;
        r->ms_median = iters % 2 ? ms[iters / 2] : 0.5 * (ms[iters / 2 - 1] + ms[iters / 2]);
        r->ms_min = ms[0];
        r->ms_mean = sum / iters;
        r->loss = loss.total;
        r->cpu_util = wall > 0 ? cpu / (wall * threads) : 0;
        r->cpu_ms = cpu / iters;
        r->classes = N;
        r->peak_rss_mb = peak_rss_mb();
    } else {
        snprintf(r->msg, sizeof r->msg, "%s", err.msg);
    }
    free(ms);
    free(l2);
    free(l1);
    free(y);
    free(x);
    mrm_optimizer_free(&opt);
    mrm_engine_runner_free(&eng);
    mrm_model_free(m);
}

/* Runs one case in a forked child and collects its result. Returns 0 or -1 (r->msg says why). */
static int run_case_forked(const bench_opts *o, case_kind k, int threads, case_result *r) {
    memset(r, 0, sizeof *r);
    int fd[2];
    if (pipe(fd)) {
        snprintf(r->msg, sizeof r->msg, "pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(r->msg, sizeof r->msg, "fork: %s", strerror(errno));
        close(fd[0]);
        close(fd[1]);
        return -1;
    }
    if (pid == 0) {
        close(fd[0]);
        case_result cr = {0};
        run_case(o, k, threads, &cr);
        ssize_t w = write(fd[1], &cr, sizeof cr);
        close(fd[1]);
        _exit(w == (ssize_t)sizeof cr ? 0 : 1);
    }
    close(fd[1]);
    size_t got = 0;
    while (got < sizeof *r) {
        ssize_t n = read(fd[0], (char *)r + got, sizeof *r - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (got != sizeof *r) {
        memset(r, 0, sizeof *r);
        if (WIFSIGNALED(status))
            snprintf(r->msg, sizeof r->msg, "the case's process died of signal %d", WTERMSIG(status));
        else
            snprintf(r->msg, sizeof r->msg, "the case's process exited with status %d without a result",
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return -1;
    }
    return r->ok ? 0 : -1;
}

static int parse_threads(const char *s, bench_opts *o) {
    o->n_threads = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 1 || v > 1024 || (*end && *end != ',') || o->n_threads == MAX_THREADS_LIST)
            return -1;
        o->threads[o->n_threads++] = (int)v;
        p = *end ? end + 1 : end;
        if (*end == ',' && !*p) return -1;
    }
    return o->n_threads ? 0 : -1;
}

static int parse_cases(const char *s, bench_opts *o) {
    memset(o->run_case, 0, sizeof o->run_case);
    int any = 0;
    const char *p = s;
    while (*p) {
        size_t len = strcspn(p, ",");
        int found = 0;
        for (int k = 0; k < N_CASES; k++)
            if (strlen(cases[k].name) == len && !strncmp(p, cases[k].name, len)) o->run_case[k] = found = any = 1;
        if (!found) return -1;
        p += len;
        if (*p == ',') {
            p++;
            if (!*p) return -1;
        }
    }
    return any ? 0 : -1;
}

int cmd_bench(int argc, char **argv) {
    const char *C = "bench";
    bench_opts o = {.n_threads = 2, .threads = {1, 2}, .iters = 5, .warmup = 1, .classes = 5,
                    .peak_per_thread = 167.5, .seed = 1, .engine_isa = -1};
    for (int k = 0; k < N_CASES; k++) o.run_case[k] = k != CASE_INFER256; /* infer256: when asked */
    cli_model_opts mo;
    mrm_model_config_default(&o.model);
    if (cli_model_extract(C, &argc, argv, &mo)) return 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        long v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--threads") && has) {
            if (parse_threads(argv[++i], &o)) {
                fprintf(stderr, "mrmnet bench: --threads: '%s' is not a list of thread counts like 1,2\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--cases") && has) {
            if (parse_cases(argv[++i], &o)) {
                fprintf(stderr,
                        "mrmnet bench: --cases: '%s': expected names among train,infer1,infer32,eval1,eval32,infer256\n",
                        argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--iters") && has) {
            if (cli_parse_int(C, a, argv[++i], 1, 100000, &v)) return 2;
            o.iters = (int)v;
        } else if (!strcmp(a, "--warmup") && has) {
            if (cli_parse_int(C, a, argv[++i], 0, 100000, &v)) return 2;
            o.warmup = (int)v;
        } else if (!strcmp(a, "--classes") && has) {
            if (cli_parse_int(C, a, argv[++i], 1, 100000, &v)) return 2;
            o.classes = (int)v;
        } else if (!strcmp(a, "--seed") && has) {
            if (cli_parse_int(C, a, argv[++i], 0, 2147483647L, &v)) return 2;
            o.seed = (uint64_t)v;
        } else if (!strcmp(a, "--peak") && has) {
            if (cli_parse_double_in(C, a, argv[++i], 0, 1, INFINITY, 1, &o.peak_per_thread)) return 2;
        } else if (!strcmp(a, "--model") && has) {
            o.model_path = argv[++i];
        } else if (!strcmp(a, "--json") && has) {
            o.json_path = argv[++i];
        } else if (!strcmp(a, "--engine-isa") && has) {
            if ((o.engine_isa = cli_parse_engine_isa(C, a, argv[++i])) < 0) return 2;
        } else {
            fprintf(stderr, "mrmnet bench: unknown option or missing value: '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (mo.n && o.model_path) {
        fprintf(stderr, "mrmnet bench: --model and variant options exclude each other (the file has its variant)\n");
        return 2;
    }
    o.model.n_classes = o.classes;
    if (cli_model_apply(C, &mo, &o.model)) return 2;
    if (o.json_path) {
        mrm_error perr = {0};
        if (mrm_check_output_file(o.json_path, &perr)) return cli_report(C, &perr);
    }
    if (o.model_path && access(o.model_path, R_OK)) {
        fprintf(stderr, "mrmnet bench: %s: %s\n", o.model_path, strerror(errno));
        return 1;
    }

    json_t *root = json_object(), *jcases = json_array(), *jthreads = json_array();
    json_object_set_new(root, "tool", json_string("mrmnet"));
    json_object_set_new(root, "version", json_string(MRMNET_VERSION));
    json_object_set_new(root, "model", o.model_path ? json_string(o.model_path) : json_null());
    json_object_set_new(root, "classes", json_integer(o.classes));
    if (!o.model_path) {
        char desc[512];
        mrm_model_config_describe(&o.model, desc, sizeof desc);
        json_object_set_new(root, "variant", json_string(desc));
    }
    json_object_set_new(root, "gflop_per_record_forward", json_real(GFLOP_FORWARD));
    json_object_set_new(root, "gflop_per_record_train", json_real(GFLOP_TRAIN));
    json_object_set_new(root, "peak_gflops_per_thread", json_real(o.peak_per_thread));
    for (int t = 0; t < o.n_threads; t++) json_array_append_new(jthreads, json_integer(o.threads[t]));
    json_object_set_new(root, "threads", jthreads);
    json_object_set_new(root, "cases", jcases);

    printf("%-8s %7s %5s %6s %11s %11s %10s %9s %7s %9s %5s\n", "case", "threads", "batch", "iters", "ms/step",
           "ms/record", "records/s", "GFLOP/s", "%peak", "peak MiB", "cpu%");
    int failed = 0, engine_isa = -1;
    for (int t = 0; t < o.n_threads; t++)
        for (int k = 0; k < N_CASES; k++) {
            if (!o.run_case[k]) continue;
            case_result r;
            int th = o.threads[t], B = cases[k].batch;
            if (run_case_forked(&o, (case_kind)k, th, &r)) {
                fprintf(stderr, "mrmnet bench: %s, %d thread%s: %s\n", cases[k].name, th, th > 1 ? "s" : "", r.msg);
                failed = 1;
                continue;
            }
            double ms_rec = r.ms_median / B, rps = 1e3 / ms_rec;
            double gflops = rps * (k == CASE_TRAIN ? GFLOP_TRAIN : GFLOP_FORWARD);
            double share = gflops / (o.peak_per_thread * th);
            printf("%-8s %7d %5d %6d %11.2f %11.3f %10.1f %9.1f %6.1f%% %9.1f %4.0f%%\n", cases[k].name, th, B,
                   r.iters, r.ms_median, ms_rec, rps, gflops, 100.0 * share, r.peak_rss_mb, 100.0 * r.cpu_util);
            fflush(stdout);
            json_t *c = json_object();
            json_object_set_new(c, "case", json_string(cases[k].name));
            json_object_set_new(c, "what", json_string(cases[k].what));
            json_object_set_new(c, "threads", json_integer(th));
            json_object_set_new(c, "batch", json_integer(B));
            json_object_set_new(c, "warmup", json_integer(r.warmup));
            json_object_set_new(c, "iters", json_integer(r.iters));
            json_object_set_new(c, "ms_per_step_median", json_real(r.ms_median));
            json_object_set_new(c, "ms_per_step_min", json_real(r.ms_min));
            json_object_set_new(c, "ms_per_step_mean", json_real(r.ms_mean));
            json_object_set_new(c, "ms_per_record", json_real(ms_rec));
            json_object_set_new(c, "records_per_s", json_real(rps));
            json_object_set_new(c, "gflops", json_real(gflops));
            json_object_set_new(c, "peak_share", json_real(share));
            json_object_set_new(c, "peak_rss_mb", json_real(r.peak_rss_mb));
            json_object_set_new(c, "cpu_utilisation", json_real(r.cpu_util));
            json_object_set_new(c, "cpu_ms_per_step", json_real(r.cpu_ms));
            if (r.isa >= 0) {
                json_object_set_new(c, "engine_isa", json_string(mrm_engine_isa_name(r.isa)));
                if (engine_isa < 0) engine_isa = r.isa;
            }
            json_object_set_new(root, "classes", json_integer(r.classes)); /* --model: its own */
            if (k == CASE_TRAIN) json_object_set_new(c, "loss", json_real(r.loss));
            json_array_append_new(jcases, c);
        }
    if (engine_isa >= 0) printf("the infer cases ran the engine's %s kernels\n", mrm_engine_isa_name(engine_isa));
    int rc = failed ? 1 : 0;
    if (o.json_path) {
        char *text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
        mrm_error err = {0};
        mrm_status s = text ? mrm_write_file_atomic(o.json_path, text, strlen(text), &err)
                            : mrm_fail(&err, MRM_ERR_NOMEM, "bench: cannot format the JSON");
        free(text);
        if (s) rc = cli_report(C, &err);
    }
    json_decref(root);
    return rc;
}
