/* The engine alone (libmrmnet_engine: C11 + libm): an image compiled by `mrmnet export --engine`
 * run on the inputs given, against the logits of the evaluation-mode forward (`mrmnet forward`),
 * with every kernel set the CPU runs; and no allocation while running (malloc, calloc, realloc,
 * aligned_alloc and posix_memalign are counted by this program's own definitions, which the
 * dynamic linker puts in front of the C library's). The fixtures come from the folder in
 * MRM_ENGINE_FIXTURES (engine.mrme, x.f32, logits1.f32 [, logits2.f32]: raw float32; the int8
 * image engine_int8.mrme and logits1_int8.f32), which train/test_engine_parity writes (ctest,
 * scripts/test-engine.sh); without it the test skips. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

#include "engine/engine_image.h"
#include "mrmnet/engine.h"
#include "test_util.h"

/* ---- counting allocations (not under AddressSanitizer, which owns malloc) ---------------- */
#if defined(__SANITIZE_ADDRESS__) || defined(__has_feature)
#if defined(__SANITIZE_ADDRESS__)
#define NO_COUNT 1
#elif __has_feature(address_sanitizer)
#define NO_COUNT 1
#endif
#endif
#if !defined(NO_COUNT) && defined(__GLIBC__)
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
static volatile long n_alloc;
void *malloc(size_t n) {
    n_alloc++;
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
    n_alloc++;
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
    n_alloc++;
    return __libc_realloc(p, n);
}
void *aligned_alloc(size_t al, size_t n) {
    n_alloc++;
    return __libc_memalign(al, n);
}
int posix_memalign(void **p, size_t al, size_t n) {
    n_alloc++;
    *p = __libc_memalign(al, n);
    return *p ? 0 : 12;
}
#define COUNTING 1
static long allocs(void) { return n_alloc; }
#else
#define COUNTING 0
static long allocs(void) { return 0; }
#endif

static void *read_all(const char *dir, const char *name, size_t *len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = NULL;
    if (n > 0 && posix_memalign(&p, MRM_ENGINE_ALIGN, ((size_t)n + 63) / 64 * 64) == 0 &&
        fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return p;
}

static double max_rel(const float *a, const float *ref, size_t n) {
    double mx = 0, md = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)ref[i]), d = fabs((double)a[i] - ref[i]);
        if (r > mx) mx = r;
        if (d > md || d != d) md = d != d ? INFINITY : d;
    }
    return md / (mx > 1e-30 ? mx : 1e-30);
}

/* a team of the caller's threads (mrm_engine_run_team) with a POSIX barrier */
static void bar_sync(void *user) { pthread_barrier_wait(user); }
typedef struct team_job {
    const mrm_engine *e;
    void *work;
    size_t work_bytes;
    const float *x;
    int B;
    float *l1;
    int ith;
    pthread_barrier_t *bar;
    mrm_status st;
    mrm_error err;
} team_job;
static void *team_main(void *arg) {
    team_job *j = arg;
    j->st = mrm_engine_run_team(j->e, j->work, j->work_bytes, j->x, j->B, j->l1, NULL, j->ith, 2, bar_sync, j->bar,
                                &j->err);
    return NULL;
}

int main(void) {
    const char *dir = getenv("MRM_ENGINE_FIXTURES");
    size_t len = 0, xl = 0, l1l = 0, l2l = 0;
    void *img = dir && *dir ? read_all(dir, "engine.mrme", &len) : NULL;
    if (!img) {
        printf("skipped: no engine fixtures (MRM_ENGINE_FIXTURES unset or without engine.mrme)\n");
        return 77;
    }
    float *x = read_all(dir, "x.f32", &xl), *r1 = read_all(dir, "logits1.f32", &l1l), *r2 = read_all(dir, "logits2.f32", &l2l);
    CHECK(x && r1 && xl % (12 * 1000 * 4) == 0, "fixtures x.f32 and logits1.f32");
    if (!x || !r1) return 1;
    int B = (int)(xl / (12 * 1000 * 4));
    mrm_error err;
    mrm_engine e;
    for (int isa = MRM_ENGINE_PORTABLE; isa <= MRM_ENGINE_ISA_LAST; isa++) {
        mrm_status st = mrm_engine_open_isa(&e, img, len, (mrm_engine_isa)isa, &err);
        if (st == MRM_ERR_UNSUPPORTED) continue;
        CHECK(st == MRM_OK, "open: %s", err.msg);
        if (st) continue;
        int N = e.n_classes;
        CHECK(l1l == (size_t)B * N * 4 && (e.n_heads < 2 || l2l == l1l), "logits fixtures of %d x %d", B, N);
        mrm_engine_sizes s;
        CHECK(mrm_engine_get_sizes(&e, B, &s, &err) == MRM_OK, "sizes");
        void *work = NULL;
        CHECK(posix_memalign(&work, MRM_ENGINE_ALIGN, (s.work_bytes + 63) / 64 * 64) == 0, "work");
        float *l1 = calloc((size_t)B * N, 4), *l2 = calloc((size_t)B * N, 4);
        long a0 = allocs();
        st = mrm_engine_run(&e, work, s.work_bytes, x, B, l1, e.n_heads > 1 ? l2 : NULL, &err);
        long a1 = allocs();
        CHECK(st == MRM_OK, "run: %s", err.msg);
        CHECK(a1 == a0, "%ld allocations while running", a1 - a0);
        double d1 = max_rel(l1, r1, (size_t)B * N), d2 = e.n_heads > 1 && r2 ? max_rel(l2, r2, (size_t)B * N) : 0;
        printf("%-8s %d records: logits max rel. error %.2e %.2e; weights %zu bytes, work %zu bytes%s\n",
               mrm_engine_isa_name(isa), B, d1, d2, s.weight_bytes, s.work_bytes,
               COUNTING ? ", 0 allocations while running" : "");
        CHECK(d1 < 1e-4 && d2 < 1e-4, "%s: %.3g %.3g", mrm_engine_isa_name(isa), d1, d2);
        /* groups of records through each step (a larger work buffer): the group the sizes give,
         * and a group of 2 (the buffer for two records; the last group short when B is odd), the
         * same logits bit for bit, nothing allocated */
        CHECK(s.group_records == (B < MRM_ENGINE_GROUP ? B : MRM_ENGINE_GROUP) && s.group_work_bytes >= s.work_bytes,
              "group of %d records, %zu bytes", s.group_records, s.group_work_bytes);
        const size_t per = s.group_records > 1 ? (s.group_work_bytes - s.work_bytes) / (size_t)(s.group_records - 1) : 0;
        const size_t gsz[2] = {s.group_work_bytes, s.work_bytes + per};
        for (int k = 0; k < 2; k++) {
            void *gw = NULL;
            CHECK(posix_memalign(&gw, MRM_ENGINE_ALIGN, (gsz[k] + 63) / 64 * 64) == 0, "group work");
            float *g1 = calloc((size_t)B * N, 4), *g2 = calloc((size_t)B * N, 4);
            a0 = allocs();
            st = mrm_engine_run(&e, gw, gsz[k], x, B, g1, e.n_heads > 1 ? g2 : NULL, &err);
            CHECK(allocs() == a0, "allocations while running a group");
            CHECK(st == MRM_OK, "grouped run: %s", err.msg);
            CHECK(!memcmp(g1, l1, (size_t)B * N * 4) && !memcmp(g2, l2, (size_t)B * N * 4),
                  "%s: a group of %d records gives other logits", mrm_engine_isa_name(isa), k ? 2 : s.group_records);
            free(gw), free(g1), free(g2);
        }
        free(work), free(l1), free(l2);
    }
    /* the int8 image (when the fixtures have it) with every kernel set, against the logits of the
     * portable int8 kernels where it was built: the same int32 sums, float epilogues that may
     * round apart (FMA), now and then a value on the other side of an int8 step later on */
    size_t qlen = 0, q1l = 0;
    void *qimg = read_all(dir, "engine_int8.mrme", &qlen);
    float *q1ref = read_all(dir, "logits1_int8.f32", &q1l);
    int int8_sets = 0;
    for (int isa = MRM_ENGINE_PORTABLE; qimg && q1ref && isa <= MRM_ENGINE_ISA_LAST; isa++) {
        mrm_status st = mrm_engine_open_isa(&e, qimg, qlen, (mrm_engine_isa)isa, &err);
        if (st == MRM_ERR_UNSUPPORTED) continue;
        CHECK(st == MRM_OK && e.quantized, "int8 open: %s", err.msg);
        if (st) continue;
        const int N = e.n_classes;
        CHECK(q1l == (size_t)B * N * 4, "int8 logits fixture of %d x %d", B, N);
        if (q1l != (size_t)B * N * 4) break;
        mrm_engine_sizes s;
        CHECK(mrm_engine_get_sizes(&e, B, &s, &err) == MRM_OK, "sizes");
        void *work = NULL;
        CHECK(posix_memalign(&work, MRM_ENGINE_ALIGN, (s.work_bytes + 63) / 64 * 64) == 0, "work");
        float *l1 = calloc((size_t)B * N, 4);
        long a0 = allocs();
        st = mrm_engine_run(&e, work, s.work_bytes, x, B, l1, NULL, &err);
        long a1 = allocs();
        CHECK(st == MRM_OK && a1 == a0, "int8 run: %s (%ld allocations)", err.msg, a1 - a0);
        /* the team halves of the same kernel set (pack, tiles): a team of two threads, the same bits */
        float *t1 = calloc((size_t)B * N, 4);
        team_job tj[2];
        pthread_t th;
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, 2);
        for (int j = 0; j < 2; j++)
            tj[j] = (team_job){&e, work, s.work_bytes, x, B, t1, j, &bar, MRM_OK, {0}};
        int started = pthread_create(&th, NULL, team_main, &tj[1]) == 0;
        if (started) {
            team_main(&tj[0]);
            pthread_join(th, NULL);
        }
        pthread_barrier_destroy(&bar);
        CHECK(started && tj[0].st == MRM_OK && tj[1].st == MRM_OK && memcmp(t1, l1, sizeof(float) * B * N) == 0,
              "%s int8: a team of two differs from mrm_engine_run (%s %s)", mrm_engine_isa_name(isa), tj[0].err.msg,
              tj[1].err.msg);
        free(t1);
        double d = max_rel(l1, q1ref, (size_t)B * N);
        printf("%-10s int8 %d records: logits max rel. error %.2e vs the portable int8 kernels (x86-64); weights %zu bytes, "
               "work %zu bytes\n", mrm_engine_isa_name(isa), B, d, s.weight_bytes, s.work_bytes);
        CHECK(d < 2e-3, "%s int8: %.3g", mrm_engine_isa_name(isa), d);
        int8_sets++;
        free(work), free(l1);
    }
    if (!qimg || !q1ref) printf("no int8 fixtures (engine_int8.mrme, logits1_int8.f32): the int8 image not run\n");
    else CHECK(int8_sets > 0, "the int8 image ran with no kernel set");
    /* the kernels chosen at open: the best the CPU runs (aarch64 Linux: the dot-product kernel
     * exactly where the CPU reports the instructions) */
    CHECK(mrm_engine_open(&e, img, len, &err) == MRM_OK, "open: %s", err.msg);
    printf("chosen at open: %s\n", mrm_engine_isa_name(e.isa));
#if defined(__aarch64__) && defined(__linux__)
    {
        const int has_dot = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
        CHECK(has_dot == (e.isa == MRM_ENGINE_NEONDOT), "the CPU %s the dot-product instructions; chosen: %s",
              has_dot ? "has" : "lacks", mrm_engine_isa_name(e.isa));
    }
#endif
    free(qimg), free(q1ref);
    /* every single-byte change of the header, buffer and step tables is refused or still
     * consistent (opens); truncations are refused */
    unsigned char *bad = NULL;
    CHECK(posix_memalign((void **)&bad, MRM_ENGINE_ALIGN, (len + 63) / 64 * 64) == 0, "copy");
    memcpy(bad, img, len);
    int refused = 0;
    size_t lim = len < 20000 ? len : 20000;
    for (size_t off = 0; off < lim; off += 3) {
        unsigned char old = bad[off];
        bad[off] = (unsigned char)(old ^ 0x81);
        if (mrm_engine_open(&e, bad, len, &err) != MRM_OK) refused++;
        bad[off] = old;
    }
    /* every step's buffer ids: one past the table, -2 or huge is refused, and so is a second
     * input named for an operation that takes one (the runs form a pointer from every id) */
    {
        const eng_header *h = (const eng_header *)(const void *)bad;
        eng_step *stp = (eng_step *)(void *)(bad + h->steps_off);
        int id_refused = 0, id_tried = 0;
        for (uint32_t i = 0; i < h->n_steps; i++) {
            int32_t *ids[3] = {&stp[i].in0, &stp[i].in1, &stp[i].out};
            const int32_t vals[4] = {(int32_t)h->n_bufs, -2, 1 << 30, INT32_MIN};
            for (int j = 0; j < 3; j++)
                for (int v = 0; v < 4; v++) {
                    int32_t keep = *ids[j];
                    *ids[j] = vals[v];
                    id_tried++;
                    id_refused += mrm_engine_open(&e, bad, len, &err) != MRM_OK;
                    *ids[j] = keep;
                }
            if (stp[i].op == ENG_OP_POOL2S1 || stp[i].op == ENG_OP_FUSION) {
                stp[i].in1 = stp[i].in0;
                id_tried++;
                id_refused += mrm_engine_open(&e, bad, len, &err) != MRM_OK;
                stp[i].in1 = -1;
            }
        }
        CHECK(id_refused == id_tried, "%d of %d steps' out-of-range buffer ids refused", id_refused, id_tried);
        CHECK(mrm_engine_open(&e, bad, len, &err) == MRM_OK, "the restored image opens: %s", err.msg);
    }
    /* the FFT convolutions (kind FFT version 4 on, kind FFT3 version 5 on): one in an older image,
     * with groups, with more taps per phase than the largest block takes, whose spectra's size
     * does not follow from its shape, or marked with the other FFT kind (its spectra's size is the
     * other's), is refused */
    {
        eng_header *h = (eng_header *)(void *)bad;
        eng_step *stp = (eng_step *)(void *)(bad + h->steps_off);
        int n_fft = 0, fft_refused = 0, fft_tried = 0;
        for (uint32_t i = 0; i < h->n_steps; i++) {
            if (stp[i].op != ENG_OP_CONV || (stp[i].kind != ENG_CONV_FFT && stp[i].kind != ENG_CONV_FFT3)) continue;
            n_fft++;
            eng_step keep = stp[i];
            uint32_t ver = h->version;
            h->version = stp[i].kind == ENG_CONV_FFT3 ? 4 : 3;
            fft_tried++, fft_refused += mrm_engine_open(&e, bad, len, &err) != MRM_OK;
            h->version = ver;
            stp[i].groups = 2;
            fft_tried++, fft_refused += mrm_engine_open(&e, bad, len, &err) != MRM_OK;
            stp[i] = keep;
            stp[i].k = 400, stp[i].pad = 200; /* 400 taps: same output length, more than 129 per phase */
            fft_tried++, fft_refused += mrm_engine_open(&e, bad, len, &err) != MRM_OK;
            stp[i] = keep;
            stp[i].nw[0] -= 4;
            fft_tried++, fft_refused += mrm_engine_open(&e, bad, len, &err) != MRM_OK;
            stp[i] = keep;
            stp[i].kind = 4; /* no such kind */
            fft_tried++, fft_refused += mrm_engine_open(&e, bad, len, &err) != MRM_OK;
            stp[i] = keep;
            stp[i].kind = keep.kind == ENG_CONV_FFT3 ? ENG_CONV_FFT : ENG_CONV_FFT3;
            fft_tried++, fft_refused += mrm_engine_open(&e, bad, len, &err) != MRM_OK;
            stp[i] = keep;
        }
        CHECK(n_fft == 0 || (fft_refused == fft_tried && mrm_engine_open(&e, bad, len, &err) == MRM_OK),
              "%d of %d altered FFT steps refused", fft_refused, fft_tried);
        printf("FFT convolutions: %d, their %d alterations refused\n", n_fft, fft_refused);
    }
    for (size_t cut = 1; cut < len; cut = cut * 2 + 1) CHECK(mrm_engine_open(&e, bad, len - cut, &err) != MRM_OK, "cut %zu", cut);
    printf("altered images refused: %d of %zu\n", refused, lim / 3);
    free(bad);
    free(img), free(x), free(r1), free(r2);
    TEST_END();
}
