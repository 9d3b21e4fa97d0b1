/* A model of how a training step (or the plain evaluation forward) scales with threads, on a
 * machine with that many free cores, argued from runs on this one. It is a model, not a
 * measurement of many threads.
 *
 *   bench_scaling [--case train|eval] [--batch N] [--threads 1,2,4,8,12,16] [--steps 5]
 *                 [--fork-us 2] [--barrier-us 0.5] [--top 12] [--sites] [--shared-cores]
 *   bench_scaling --self-test
 *
 * --sites prints every region's figures (tab-separated lines beginning "site"); --shared-cores
 * lets a region's threads run at once, sharing this machine's cores, instead of one phase at a
 * time (noisier: each evicts the others' cache lines); --self-test checks the interposer against
 * a workload of known shape and prints "N passed, N failed".
 *
 * It runs the step for real with T OpenMP threads (more threads than cores is allowed: they take
 * turns), and measures, for every parallel region (libmrmnet's and oneDNN's) and every thread in
 * it, the CPU time the thread spends between the region's start, each barrier and its end
 * (CLOCK_THREAD_CPUTIME_ID: the thread's own work, whatever core it ran on and however long it
 * waited for one). On T free cores a region then lasts, phase by phase (between barriers), as long
 * as its slowest thread's phase: the model's time for the step is the sum over regions of those
 * slowest phases, plus the first thread's CPU time outside any region (the serial part), plus a
 * cost for each region's fork and join (--fork-us) and each barrier (--barrier-us) on T threads.
 *
 * How: this program defines GOMP_parallel and GOMP_barrier, the entry points GCC's OpenMP code
 * calls (libmrmnet's, linked in, and oneDNN's, which the dynamic linker resolves to the
 * executable's definitions first), wraps each region's body with the timing and calls libgomp's
 * own. Threads must not spin while they wait (a spinning wait is CPU time and steals the core from
 * the thread being waited for), so it runs itself again with OMP_WAIT_POLICY=passive and
 * GOMP_SPINCOUNT=0 when they are not set so.
 *
 * What it leaves out, all of which make real scaling worse than it says: memory bandwidth and
 * shared caches (T threads streaming at once), the lower clock of many busy cores, and threads
 * that lose their core. What it includes that a count of work units does not: every region as
 * the code actually splits it at T threads (a split that leaves threads idle, a per-thread
 * reduction whose cost grows with T, a serial stretch between regions). Threads sharing cores
 * also evict each other's cache lines, which makes each phase's CPU time a little longer than on
 * a core of its own (the model is pessimistic there).
 *
 * Output: per thread count, the model's step time and speed-up over one thread, the step's CPU
 * time summed over threads (the work, which grows where the split adds work), the serial part,
 * the regions and barriers a step, the time lost to imbalance (slowest minus mean phase), and
 * the --top regions by that loss (their outlined functions, named by addr2line where it is
 * installed). Where T is at most this machine's cores the step's measured wall time is printed too,
 * for comparison (it is not the model's, and is slower under the passive wait). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/rng.h"
#include "mrmnet.h"

/* ---- the interposer ---- */

#define MAXT 256 /* threads a region */
#define MAXSEG 64 /* barriers a region (more are folded into the last phase) */
#define NSITE 4096

typedef void (*omp_body)(void *);
typedef void (*gomp_parallel_fn)(omp_body, void *, unsigned, unsigned);
typedef void (*gomp_barrier_fn)(void);

typedef struct {
    const void *fn; /* the region's outlined body */
    long calls;
    double pred_ms;  /* sum over calls of the slowest thread's phases */
    double mean_ms;  /* sum over calls of the mean thread's phases */
    double cpu_ms;   /* all threads' CPU time */
    long barriers;   /* phases beyond the first, summed over calls */
    int max_team;
    double serial_before_ms; /* the first thread's CPU time outside regions just before this one */
    double least_ms, least_loss_ms; /* from the least-of phases: the slowest thread, and that less the work / threads */
} site;

static gomp_parallel_fn real_parallel;
static gomp_barrier_fn real_barrier;
static int prof_on;                 /* set by the driver around the timed steps */
static double seg_ms[MAXT][MAXSEG]; /* the current region's phases, per thread */
static int seg_n[MAXT];
static site sites[NSITE];
static double master_region_ms; /* the first thread's CPU time inside top-level regions */
static double master_last_exit;  /* the first thread's CPU clock when the last region ended */
static const void *last_fn;      /* that region's body */
#define NPAIR 1024
typedef struct {
    const void *after, *before;
    double ms;
} gap;
static gap gaps[NPAIR]; /* serial time by the regions around it */

/* Each region instance of a step (the i-th region the step opens), its phases' CPU times per
 * thread, the least over the timed steps: what a step costs without the noise of any one run
 * (an interrupt, a phase that found its data evicted by the thread before it). The steps open
 * the same regions in the same order; where they do not, `inst_ok` says so and no least is given. */
#define MAXINST 8192
typedef struct {
    const void *fn;
    int team, phases;
    double *mins;      /* team x phases */
    double serial_min; /* the first thread's time outside regions just before it */
} inst;
static inst insts[MAXINST];
static int n_inst, inst_i, inst_ok, step_no;
static double end_gap_min; /* after the step's last region */

static void add_gap(const void *after, const void *before, double ms) {
    size_t h = (((uintptr_t)after >> 4) * 31 + ((uintptr_t)before >> 4)) % NPAIR;
    for (size_t i = 0; i < NPAIR; i++) {
        gap *g = &gaps[(h + i) % NPAIR];
        if (g->after == after && g->before == before) {
            g->ms += ms;
            return;
        }
        if (!g->after && !g->before) {
            g->after = after, g->before = before, g->ms = ms;
            return;
        }
    }
}
static long n_regions, n_barriers;
static int team_max;
static int all_sites; /* --sites: print every region's figures */
static int serialize = 1; /* run a region's threads one phase at a time (--shared-cores: not) */
static pthread_mutex_t one_at_a_time = PTHREAD_MUTEX_INITIALIZER;

static __thread int tl_in;    /* inside a top-level region being measured */
static __thread int tl_tid;
static __thread int tl_seg;
static __thread double tl_t0;

static double thread_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static void resolve(void) {
    if (!real_parallel) real_parallel = (gomp_parallel_fn)dlsym(RTLD_NEXT, "GOMP_parallel");
    if (!real_barrier) real_barrier = (gomp_barrier_fn)dlsym(RTLD_NEXT, "GOMP_barrier");
    if (!real_parallel || !real_barrier) {
        fprintf(stderr, "bench_scaling: libgomp's GOMP_parallel/GOMP_barrier not found\n");
        abort();
    }
}

static void close_phase(void) {
    double t = thread_ms();
    int k = tl_seg < MAXSEG ? tl_seg : MAXSEG - 1;
    seg_ms[tl_tid][k] += t - tl_t0;
    tl_t0 = t;
}

typedef struct {
    omp_body fn;
    void *data;
} wrapped_arg;

static void wrapped_body(void *p) {
    const wrapped_arg *w = p;
    int t = omp_get_thread_num();
    if (t >= MAXT) { /* not measured */
        w->fn(w->data);
        return;
    }
    if (serialize) pthread_mutex_lock(&one_at_a_time);
    tl_in = 1, tl_tid = t, tl_seg = 0, tl_t0 = thread_ms();
    w->fn(w->data);
    close_phase();
    seg_n[t] = tl_seg + 1;
    tl_in = 0;
    if (serialize) pthread_mutex_unlock(&one_at_a_time);
}

static site *site_of(const void *fn) {
    size_t h = ((uintptr_t)fn >> 4) % NSITE;
    for (size_t i = 0; i < NSITE; i++) {
        site *s = &sites[(h + i) % NSITE];
        if (s->fn == fn) return s;
        if (!s->fn) {
            s->fn = fn;
            return s;
        }
    }
    return NULL;
}

void GOMP_parallel(omp_body fn, void *data, unsigned num_threads, unsigned flags);
void GOMP_parallel(omp_body fn, void *data, unsigned num_threads, unsigned flags) {
    resolve();
    if (!prof_on || tl_in) { /* not timed, or nested inside a timed region: part of its phase */
        real_parallel(fn, data, num_threads, flags);
        return;
    }
    double m0 = thread_ms(), master_last_exit_before = master_last_exit;
    int avail = omp_get_max_threads();
    memset(seg_ms, 0, sizeof seg_ms);
    memset(seg_n, 0, sizeof seg_n);
    wrapped_arg w = {fn, data};
    real_parallel(wrapped_body, &w, num_threads, flags);
    master_last_exit = thread_ms();
    master_region_ms += master_last_exit - m0;
    int team = 0, phases = 0;
    for (int t = 0; t < MAXT; t++)
        if (seg_n[t]) {
            team = t + 1;
            if (seg_n[t] > phases) phases = seg_n[t];
        }
    if (phases > MAXSEG) phases = MAXSEG;
    double pred = 0, mean = 0, cpu = 0;
    for (int k = 0; k < phases; k++) {
        double mx = 0, sum = 0;
        for (int t = 0; t < team; t++) {
            sum += seg_ms[t][k];
            if (seg_ms[t][k] > mx) mx = seg_ms[t][k];
        }
        pred += mx, mean += sum / avail, cpu += sum; /* against every thread there is, not the team */
    }
    if (inst_i < MAXINST) {
        inst *r = &insts[inst_i];
        double g = m0 - master_last_exit_before;
        if (step_no == 1) {
            r->fn = (const void *)fn, r->team = team, r->phases = phases, r->serial_min = g;
            r->mins = malloc(sizeof(double) * (size_t)(team ? team : 1) * (size_t)(phases ? phases : 1));
            if (!r->mins) inst_ok = 0;
            else
                for (int t = 0; t < team; t++)
                    for (int k = 0; k < phases; k++) r->mins[t * phases + k] = seg_ms[t][k];
            n_inst = inst_i + 1;
        } else if (r->fn != (const void *)fn || r->team != team || r->phases != phases || !r->mins) {
            inst_ok = 0;
        } else {
            if (g < r->serial_min) r->serial_min = g;
            for (int t = 0; t < team; t++)
                for (int k = 0; k < phases; k++)
                    if (seg_ms[t][k] < r->mins[t * phases + k]) r->mins[t * phases + k] = seg_ms[t][k];
        }
    } else {
        inst_ok = 0;
    }
    inst_i++;
    site *s = site_of((const void *)fn);
    if (s) {
        s->serial_before_ms += m0 - master_last_exit_before;
        add_gap(last_fn, (const void *)fn, m0 - master_last_exit_before);
        s->calls++, s->pred_ms += pred, s->mean_ms += mean, s->cpu_ms += cpu;
        s->barriers += phases - 1;
        if (team > s->max_team) s->max_team = team;
    }
    last_fn = (const void *)fn;
    n_regions++, n_barriers += phases - 1;
    if (team > team_max) team_max = team;
}

void GOMP_barrier(void);
void GOMP_barrier(void) {
    resolve();
    if (tl_in) {
        close_phase();
        tl_seg++;
        if (serialize) pthread_mutex_unlock(&one_at_a_time);
        real_barrier();
        if (serialize) pthread_mutex_lock(&one_at_a_time);
        tl_t0 = thread_ms(); /* the wait is not work */
    } else {
        real_barrier();
    }
}

/* ---- the driver ---- */

static double wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

typedef struct {
    double pred, least, least_serial, least_work, serial, cpu, imbalance, wall;
    double regions, barriers;
} result;

static int cmp_site(const void *a, const void *b) {
    const site *x = a, *y = b;
    double lx = x->least_loss_ms, ly = y->least_loss_ms;
    return (lx < ly) - (lx > ly);
}

static int cmp_gap(const void *a, const void *b) {
    const gap *x = a, *y = b;
    return (x->ms < y->ms) - (x->ms > y->ms);
}

/* Names the outlined function at fn: "symbol (file:line)" from addr2line for this executable,
 * the library's name otherwise. */
static void name_of(const void *fn, char *out, size_t n) {
    Dl_info di;
    snprintf(out, n, "%p", fn);
    if (!dladdr(fn, &di) || !di.dli_fname) return;
    const char *base = strrchr(di.dli_fname, '/');
    base = base ? base + 1 : di.dli_fname;
    uintptr_t off = (uintptr_t)fn - (uintptr_t)di.dli_fbase;
    if (di.dli_sname) {
        snprintf(out, n, "%s (%s)", di.dli_sname, base);
        return;
    }
    snprintf(out, n, "%s+0x%lx", base, (unsigned long)off);
    if (strstr(base, "dnnl")) {
        snprintf(out, n, "oneDNN (%s+0x%lx)", base, (unsigned long)off);
        return;
    }
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) return;
    self[len] = 0;
    Dl_info me;
    if (!dladdr((const void *)&name_of, &me) || me.dli_fbase != di.dli_fbase) return; /* not this program */
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "addr2line -f -s -e '%s' 0x%lx 2>/dev/null", self, (unsigned long)off);
    FILE *p = popen(cmd, "r");
    if (!p) return;
    char fname[256] = "", where[256] = "";
    if (fgets(fname, sizeof fname, p) && fgets(where, sizeof where, p)) {
        fname[strcspn(fname, "\n")] = 0, where[strcspn(where, "\n")] = 0;
        if (fname[0] && fname[0] != '?') snprintf(out, n, "%s (%s)", fname, where);
    }
    pclose(p);
}

static int run_threads(int T, int train, int B, int steps, int top, double fork_us, double barrier_us,
                       long cores, result *r) {
    mrm_error err = {0};
    mrm_model *m = NULL;
    mrm_optimizer opt = {0};
    mrm_model_config cfg;
    mrm_model_config_default(&cfg);
    cfg.n_classes = 5;
    mrm_rng rng;
    mrm_rng_seed(&rng, 1);
    omp_set_num_threads(T);
    mrm_status s = mrm_model_create(&m, &cfg, &err);
    if (s) {
        fprintf(stderr, "bench_scaling: %s\n", err.msg);
        return 1;
    }
    mrm_model_init(m, 1);
    size_t nx = (size_t)B * MRM_INPUT_LEADS * MRM_INPUT_LEN;
    float *x = malloc(nx * sizeof(float)), *y = malloc((size_t)B * 5 * sizeof(float));
    if (!x || !y) {
        fprintf(stderr, "bench_scaling: out of memory\n");
        return 1;
    }
    mrm_rng_fill_normal(&rng, x, nx);
    for (int i = 0; i < B * 5; i++) y[i] = mrm_rng_uniform(&rng) < 0.3f ? 1.0f : 0.0f;
    if (train) {
        mrm_model_set_dropout(m, 0.2f);
        s = mrm_optimizer_init(&opt, MRM_OPT_ADAM, mrm_model_num_params(m), &err);
    }
    memset(sites, 0, sizeof sites);
    memset(gaps, 0, sizeof gaps);
    for (int i = 0; i < n_inst; i++) free(insts[i].mins);
    memset(insts, 0, sizeof insts);
    n_inst = inst_i = step_no = 0, inst_ok = 1, end_gap_min = 0;
    master_region_ms = 0, n_regions = n_barriers = 0, team_max = 0;
    double master0 = 0, wall = 0;
    for (int it = 0; !s && it < 1 + steps; it++) {
        if (it == 1) prof_on = 1, master0 = master_last_exit = thread_ms(), last_fn = (const void *)&run_threads;
        if (it >= 1) step_no = it, inst_i = 0;
        double w0 = wall_ms();
        mrm_loss loss = {0};
        if (train) {
            mrm_model_zero_grad(m);
            s = mrm_model_forward(m, x, B, 1, &rng, &err);
            if (!s) s = mrm_model_backward(m, y, &loss, &err);
            if (!s) mrm_optimizer_step(&opt, mrm_model_params(m), mrm_model_grads(m));
        } else {
            s = mrm_model_forward(m, x, B, 0, NULL, &err);
        }
        if (it >= 1) wall += wall_ms() - w0;
        if (it >= 1) { /* the gap after the step's last region belongs to no region: a site of its own */
            site *e = site_of((const void *)&run_threads);
            double now = thread_ms();
            if (e) e->serial_before_ms += now - master_last_exit;
            if (it == 1 || now - master_last_exit < end_gap_min) end_gap_min = now - master_last_exit;
            if (inst_i != n_inst) inst_ok = 0;
            add_gap(last_fn, (const void *)&run_threads, now - master_last_exit);
            last_fn = (const void *)&run_threads;
            master_last_exit = now;
        }
    }
    double master = prof_on ? thread_ms() - master0 : 0;
    prof_on = 0;
    if (s) {
        fprintf(stderr, "bench_scaling: %s\n", err.msg);
        return 1;
    }
    if (inst_ok)
        for (int i = 0; i < n_inst; i++) {
            const inst *q = &insts[i];
            site *st = site_of(q->fn);
            if (!st) continue;
            for (int k = 0; k < q->phases; k++) {
                double mx = 0, sum = 0;
                for (int t = 0; t < q->team; t++) {
                    sum += q->mins[t * q->phases + k];
                    if (q->mins[t * q->phases + k] > mx) mx = q->mins[t * q->phases + k];
                }
                st->least_ms += mx, st->least_loss_ms += mx - sum / T;
            }
        }
    double pred = 0, mean = 0, cpu = 0;
    int ns = 0;
    for (int i = 0; i < NSITE; i++)
        if (sites[i].fn) {
            pred += sites[i].pred_ms, mean += sites[i].mean_ms, cpu += sites[i].cpu_ms;
            sites[ns++] = sites[i];
        }
    double serial = master - master_region_ms;
    double over = (n_regions * fork_us + n_barriers * barrier_us) * (T > 1) * 1e-3;
    r->pred = (pred + serial + over) / steps;
    r->least = r->least_serial = r->least_work = NAN;
    if (inst_ok && n_inst > 0) {
        double lp = end_gap_min + over / steps, ser = end_gap_min, work = 0;
        for (int i = 0; i < n_inst; i++) {
            const inst *q = &insts[i];
            lp += q->serial_min, ser += q->serial_min;
            for (int k = 0; k < q->phases; k++) {
                double mx = 0;
                for (int t = 0; t < q->team; t++) {
                    work += q->mins[t * q->phases + k];
                    if (q->mins[t * q->phases + k] > mx) mx = q->mins[t * q->phases + k];
                }
                lp += mx;
            }
        }
        r->least = lp, r->least_serial = ser, r->least_work = work + ser;
    }
    r->serial = serial / steps;
    r->cpu = (cpu + serial) / steps;
    r->imbalance = (pred - mean) / steps;
    r->regions = (double)n_regions / steps;
    r->barriers = (double)n_barriers / steps;
    r->wall = T <= cores ? wall / steps : NAN;
    if (top > 0 && T > 1) {
        qsort(sites, (size_t)ns, sizeof(site), cmp_site);
        printf("  %d threads: regions by time lost to imbalance, least-of model (ms a step: slowest thread less "
               "all threads' work / %d; the slowest; share lost; calls a step; team) [call by call, one run's: lost]\n",
               T, T);
        for (int i = 0; i < ns && i < top; i++) {
            char nm[512];
            name_of(sites[i].fn, nm, sizeof nm);
            printf("    %6.2f  %7.2f  %4.0f%%  %5.0f  %3d  [%6.2f]  %s\n", sites[i].least_loss_ms,
                   sites[i].least_ms, sites[i].least_ms > 0 ? 100 * sites[i].least_loss_ms / sites[i].least_ms : 0,
                   (double)sites[i].calls / steps, sites[i].max_team, (sites[i].pred_ms - sites[i].mean_ms) / steps, nm);
        }
    }
    if (all_sites) {
        printf("  %d threads: every region (name; calls, CPU ms of all threads, slowest, mean, serial before; a step)\n", T);
        for (int i = 0; i < ns; i++) {
            char nm[512];
            if (sites[i].fn == (const void *)&run_threads) snprintf(nm, sizeof nm, "(the end of the step)");
            else name_of(sites[i].fn, nm, sizeof nm);
            printf("    site\t%d\t%s\t%.1f\t%.3f\t%.3f\t%.3f\t%.3f\n", T, nm, (double)sites[i].calls / steps,
                   sites[i].cpu_ms / steps, sites[i].pred_ms / steps, sites[i].mean_ms / steps,
                   sites[i].serial_before_ms / steps);
        }
    }
    if (top > 0 && T > 1) {
        qsort(gaps, NPAIR, sizeof(gap), cmp_gap);
        printf("  %d threads: the first thread's time outside regions (ms a step), between the regions around it\n", T);
        for (int i = 0; i < NPAIR && i < top && gaps[i].ms > 0; i++) {
            char a[512], b[512];
            if (gaps[i].after == (const void *)&run_threads) snprintf(a, sizeof a, "(the step's start)");
            else name_of(gaps[i].after, a, sizeof a);
            if (gaps[i].before == (const void *)&run_threads) snprintf(b, sizeof b, "(the step's end)");
            else name_of(gaps[i].before, b, sizeof b);
            printf("    %7.3f  after %s, before %s\n", gaps[i].ms / steps, a, b);
        }
    }
    free(x);
    free(y);
    mrm_optimizer_free(&opt);
    mrm_model_free(m);
    return 0;
}

/* ---- --self-test: the interposer against a workload of known shape ---- */

static void burn_ms(double ms) {
    double t0 = thread_ms();
    volatile double x = 0;
    while (thread_ms() - t0 < ms) x += 1.0;
}

static int near(double got, double want) { return fabs(got - want) <= 0.25 * want; }

/* Three threads. Region A: thread t works (t + 1) * 4 ms (the model: 12 ms, the slowest).
 * Then 6 ms on the first thread alone (the serial part). Region B: thread t works (3 - t) * 2 ms,
 * a barrier, then (t + 1) * 2 ms: 6 + 6 = 12 ms phase by phase, where each thread's total (8 ms)
 * would say 8. Checks what the interposer measured, by CPU time, with a 25% margin. */
static int self_test(void) {
    int pass = 0, fail = 0;
    omp_set_num_threads(3);
    memset(sites, 0, sizeof sites);
    memset(gaps, 0, sizeof gaps);
    master_region_ms = 0, n_regions = n_barriers = 0, team_max = 0;
    n_inst = inst_i = 0, step_no = 1, inst_ok = 1;
    prof_on = 1, master_last_exit = thread_ms(), last_fn = NULL;
    double m0 = thread_ms();
#pragma omp parallel
    burn_ms((omp_get_thread_num() + 1) * 4.0);
    burn_ms(6.0);
#pragma omp parallel
    {
        int t = omp_get_thread_num();
        burn_ms((3 - t) * 2.0);
#pragma omp barrier
        burn_ms((t + 1) * 2.0);
    }
    double master = thread_ms() - m0;
    prof_on = 0;
    const site *a = NULL, *b = NULL;
    for (int i = 0; i < NSITE; i++)
        if (sites[i].fn && sites[i].barriers == 0) a = &sites[i];
        else if (sites[i].fn) b = &sites[i];
    struct {
        int ok;
        const char *what;
    } checks[] = {
        {n_regions == 2 && team_max == 3, "two regions of three threads seen"},
        {a && b && b->barriers == 1, "the second region's barrier seen, the first has none"},
        {a && near(a->pred_ms, 12.0), "region A: the slowest thread, 12 ms"},
        {a && near(a->cpu_ms, 24.0), "region A: the work of all threads, 24 ms"},
        {b && near(b->pred_ms, 12.0), "region B: the slowest of each phase, 6 + 6 ms"},
        {b && near(b->serial_before_ms, 6.0), "6 ms on the first thread alone before region B"},
        {near(master - master_region_ms, 6.0), "the serial part, 6 ms"},
        {inst_ok && n_inst == 2 && insts[1].phases == 2, "the region instances and their phases recorded"},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        if (checks[i].ok) pass++;
        else fail++, printf("FAIL self-test: %s\n", checks[i].what);
    }
    if (a && b)
        printf("self-test: region A %.2f ms (slowest) of %.2f ms work, region B %.2f ms, serial %.2f ms\n", a->pred_ms,
               a->cpu_ms, b->pred_ms, master - master_region_ms);
    for (int i = 0; i < n_inst; i++) free(insts[i].mins), insts[i].mins = NULL;
    printf("%d passed, %d failed\n", pass, fail);
    return fail ? 1 : 0;
}

/* The report went out whole: stdout flushed without error (a full disk, a closed pipe). */
static int stdout_ok(void) {
    if (fflush(stdout) == 0 && !ferror(stdout)) return 1;
    perror("bench_scaling: writing the report to standard output");
    return 0;
}

static void usage(void) {
    fprintf(stderr, "usage: bench_scaling [--case train|eval] [--batch N] [--threads 1,2,4,8,12,16] "
                    "[--steps 5] [--fork-us 2] [--barrier-us 0.5] [--top 12] [--sites] [--shared-cores]\n"
                    "       bench_scaling --self-test\n");
}

int main(int argc, char **argv) {
    const char *wp = getenv("OMP_WAIT_POLICY"), *sc = getenv("GOMP_SPINCOUNT");
    if (!wp || strcmp(wp, "passive") != 0 || !sc || strcmp(sc, "0") != 0) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        setenv("GOMP_SPINCOUNT", "0", 1);
        execv("/proc/self/exe", argv);
        perror("bench_scaling: execv /proc/self/exe");
        return 1;
    }
    if (argc == 2 && !strcmp(argv[1], "--self-test")) {
        int rc = self_test();
        return stdout_ok() ? rc : 1;
    }
    int train = 1, B = -1, steps = 5, top = 12, threads[64], nt = 0;
    double fork_us = 2, barrier_us = 0.5;
    const char *tlist = "1,2,4,8,12,16";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v && strcmp(a, "--shared-cores") != 0 && strcmp(a, "--sites") != 0) {
            usage();
            return 2;
        }
        if (!strcmp(a, "--case")) {
            if (!strcmp(v, "train")) train = 1;
            else if (!strcmp(v, "eval")) train = 0;
            else {
                usage();
                return 2;
            }
        } else if (!strcmp(a, "--batch")) B = atoi(v);
        else if (!strcmp(a, "--threads")) tlist = v;
        else if (!strcmp(a, "--steps")) steps = atoi(v);
        else if (!strcmp(a, "--top")) top = atoi(v);
        else if (!strcmp(a, "--fork-us")) fork_us = atof(v);
        else if (!strcmp(a, "--barrier-us")) barrier_us = atof(v);
        else if (!strcmp(a, "--sites")) {
            all_sites = 1;
            i--;
        } else if (!strcmp(a, "--shared-cores")) {
            serialize = 0;
            i--;
        }
        else {
            usage();
            return 2;
        }
        i++;
    }
    if (B < 0) B = train ? 96 : 32;
    for (const char *p = tlist; *p && nt < 64;) {
        char *e;
        long t = strtol(p, &e, 10);
        if (e == p || t < 1 || t > MAXT) {
            usage();
            return 2;
        }
        threads[nt++] = (int)t;
        p = *e == ',' ? e + 1 : e;
        if (*e && *e != ',') {
            usage();
            return 2;
        }
    }
    if (B < 1 || steps < 1 || nt == 0) {
        usage();
        return 2;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    printf("bench_scaling: %s at batch %d, %d timed step(s) after one untimed, model with fork/join %.2f us "
           "and barrier %.2f us a region/barrier (a model: see the source's header)\n",
           train ? "training step" : "evaluation forward", B, steps, fork_us, barrier_us);
    result res[64];
    for (int i = 0; i < nt; i++)
        if (run_threads(threads[i], train, B, steps, top, fork_us, barrier_us, cores, &res[i])) return 1;
    printf("\n threads | model ms | speed-up | efficiency | least-of model ms | speed-up | CPU ms (all threads) | serial ms | imbalance ms | "
           "regions | barriers | measured wall ms\n");
    for (int i = 0; i < nt; i++) {
        const result *r = &res[i];
        printf(" %7d | %8.1f | %7.2fx | %9.0f%% | %17.1f | %7.2fx | %20.1f | %9.2f | %12.1f | %7.0f | %8.0f | ",
               threads[i], r->pred, res[0].pred / r->pred, 100 * res[0].pred * threads[0] / (r->pred * threads[i]),
               r->least, res[0].least / r->least, r->cpu,
               r->serial, r->imbalance, r->regions, r->barriers);
        if (isnan(r->wall)) printf("-\n");
        else printf("%.1f\n", r->wall);
    }
    printf("\n least-of model, its parts (ms a step): threads | work (all threads' CPU) | work / threads | serial | "
           "imbalance and overheads | efficiency (work / threads / model)\n");
    for (int i = 0; i < nt; i++) {
        const result *r = &res[i];
        double ideal = (r->least_work - r->least_serial) / threads[i]; /* the parallel work, evenly shared */
        printf(" %7d | %8.1f | %8.2f | %6.2f | %6.2f | %5.1f%%\n", threads[i], r->least_work, r->least_work / threads[i],
               r->least_serial, r->least - ideal - r->least_serial, 100 * r->least_work / threads[i] / r->least);
    }
    for (int i = 0; i < n_inst; i++) free(insts[i].mins), insts[i].mins = NULL;
    return stdout_ok() ? 0 : 1;
}
