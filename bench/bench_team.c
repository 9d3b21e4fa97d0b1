/* A model of batch-1 latency against the thread count (1 to 16 or --max), for the engine's team
 * run: how it would scale on a machine with that many free cores, argued from measurements on
 * this one. It is a model, not a measurement of many threads.
 *
 *   bench_team [--iters 30] [--max 16] [--barrier-us X] [--profile FILE] [--from FILE] [--plan-cost]
 *
 * 1. Builds the image libmrmnet's runner uses for two or more threads (the default model, the
 *    branches planned apart: mrm_engine_build_lanes, random weights) and opens it with the best
 *    kernels this CPU runs.
 * 2. Times each step of one record alone on one thread (the least of --iters passes), and the
 *    whole record (mrm_engine_run) for comparison with the steps' sum.
 * 3. Times the runner's barrier (common/team_barrier.h) with two threads (the least, over
 *    4,000 blocks of 50 crossings, of a block's time per crossing), or takes --barrier-us (before a profile's). A barrier of m threads is modelled as (m - 1)
 *    times that of two: every arrival is one more atomic update of the same cache line.
 * 4. Predicts a record's time on 1 .. max threads (mrm_eng_team_predict, engine/team_plan.h) in
 *    the two schemes: the engine before sub-teams ("layers": every layer shared by the whole
 *    team, a barrier after each; a team of two runs the branches side by side) and with sub-teams
 *    ("sub-teams": the branches side by side on two sub-teams sized by mrm_engine_team_lanes).
 *    Per step, the slowest thread's share of its tiles (or channels) of the step's one-thread
 *    time; steps that do not split (FFT and Winograd convolutions, gates, Fusion, heads) whole.
 *
 * --plan-cost instead times what the sub-team split costs: mrm_engine_open of that image (which
 * works out the split of every team of up to MRM_ENGINE_TEAM_PLANNED threads) and one call of
 * mrm_engine_team_lanes (a look-up up to that bound, the plan worked out above it), at 2 to 128
 * threads (the least, over 5 passes, of a pass's time per call; the open's least and median).
 *
 * --profile FILE writes the measured step times and barrier (the format --from reads: "barrier_us
 * X", "steps N", then one line "i ms" a step); --from FILE models from such a file instead of
 * measuring (tests/fixtures/engine/team_steps.txt is one, read by tests/train/test_engine_team.c). */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/rng.h"
#include "common/team_barrier.h"
#include "engine/engine_image.h"
#include "engine/team_plan.h"
#include "mrmnet.h"
#include "mrmnet/engine_build.h"

#define MAX_T 64

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    team_sync ts;
    int n;
} bar_job;

static void *bar_member(void *arg) {
    bar_job *j = arg;
    for (int i = 0; i < j->n; i++) bar_sync(&j->ts);
    return NULL;
}

/* One crossing of the runner's barrier by two threads, seconds: the least, over 4,000 blocks of
 * 50 crossings, of a block's time (on a shared machine most blocks find the other thread without
 * a core for a while); the second thread is started once, before the blocks. */
static double time_barrier(void) {
    team_bar *b = aligned_alloc(64, sizeof(team_bar));
    if (!b) return 0;
    const int n = 50, blocks = 4000;
    team_bar_init(b);
    bar_job j = {{b, 2}, n * blocks + 1};
    pthread_t th;
    if (pthread_create(&th, NULL, bar_member, &j)) {
        free(b);
        return 0;
    }
    double best = 1e9;
    bar_sync(&j.ts);
    for (int k = 0; k < blocks; k++) {
        double t0 = now_s();
        for (int i = 0; i < n; i++) bar_sync(&j.ts);
        double t = (now_s() - t0) / n;
        if (t < best) best = t;
    }
    pthread_join(th, NULL);
    free(b);
    return best;
}

static int usage(void) {
    fprintf(stderr,
            "usage: bench_team [--iters N] [--max T] [--barrier-us X] [--profile FILE] [--from FILE] [--plan-cost]\n");
    return 2;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* --plan-cost: the open's time (us, the least and the median of 1,000) and mrm_engine_team_lanes's
 * per call at 2 to 128 threads. */
static int plan_cost(const void *img, size_t len) {
    enum { OPENS = 1000 };
    static double t[OPENS];
    mrm_engine e;
    mrm_error err = {0};
    for (int r = 0; r < OPENS; r++) {
        double t0 = now_s();
        if (mrm_engine_open(&e, img, len, &err)) {
            fprintf(stderr, "bench_team: %s\n", err.msg);
            return 1;
        }
        t[r] = (now_s() - t0) * 1e6;
    }
    qsort(t, OPENS, sizeof t[0], cmp_double);
    printf("mrm_engine_open: %.2f us least, %.2f us median (%d opens; %d steps, lanes %d, teams planned at open: "
           "up to %d threads)\n",
           t[0], t[OPENS / 2], OPENS, e.n_steps, e.lanes, e.team_planned ? MRM_ENGINE_TEAM_PLANNED : 0);
    const int teams[] = {2, 4, 8, 16, 32, 64, 65, 128};
    volatile int sink = 0;
    for (size_t k = 0; k < sizeof teams / sizeof teams[0]; k++) {
        const int nth = teams[k], calls = nth > MRM_ENGINE_TEAM_PLANNED ? 200 : 100000;
        double best = 1e9;
        for (int pass = 0; pass < 5; pass++) {
            double t0 = now_s();
            for (int i = 0; i < calls; i++) sink += mrm_engine_team_lanes(&e, nth);
            double dt = (now_s() - t0) / calls * 1e6;
            if (dt < best) best = dt;
        }
        printf("mrm_engine_team_lanes(%d threads) = %d: %.4f us a call\n", nth, mrm_engine_team_lanes(&e, nth), best);
    }
    (void)sink;
    return 0;
}

int main(int argc, char **argv) {
    int iters = 30, tmax = 16;
    double barrier_us = -1;
    const char *profile = NULL, *from = NULL;
    int cost_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max") && i + 1 < argc) tmax = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--barrier-us") && i + 1 < argc) barrier_us = atof(argv[++i]);
        else if (!strcmp(argv[i], "--profile") && i + 1 < argc) profile = argv[++i];
        else if (!strcmp(argv[i], "--from") && i + 1 < argc) from = argv[++i];
        else if (!strcmp(argv[i], "--plan-cost")) cost_only = 1;
        else return usage();
    }
    if (iters < 1 || tmax < 1 || tmax >= MAX_T) return usage();
    mrm_error err = {0};
    mrm_model_config cfg;
    mrm_model_config_default(&cfg);
    mrm_model *m = NULL;
    void *img = NULL;
    size_t len = 0;
    if (mrm_model_create(&m, &cfg, &err) || (mrm_model_init(m, 3), 0) ||
        mrm_engine_build_lanes(m, NULL, &img, &len, &err)) {
        fprintf(stderr, "bench_team: %s\n", err.msg);
        return 1;
    }
    if (cost_only) {
        int rc = plan_cost(img, len);
        free(img);
        mrm_model_free(m);
        return rc;
    }
    mrm_engine e;
    if (mrm_engine_open(&e, img, len, &err)) {
        fprintf(stderr, "bench_team: %s\n", err.msg);
        return 1;
    }
    const eng_header *h = img;
    const eng_step *st = (const eng_step *)(const void *)((const char *)img + h->steps_off);
    const int n = (int)h->n_steps;
    double *ms = calloc((size_t)n, sizeof(double));
    double whole_ms = 0;
    if (!ms) return 1;
    if (from) {
        FILE *f = fopen(from, "r");
        int nf = -1;
        double file_us = 0;
        if (!f || fscanf(f, " barrier_us %lf steps %d", &file_us, &nf) != 2 || nf != n) {
            fprintf(stderr, "bench_team: %s: not a profile of this image's %d steps\n", from, n);
            if (f) fclose(f);
            return 1;
        }
        for (int i = 0; i < n; i++) {
            int k;
            if (fscanf(f, "%d %lf", &k, &ms[i]) != 2 || k != i) {
                fprintf(stderr, "bench_team: %s: step %d unreadable\n", from, i);
                fclose(f);
                return 1;
            }
        }
        fclose(f);
        if (barrier_us < 0) barrier_us = file_us; /* --barrier-us first */
    } else {
        mrm_engine_sizes sz;
        mrm_engine_get_sizes(&e, 1, &sz, &err);
        void *work = aligned_alloc(MRM_ENGINE_ALIGN, (sz.work_bytes + 63) / 64 * 64);
        float *x = malloc(sizeof(float) * 12 * 1000), l1[64], l2[64];
        if (!work || !x) return 1;
        mrm_rng rng;
        mrm_rng_seed(&rng, 11);
        for (int i = 0; i < 12 * 1000; i++) x[i] = mrm_rng_uniform_range(&rng, -2.0f, 2.0f);
        for (int i = 0; i < n; i++) ms[i] = 1e9;
        whole_ms = 1e9;
        for (int it = 0; it < iters + 1; it++) { /* the first pass warms up */
            for (int i = 0; i < n; i++) {
                double t0 = now_s();
                if (mrm_eng_run_steps(&e, work, sz.work_bytes, x, i, i + 1, &err)) {
                    fprintf(stderr, "bench_team: %s\n", err.msg);
                    return 1;
                }
                double t = (now_s() - t0) * 1e3;
                if (it && t < ms[i]) ms[i] = t;
            }
            double t0 = now_s();
            mrm_engine_run(&e, work, sz.work_bytes, x, 1, l1, e.n_heads > 1 ? l2 : NULL, &err);
            double t = (now_s() - t0) * 1e3;
            if (it && t < whole_ms) whole_ms = t;
        }
        free(work), free(x);
        if (barrier_us < 0) barrier_us = time_barrier() * 1e6;
    }
    double bar[MAX_T + 1];
    bar[0] = bar[1] = 0;
    for (int t = 2; t <= MAX_T; t++) bar[t] = barrier_us * 1e-3 * (t - 1); /* ms */
    eng_tile f, q;
    {
        /* the kernels' tiles, as the engine's team uses them */
        f = mrm_eng_conv_portable_tile(), q = mrm_eng_conv8_portable_tile();
#if defined(__x86_64__)
        if (e.isa >= MRM_ENGINE_AVX512) f = mrm_eng_conv_avx512_tile(), q = mrm_eng_conv8_avx512_tile();
        else if (e.isa == MRM_ENGINE_AVX2) f = mrm_eng_conv_avx2_tile(), q = mrm_eng_conv8_avx2_tile();
#endif
    }
    double sum = 0;
    int lanes[3] = {0, 0, 0}, serial = 0;
    double lane_ms[3] = {0, 0, 0}, serial_ms = 0;
    for (int i = 0; i < n; i++) {
        sum += ms[i];
        lanes[st[i].lane]++, lane_ms[st[i].lane] += ms[i];
        if (mrm_eng_team_share(&st[i], f, q, 2) == 1.0) serial++, serial_ms += ms[i];
    }
    printf("model of batch-1 latency (a model from one-thread step times, not a measurement of many threads)\n");
    printf("kernels %s; %d steps: %.3f ms summed", mrm_engine_isa_name(e.isa), n, sum);
    if (whole_ms > 0) printf(" (the whole record timed: %.3f ms)", whole_ms);
    printf("; shared steps %d (%.3f ms), branch 1 %d (%.3f ms), branch 2 %d (%.3f ms); steps that do not split: %d "
           "(%.3f ms)\n",
           lanes[0], lane_ms[0], lanes[1], lane_ms[1], lanes[2], lane_ms[2], serial, serial_ms);
    printf("barrier of two threads: %.3f us (m threads: (m - 1) times that)%s\n\n", barrier_us,
           from ? " (from the profile)" : "");
    printf("| threads | layers: ms | speed-up | sub-teams: ms | speed-up | the engine's choice: ms | speed-up | lane 1 + "
           "lane 2 threads |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    double p1 = 0, prev = 0;
    char flat[512] = "";
    size_t fl = 0;
    for (int t = 1; t <= tmax; t++) {
        double a = mrm_eng_team_predict(st, (uint32_t)n, f, q, t, ENG_TEAM_LAYERS, e.lanes, ms, bar);
        double b = mrm_eng_team_predict(st, (uint32_t)n, f, q, t, ENG_TEAM_LANES, e.lanes, ms, bar);
        double c = mrm_eng_team_predict(st, (uint32_t)n, f, q, t, ENG_TEAM_ENGINE, e.lanes, ms, bar);
        if (t == 1) p1 = c;
        int n1 = mrm_engine_team_lanes(&e, t);
        printf("| %d | %.3f | %.2fx | %.3f | %.2fx | %.3f | %.2fx | ", t, a, p1 / a, b, p1 / b, c, p1 / c);
        if (t >= 2 && n1)
            printf("%d + %d |\n", n1, t - n1);
        else
            printf("%s |\n", t >= 2 ? "every layer shared" : "-");
        if (t > 1 && c > prev * 0.99 && fl < sizeof flat - 16)
            fl += (size_t)snprintf(flat + fl, sizeof flat - fl, " %d (%+.1f%%)", t, 100 * (c / prev - 1));
        prev = c;
    }
    printf("\nthe engine's choice: thread counts that gain under 1%% on the one below:%s\n", fl ? flat : " none");
    if (profile) { /* written whole or not at all (the committed profile is retaken in place) */
        size_t cap = 64 + (size_t)n * 40, len;
        char *text = malloc(cap);
        int w = text ? snprintf(text, cap, "barrier_us %.4f\nsteps %d\n", barrier_us, n) : -1;
        for (int i = 0; w >= 0 && (size_t)w < cap && i < n; i++) {
            int k = snprintf(text + w, cap - (size_t)w, "%d %.5f\n", i, ms[i]);
            w = k < 0 ? -1 : w + k;
        }
        len = w >= 0 && (size_t)w < cap ? (size_t)w : 0;
        mrm_status ws = len ? mrm_write_file_atomic(profile, text, len, &err)
                            : mrm_fail(&err, MRM_ERR_NOMEM, "%s: cannot format the profile", profile);
        free(text);
        if (ws) {
            fprintf(stderr, "bench_team: %s\n", err.msg);
            return 1;
        }
    }
    free(ms), free(img);
    mrm_model_free(m);
    return 0;
}
