/* The engine's runtime (mrmnet/engine.h): opening an image (every offset and shape checked),
 * memory sizes, and running the steps of one record after another in the caller's work
 * buffer. No allocation, no threads, no global state: the kernels chosen at open are kept in
 * the engine. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common/error.h"
#include "engine/engine_image.h"
#include "engine/fft.h"
#include "engine/kernels.h"
#include "engine/team_plan.h"
#include "mrmnet/engine.h"

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20) /* Linux's bit for the dot-product instructions (asm/hwcap.h) */
#endif
#endif

#define LN_EPS 1e-6f

const char *mrm_engine_isa_name(int isa) {
    switch (isa) {
    case MRM_ENGINE_PORTABLE: return "portable";
    case MRM_ENGINE_AVX2: return "avx2";
    case MRM_ENGINE_AVX512: return "avx512";
    case MRM_ENGINE_AVX512VNNI: return "avx512vnni";
    case MRM_ENGINE_NEONDOT: return "neondot";
    }
    return "unknown";
}

/* The best kernels this CPU runs. */
static int detect_isa(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return __builtin_cpu_supports("avx512vnni") ? MRM_ENGINE_AVX512VNNI : MRM_ENGINE_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return MRM_ENGINE_AVX2;
#elif defined(__aarch64__) && defined(__linux__)
    if (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) return MRM_ENGINE_NEONDOT;
#endif
    return MRM_ENGINE_PORTABLE;
}

/* Whether this CPU runs the kernels isa, the best being best: x86-64's sets nest (VNNI >
 * AVX-512F > AVX2 > portable); the ARM set stands alone. */
static int isa_runs(int isa, int best) {
    if (isa == MRM_ENGINE_PORTABLE) return 1;
    if (isa >= MRM_ENGINE_AVX2 && isa <= MRM_ENGINE_AVX512VNNI) return best >= isa && best <= MRM_ENGINE_AVX512VNNI;
    return isa == MRM_ENGINE_NEONDOT && best == MRM_ENGINE_NEONDOT;
}

/* One kernel set's functions: whole convolution steps on one thread (direct, Winograd, the two
 * FFT kinds, int8), and the halves that a team shares out (mrm_engine_run_team). Adding a step
 * kind or a kernel set touches this table only. */
typedef struct kern {
    eng_conv_fn conv;
    eng_convw_fn convw, convf, convf3;
    eng_conv8_fn conv8;
    eng_conv_pad_fn pad;
    eng_conv_tiles_fn tiles;
    eng_tile (*tile)(void);
    eng_conv8_pack_fn pack8;
    eng_conv8_tiles_fn tiles8;
    eng_tile (*tile8)(void);
    eng_convf_in_fn fft_in;
    eng_convf_out_fn fft_out, fft_out3;
    eng_convw_in_fn wino_in;
    eng_convw_out_fn wino_out;
} kern;

/* The float kernels F with the int8 kernels Q. */
#define KERN(F, Q)                                                                                                    \
    {                                                                                                                 \
        .conv = mrm_eng_conv_##F, .convw = mrm_eng_convw_##F, .convf = mrm_eng_convf_##F,                             \
        .convf3 = mrm_eng_convf3_##F, .conv8 = mrm_eng_conv8_##Q, .pad = mrm_eng_conv_##F##_pad,                      \
        .tiles = mrm_eng_conv_##F##_tiles, .tile = mrm_eng_conv_##F##_tile, .pack8 = mrm_eng_conv8_##Q##_pack,        \
        .tiles8 = mrm_eng_conv8_##Q##_tiles, .tile8 = mrm_eng_conv8_##Q##_tile, .fft_in = mrm_eng_convf_##F##_in,     \
        .fft_out = mrm_eng_convf_##F##_out, .fft_out3 = mrm_eng_convf_##F##_out3, .wino_in = mrm_eng_convw_##F##_in,  \
        .wino_out = mrm_eng_convw_##F##_out                                                                           \
    }
static const kern KERN_PORTABLE = KERN(portable, portable);
#if defined(__x86_64__)
static const kern KERN_AVX2 = KERN(avx2, avx2), KERN_AVX512 = KERN(avx512, avx512),
                  KERN_AVX512VNNI = KERN(avx512, avx512vnni);
#elif defined(__aarch64__)
static const kern KERN_NEONDOT = KERN(portable, neondot);
#endif
#undef KERN

static const kern *kern_of(int isa) {
#if defined(__x86_64__)
    if (isa == MRM_ENGINE_AVX512VNNI) return &KERN_AVX512VNNI;
    if (isa == MRM_ENGINE_AVX512) return &KERN_AVX512;
    if (isa == MRM_ENGINE_AVX2) return &KERN_AVX2;
#elif defined(__aarch64__)
    if (isa == MRM_ENGINE_NEONDOT) return &KERN_NEONDOT;
#endif
    (void)isa;
    return &KERN_PORTABLE;
}

static const eng_header *hdr(const mrm_engine *e) { return (const eng_header *)(const void *)e->image; }
static const eng_buf *bufs(const mrm_engine *e) { return (const eng_buf *)(const void *)(e->image + hdr(e)->bufs_off); }
static const eng_step *steps(const mrm_engine *e) { return (const eng_step *)e->steps; }
static const float *wf(const mrm_engine *e, const eng_step *s, int j) {
    return s->w[j] == ENG_NONE ? NULL : (const float *)(const void *)(e->weights + s->w[j]);
}

/* ---- checking an image ------------------------------------------------------------------- */

static int in_range(uint64_t off, uint64_t len, uint64_t total) { return off <= total && len <= total - off; }

/* The buffer id b of step i holds (c, L)? */
static mrm_status check_buf(const eng_header *h, const eng_buf *b, int step, const char *field, int id, long long c,
                            long long L, int may_be_input, mrm_error *err) {
    if (id < 0 || (uint32_t)id >= h->n_bufs || (id == 0 && !may_be_input))
        return mrm_fail(err, MRM_ERR_FORMAT, "engine image: step %d: %s: buffer %d out of range", step, field, id);
    if (b[id].c != c || b[id].L != L)
        return mrm_fail(err, MRM_ERR_FORMAT, "engine image: step %d: %s: buffer %d is (%u, %u), the step needs (%lld, %lld)",
                        step, field, id, b[id].c, b[id].L, c, L);
    return MRM_OK;
}

/* Weight slot j of step i: present with exactly `floats` floats (plus tail) or absent if allowed. */
static mrm_status check_w(const eng_header *h, const eng_step *s, int i, int j, uint64_t bytes, int optional,
                          mrm_error *err) {
    if (s->w[j] == ENG_NONE) {
        if (optional) return MRM_OK;
        return mrm_fail(err, MRM_ERR_FORMAT, "engine image: step %d: weight %d missing", i, j);
    }
    if (s->w[j] % 4 || s->nw[j] != bytes || !in_range(s->w[j], s->nw[j], h->weights_bytes))
        return mrm_fail(err, MRM_ERR_FORMAT,
                        "engine image: step %d: weight %d: %llu bytes at %llu (expected %llu bytes, aligned, inside the "
                        "%llu-byte arena)",
                        i, j, (unsigned long long)s->nw[j], (unsigned long long)s->w[j], (unsigned long long)bytes,
                        (unsigned long long)h->weights_bytes);
    return MRM_OK;
}

static int dim_ok(long long v) { return v >= 1 && v <= ENG_MAX_DIM; }

static mrm_status check_step(const eng_header *h, const eng_buf *b, const eng_step *s, int i, mrm_error *err) {
    mrm_status st = MRM_OK;
    const uint64_t F = sizeof(float);
    /* every buffer id is one of the image's or -1; the runs form a pointer from each id, used or not */
    const int32_t ids[3] = {s->in0, s->in1, s->out};
    for (int j = 0; j < 3; j++)
        if (ids[j] < -1 || (ids[j] >= 0 && (uint32_t)ids[j] >= h->n_bufs))
            return mrm_fail(err, MRM_ERR_FORMAT, "engine image: step %d: %s: buffer %d out of range (%u buffers)", i,
                            j == 0 ? "input" : j == 1 ? "second input" : "output", ids[j], h->n_bufs);
    if (s->lane < 0 || s->lane > ENG_MAX_LANES)
        return mrm_fail(err, MRM_ERR_FORMAT, "engine image: step %d: lane %d (0 to %d)", i, s->lane, ENG_MAX_LANES);
    if (s->in1 != -1 && (s->op == ENG_OP_POOL2S1 || s->op == ENG_OP_FUSION))
        return mrm_fail(err, MRM_ERR_FORMAT, "engine image: step %d: operation %d takes one input, the step names a second (%d)",
                        i, s->op, s->in1);
    switch (s->op) {
    case ENG_OP_CONV:
    case ENG_OP_CONV8: {
        if (!dim_ok(s->cin) || !dim_ok(s->cout) || !dim_ok(s->k) || s->k > 4096 || !dim_ok(s->stride) || s->stride > 64 ||
            s->pad < 0 || s->pad > 4096 || !dim_ok(s->groups) || s->cin % s->groups || s->cout % s->groups ||
            !dim_ok(s->lin) || !dim_ok(s->lout))
            return mrm_fail(err, MRM_ERR_FORMAT, "engine image: step %d: convolution shape out of range", i);
        long long span = (long long)s->lin + 2LL * s->pad - s->k;
        if (span < 0 || span / s->stride + 1 != s->lout)
            return mrm_fail(err, MRM_ERR_FORMAT, "engine image: step %d: output length %d does not follow from the input's",
                            i, s->lout);
        if ((st = check_buf(h, b, i, "input", s->in0, s->cin, s->lin, 1, err))) return st;
        if ((st = check_buf(h, b, i, "output", s->out, s->cout, s->lout, 0, err))) return st;
        if (s->in1 >= 0 && (st = check_buf(h, b, i, "residual", s->in1, s->cout, s->lout, 0, err))) return st;
        uint64_t nw = (uint64_t)s->cout * (s->cin / s->groups) * s->k;
        if (s->op == ENG_OP_CONV && s->kind == ENG_CONV_WINOGRAD) {
            if (h->version < 3 || s->groups != 1)
                return mrm_fail(err, MRM_ERR_FORMAT, "engine image: step %d: a Winograd convolution %s", i,
                                s->groups != 1 ? "with groups" : "in a version 2 image");
            if ((st = check_w(h, s, i, 0, mrm_eng_wino_weight_floats(s->cin, s->cout, s->k, s->stride) * F, 0, err)))
                return st;
        } else if (s->op == ENG_OP_CONV && (s->kind == ENG_CONV_FFT || s->kind == ENG_CONV_FFT3)) {
            const int three = s->kind == ENG_CONV_FFT3, vmin = three ? 5 : 4;
            if (h->version < (uint32_t)vmin || s->groups != 1 || (s->k + s->stride - 1) / s->stride > ENG_FFT_NMAX / 2 + 1)
                return mrm_fail(err, MRM_ERR_FORMAT, "engine image: step %d: an FFT convolution%s %s", i,
                                three ? " (three products a bin)" : "",
                                s->groups != 1                 ? "with groups"
                                : h->version < (uint32_t)vmin ? (three ? "in an image older than version 5"
                                                                        : "in a version 2 or 3 image")
                                                               : "with more taps per phase than it takes");
            if ((st = check_w(h, s, i, 0,
                              (three ? mrm_eng_fft3_weight_floats : mrm_eng_fft_weight_floats)(s->cin, s->cout, s->k,
                                                                                               s->stride) *
                                  F,
                              0, err)))
                return st;
        } else if (s->kind != ENG_CONV_DIRECT) {
            return mrm_fail(err, MRM_ERR_FORMAT, "engine image: step %d: unknown convolution kind %d", i, s->kind);
        } else if (s->op == ENG_OP_CONV) {
            if ((st = check_w(h, s, i, 0, (nw + ENG_W_TAIL) * F, 0, err))) return st;
        } else {
            uint64_t n8 = mrm_eng_pack8_bytes(s->cin, s->cout, s->k, s->groups);
            if ((st = check_w(h, s, i, 0, n8, 0, err))) return st;
            if ((st = check_w(h, s, i, 4, (uint64_t)s->cout * 4, 0, err))) return st;
            if ((st = check_w(h, s, i, 2, (uint64_t)s->cout * F, 0, err))) return st;
            if ((st = check_w(h, s, i, 3, (uint64_t)s->cout * F, 0, err))) return st;
            if (!(s->in_scale > 0.0f) || !(s->in_scale < 1e30f))
                return mrm_fail(err, MRM_ERR_FORMAT, "engine image: step %d: in_scale %g is not a positive number", i,
                                (double)s->in_scale);
        }
        return check_w(h, s, i, 1, (uint64_t)s->cout * F, 0, err);
    }
    case ENG_OP_POOL2S1:
        if (!dim_ok(s->c) || !dim_ok(s->L)) break;
        if ((st = check_buf(h, b, i, "input", s->in0, s->c, s->L, 0, err))) return st;
        return check_buf(h, b, i, "output", s->out, s->c, s->L + 1LL, 0, err);
    case ENG_OP_POOL2:
        if (!dim_ok(s->c) || !dim_ok(s->L) || s->L < 2) break;
        if ((st = check_buf(h, b, i, "input", s->in0, s->c, s->L, 0, err))) return st;
        if (s->in1 >= 0 && (st = check_buf(h, b, i, "sum", s->in1, s->c, s->L / 2, 0, err))) return st;
        return check_buf(h, b, i, "output", s->out, s->c, s->L / 2, 0, err);
    case ENG_OP_GATE:
        if (!dim_ok(s->c) || !dim_ok(s->L) || (s->kind != 0 && s->kind != 1) || (s->kind == 1 && s->c < 4)) break;
        if ((st = check_buf(h, b, i, "input", s->in0, s->c, s->L, 0, err))) return st;
        if ((st = check_buf(h, b, i, "gated", s->in1, s->c, s->L, 0, err))) return st;
        if ((st = check_buf(h, b, i, "output", s->out, s->c, s->L, 0, err))) return st;
        if (s->kind == 1) {
            uint64_t n = (uint64_t)(s->c / 4) * s->c * F;
            if ((st = check_w(h, s, i, 0, n, 0, err)) || (st = check_w(h, s, i, 1, n, 0, err))) return st;
        }
        return MRM_OK;
    case ENG_OP_FUSION:
        if (!dim_ok(s->c) || !dim_ok(s->L) || s->c < 8) break;
        if ((st = check_buf(h, b, i, "input", s->in0, s->c, s->L, 0, err))) return st;
        if ((st = check_buf(h, b, i, "output", s->out, 2LL * s->c, s->L, 0, err))) return st;
        {
            uint64_t c = (uint64_t)s->c, c8 = c / 8;
            if ((st = check_w(h, s, i, 0, c8 * c * F, 0, err)) || (st = check_w(h, s, i, 1, c * c8 * F, 0, err)) ||
                (st = check_w(h, s, i, 2, c * F, 0, err)) || (st = check_w(h, s, i, 3, 14 * F, 0, err)) ||
                (st = check_w(h, s, i, 4, F, 0, err)) || (st = check_w(h, s, i, 5, 2 * c * F, 0, err)) ||
                (st = check_w(h, s, i, 6, 2 * c * F, 0, err)))
                return st;
        }
        return MRM_OK;
    case ENG_OP_HEAD: {
        if (!dim_ok(s->c) || s->cout != (int32_t)h->n_classes) break;
        long long c0 = s->in0 >= 0 && (uint32_t)s->in0 < h->n_bufs ? b[s->in0].c : 0;
        long long c1 = s->in1 >= 0 && (uint32_t)s->in1 < h->n_bufs ? b[s->in1].c : 0;
        if (s->in0 <= 0 || (uint32_t)s->in0 >= h->n_bufs || (s->in1 >= 0 && ((uint32_t)s->in1 >= h->n_bufs || s->in1 == 0)) ||
            c0 + c1 != s->c)
            return mrm_fail(err, MRM_ERR_FORMAT, "engine image: step %d: head inputs do not hold %d channels", i, s->c);
        if ((st = check_buf(h, b, i, "output", s->out, s->cout, 1, 0, err))) return st;
        uint64_t c = (uint64_t)s->c, N = (uint64_t)s->cout;
        if ((st = check_w(h, s, i, 0, c * F, 0, err)) || (st = check_w(h, s, i, 1, c * F, 0, err)) ||
            (st = check_w(h, s, i, 2, N * c * F, 0, err)) || (st = check_w(h, s, i, 3, N * F, 0, err)))
            return st;
        return MRM_OK;
    }
    case ENG_OP_SUM:
        if ((st = check_buf(h, b, i, "input", s->in0, h->n_classes, 1, 0, err))) return st;
        if ((st = check_buf(h, b, i, "input 2", s->in1, h->n_classes, 1, 0, err))) return st;
        return check_buf(h, b, i, "output", s->out, h->n_classes, 1, 0, err);
    default: return mrm_fail(err, MRM_ERR_FORMAT, "engine image: step %d: unknown operation %d", i, s->op);
    }
    return mrm_fail(err, MRM_ERR_FORMAT, "engine image: step %d: shape out of range", i);
}

/* The scratch floats one step needs. */
static uint64_t step_scratch(const eng_step *s) {
    if (s->op == ENG_OP_CONV || s->op == ENG_OP_CONV8)
        return mrm_eng_conv_scratch_floats2(s->op == ENG_OP_CONV ? s->kind : ENG_CONV_DIRECT, s->cin, s->cout, s->lout,
                                            s->k, s->stride);
    if (s->op == ENG_OP_FUSION) return 4ULL * s->c + 4ULL * s->L;
    if (s->op == ENG_OP_GATE || s->op == ENG_OP_HEAD) return 4ULL * s->c + 64;
    return 0;
}

uint64_t mrm_eng_steps_scratch(const eng_step *s, uint32_t n) {
    uint64_t scr = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t need = step_scratch(&s[i]);
        if (need > scr) scr = need;
    }
    return (scr + 15) / 16 * 16;
}

/* Whether two threads may run the lanes side by side: lane 1 and lane 2 both have steps, and in
 * every region (a run of steps whose lanes are not 0) no buffer a step of one lane writes
 * overlaps, in the work memory, a buffer a step of the other lane reads or writes. Then the
 * scratch of lane 2 (floats, a multiple of 16) in *scr2; else 0 there. */
static int lanes_apart(const eng_header *h, const eng_buf *b, const eng_step *s, uint64_t *scr2) {
    const uint32_t n = h->n_steps;
    uint64_t need2 = 0;
    int has[ENG_MAX_LANES + 1] = {0};
    *scr2 = 0;
    for (uint32_t i = 0; i < n; i++) {
        has[s[i].lane] = 1;
        if (s[i].lane == 2 && step_scratch(&s[i]) > need2) need2 = step_scratch(&s[i]);
    }
    if (!has[1] || !has[2]) return 0;
    for (uint32_t i0 = 0; i0 < n;) {
        if (!s[i0].lane) {
            i0++;
            continue;
        }
        const uint32_t i1 = eng_lane_region_end(s, n, i0);
        for (uint32_t p = i0; p < i1; p++) {
            if (s[p].lane != 1) continue;
            const int32_t tp[3] = {s[p].out, s[p].in0, s[p].in1};
            for (uint32_t q = i0; q < i1; q++) {
                if (s[q].lane != 2) continue;
                const int32_t tq[3] = {s[q].out, s[q].in0, s[q].in1};
                for (int a = 0; a < 3; a++)
                    for (int c = 0; c < 3; c++) {
                        if ((a && c) || tp[a] <= 0 || tq[c] <= 0) continue; /* read by both, or the input */
                        const eng_buf *x = &b[tp[a]], *y = &b[tq[c]];
                        if (x->off < y->off + (uint64_t)y->c * y->L && y->off < x->off + (uint64_t)x->c * x->L) return 0;
                    }
            }
        }
        i0 = i1;
    }
    *scr2 = (need2 + 15) / 16 * 16;
    return 1;
}

mrm_status mrm_engine_open_isa(mrm_engine *e, const void *image, size_t image_len, mrm_engine_isa isa,
                               mrm_error *err) {
    memset(e, 0, sizeof *e);
    const unsigned char *p = image;
    if (!p || (uintptr_t)p % MRM_ENGINE_ALIGN)
        return mrm_fail(err, MRM_ERR_INVALID, "engine image: not aligned to %d bytes", MRM_ENGINE_ALIGN);
    if (image_len < sizeof(eng_header))
        return mrm_fail(err, MRM_ERR_FORMAT, "engine image: %zu bytes, shorter than its header", image_len);
    const eng_header *h = image;
    if (memcmp(h->magic, ENG_MAGIC, 8))
        return mrm_fail(err, MRM_ERR_FORMAT, "engine image: magic: not an mrmnet engine image");
    if (h->version < ENG_VERSION_MIN || h->version > ENG_VERSION || h->header_bytes != sizeof(eng_header) || h->step_bytes != sizeof(eng_step))
        return mrm_fail(err, MRM_ERR_FORMAT,
                        "engine image: version %u (header %u, step %u bytes); this engine reads versions %d to %d (%zu, "
                        "%zu), of the same byte order",
                        h->version, h->header_bytes, h->step_bytes, ENG_VERSION_MIN, ENG_VERSION, sizeof(eng_header),
                        sizeof(eng_step));
    if (h->total_bytes != image_len)
        return mrm_fail(err, MRM_ERR_FORMAT, "engine image: total_bytes: %llu, the image has %zu",
                        (unsigned long long)h->total_bytes, image_len);
    if (h->n_steps < 1 || h->n_steps > ENG_MAX_STEPS || h->n_bufs < 2 || h->n_bufs > ENG_MAX_STEPS + 1 ||
        h->n_classes < 1 || h->n_classes > 100000 || h->n_heads < 1 || h->n_heads > 2)
        return mrm_fail(err, MRM_ERR_FORMAT, "engine image: counts out of range (%u steps, %u buffers, %u classes, %u heads)",
                        h->n_steps, h->n_bufs, h->n_classes, h->n_heads);
    if (h->bufs_off % 64 || h->steps_off % 64 || h->weights_off % 64 ||
        !in_range(h->bufs_off, (uint64_t)h->n_bufs * sizeof(eng_buf), image_len) ||
        !in_range(h->steps_off, (uint64_t)h->n_steps * sizeof(eng_step), image_len) ||
        !in_range(h->meta_off, h->meta_bytes, image_len) || !in_range(h->weights_off, h->weights_bytes, image_len))
        return mrm_fail(err, MRM_ERR_FORMAT, "engine image: a section lies outside the image or is misaligned");
    if (h->meta_bytes && p[h->meta_off + h->meta_bytes - 1] != '\0')
        return mrm_fail(err, MRM_ERR_FORMAT, "engine image: metadata: not NUL-terminated");
    if (h->act_floats > ((uint64_t)1 << 40) || h->scratch_floats > ((uint64_t)1 << 40))
        return mrm_fail(err, MRM_ERR_FORMAT, "engine image: work sizes out of range");
    const eng_buf *b = (const eng_buf *)(const void *)(p + h->bufs_off);
    if (b[0].c != MRM_ENGINE_LEADS || b[0].L != MRM_ENGINE_SAMPLES)
        return mrm_fail(err, MRM_ERR_FORMAT, "engine image: buffer 0: input (%u, %u), expected (12, 1000)", b[0].c, b[0].L);
    for (uint32_t i = 1; i < h->n_bufs; i++) {
        uint64_t n = (uint64_t)b[i].c * b[i].L;
        if (!b[i].c || !b[i].L || !in_range(b[i].off, n, h->act_floats) || b[i].off % 16)
            return mrm_fail(err, MRM_ERR_FORMAT, "engine image: buffer %u: (%u, %u) at %llu outside the %llu activation floats",
                            i, b[i].c, b[i].L, (unsigned long long)b[i].off, (unsigned long long)h->act_floats);
    }
    /* the activations end where the last buffer does (no more memory asked than used) */
    uint64_t act_end = 0;
    for (uint32_t i = 1; i < h->n_bufs; i++) {
        uint64_t end = b[i].off + ((uint64_t)b[i].c * b[i].L + 15) / 16 * 16;
        if (end > act_end) act_end = end;
    }
    if (act_end != h->act_floats)
        return mrm_fail(err, MRM_ERR_FORMAT, "engine image: act_floats %llu, the buffers end at %llu",
                        (unsigned long long)h->act_floats, (unsigned long long)act_end);
    const eng_step *s = (const eng_step *)(const void *)(p + h->steps_off);
    for (uint32_t i = 0; i < h->n_steps; i++) {
        mrm_status st = check_step(h, b, &s[i], (int)i, err);
        if (st) return st;
    }
    const uint64_t scr = mrm_eng_steps_scratch(s, h->n_steps);
    if (h->scratch_floats != scr)
        return mrm_fail(err, MRM_ERR_FORMAT, "engine image: scratch_floats %llu, the steps need %llu",
                        (unsigned long long)h->scratch_floats, (unsigned long long)scr);
    for (uint32_t j = 0; j < h->n_heads; j++)
        if (h->out_buf[j] < 1 || (uint32_t)h->out_buf[j] >= h->n_bufs || b[h->out_buf[j]].c != h->n_classes ||
            b[h->out_buf[j]].L != 1)
            return mrm_fail(err, MRM_ERR_FORMAT, "engine image: output %u: buffer %d is not the logits", j + 1, h->out_buf[j]);
    int best = detect_isa();
    if ((int)isa < 0) isa = (mrm_engine_isa)best;
    else if (!isa_runs((int)isa, best))
        return mrm_fail(err, MRM_ERR_UNSUPPORTED, "engine: this CPU lacks the %s kernels", mrm_engine_isa_name(isa));
    e->image = p;
    e->image_len = image_len;
    e->steps = s;
    e->n_steps = (int)h->n_steps;
    e->weights = p + h->weights_off;
    e->weight_bytes = (size_t)h->weights_bytes;
    e->act_floats = (size_t)h->act_floats;
    e->scratch_floats = (size_t)h->scratch_floats;
    uint64_t scr2 = 0;
    e->lanes = lanes_apart(h, b, s, &scr2);
    e->lane_scratch_floats = (size_t)scr2;
    e->n_classes = (int)h->n_classes;
    e->n_heads = (int)h->n_heads;
    e->out_buf[0] = h->out_buf[0];
    e->out_buf[1] = h->n_heads > 1 ? h->out_buf[1] : -1;
    e->isa = isa;
    e->quantized = (h->flags & ENG_FLAG_INT8) != 0;
    /* the sub-team split of every team up to MRM_ENGINE_TEAM_PLANNED threads, once (an image of
     * more lane regions than the planner's tables hold: planned on each call) */
    const kern *k = kern_of(isa);
    e->team_planned = mrm_eng_team_plan_all(s, h->n_steps, k->tile(), k->tile8(), e->lanes, MRM_ENGINE_TEAM_PLANNED,
                                            e->team_n1);
    return MRM_OK;
}

mrm_status mrm_engine_open(mrm_engine *e, const void *image, size_t image_len, mrm_error *err) {
    return mrm_engine_open_isa(e, image, image_len, (mrm_engine_isa)-1, err);
}

/* The work buffer of one run context: activations, scratch, and the second lane's scratch. */
static size_t work_bytes_of(const mrm_engine *e) {
    return (e->act_floats + e->scratch_floats + e->lane_scratch_floats) * sizeof(float);
}

/* A group's further records (mrm_engine_run): each one's activations after the first context,
 * a multiple of 64 bytes apart. */
static size_t group_act_bytes(const mrm_engine *e) { return (e->act_floats + 15) / 16 * 16 * sizeof(float); }

/* How many records of a batch of B go through each step together with a work buffer of
 * work_bytes (at least work_bytes_of(e)). */
static int group_of(const mrm_engine *e, size_t work_bytes, int B) {
    size_t extra = (work_bytes - work_bytes_of(e)) / group_act_bytes(e);
    int g = extra >= MRM_ENGINE_GROUP - 1 ? MRM_ENGINE_GROUP : 1 + (int)extra;
    return g < B ? g : B;
}

mrm_status mrm_engine_get_sizes(const mrm_engine *e, int B, mrm_engine_sizes *s, mrm_error *err) {
    if (!e->image || B < 1) return mrm_fail(err, MRM_ERR_INVALID, "engine sizes: batch of %d", B);
    s->weight_bytes = e->image_len;
    s->work_bytes = work_bytes_of(e);
    s->group_records = B < MRM_ENGINE_GROUP ? B : MRM_ENGINE_GROUP;
    s->group_work_bytes = s->work_bytes + (size_t)(s->group_records - 1) * group_act_bytes(e);
    return MRM_OK;
}

const char *mrm_engine_info(const mrm_engine *e, const char *key) {
    const eng_header *h = hdr(e);
    const char *p = (const char *)e->image + h->meta_off, *end = p + h->meta_bytes;
    while (p < end) {
        const char *k = p;
        size_t kl = strlen(k);
        const char *v = k + kl + 1;
        if (v >= end) return NULL;
        if (!strcmp(k, key)) return v;
        p = v + strlen(v) + 1;
    }
    return NULL;
}

/* ---- the operations ------------------------------------------------------------------------ */

static float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

/* The pools' output and input never share memory (both live while the step runs); restrict and
 * branch-free loops let the compiler use vectors (the same comparisons, so the same values). */
static void op_pool2s1(float *restrict out, const float *restrict in, int C, int L) {
    for (int c = 0; c < C; c++) {
        const float *restrict z = in + (size_t)c * L;
        float *restrict o = out + (size_t)c * (L + 1);
        o[0] = z[0];
        for (int t = 1; t < L; t++) {
            const float a = z[t - 1], b = z[t];
            o[t] = a > b ? a : b;
        }
        o[L] = z[L - 1];
    }
}

static void op_pool2(float *restrict out, const float *restrict in, const float *restrict add, int C, int L) {
    int Lo = L / 2;
    for (int c = 0; c < C; c++) {
        const float *restrict z = in + (size_t)c * L;
        float *restrict o = out + (size_t)c * Lo;
        if (add) {
            const float *restrict a = add + (size_t)c * Lo;
            for (int t = 0; t < Lo; t++) {
                const float u = z[2 * t], v = z[2 * t + 1];
                o[t] = a[t] + (u > v ? u : v);
            }
        } else
            for (int t = 0; t < Lo; t++) {
                const float u = z[2 * t], v = z[2 * t + 1];
                o[t] = u > v ? u : v;
            }
    }
}

/* The mean of a row: 8 partial sums (one vector's lanes, no chain of dependent additions). */
static float row_mean(const float *x, int L) {
    float p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int t = 0;
    for (; t + 8 <= L; t += 8)
        for (int j = 0; j < 8; j++) p[j] += x[t + j];
    float s = ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));
    for (; t < L; t++) s += x[t];
    return s / (float)L;
}

/* The largest value of a row (8 partial maxima), the same as the scan m = x > m ? x : m from
 * x[0]: NaN exactly when x[0] is (a NaN elsewhere never wins a comparison). */
static float row_max(const float *x, int L) {
    float m = x[0];
    if (L < 16) {
        for (int t = 1; t < L; t++) m = x[t] > m ? x[t] : m;
        return m;
    }
    float p[8];
    for (int j = 0; j < 8; j++) p[j] = x[j];
    int t = 8;
    for (; t + 8 <= L; t += 8)
        for (int j = 0; j < 8; j++) p[j] = x[t + j] > p[j] ? x[t + j] : p[j];
    for (; t < L; t++) p[t % 8] = x[t] > p[t % 8] ? x[t] : p[t % 8];
    for (int j = 0; j < 8; j++) m = p[j] > m ? p[j] : m;
    return m;
}

/* y (n) = W (n, m) x (m), no bias */
static void matvec(float *y, const float *W, const float *x, int n, int m) {
    for (int o = 0; o < n; o++) {
        const float *w = W + (size_t)o * m;
        float s = 0.0f;
        for (int i = 0; i < m; i++) s += w[i] * x[i];
        y[o] = s;
    }
}

static void op_gate(const mrm_engine *e, const eng_step *s, float *out, const float *x, const float *h, float *scr) {
    int C = s->c, L = s->L;
    float *gap = scr, *gate = scr + C, *hid = scr + 2 * C;
    for (int c = 0; c < C; c++) gap[c] = row_mean(h + (size_t)c * L, L);
    if (s->kind == 0) {
        for (int c = 0; c < C; c++) {
            float v = gap[c] + 3.0f;
            v = v < 0.0f ? 0.0f : v > 6.0f ? 6.0f : v;
            gate[c] = v / 6.0f;
        }
    } else {
        matvec(hid, wf(e, s, 0), gap, C / 4, C);
        for (int j = 0; j < C / 4; j++) hid[j] = hid[j] > 0.0f ? hid[j] : 0.0f;
        matvec(gate, wf(e, s, 1), hid, C, C / 4);
        for (int c = 0; c < C; c++) gate[c] = sigmoidf_(gate[c]);
    }
    for (int c = 0; c < C; c++) {
        const float *hc = h + (size_t)c * L, *xc = x + (size_t)c * L;
        float *o = out + (size_t)c * L, g = gate[c];
        for (int t = 0; t < L; t++) o[t] = hc[t] * g + xc[t];
    }
}

/* LayerNorm over the C channels at each of the L steps, in place. */
static void layernorm_ch(float *x, const float *w, const float *b, int C, int L, float *mean, float *rstd) {
    for (int t = 0; t < L; t++) mean[t] = 0.0f, rstd[t] = 0.0f;
    for (int c = 0; c < C; c++)
        for (int t = 0; t < L; t++) mean[t] += x[(size_t)c * L + t];
    for (int t = 0; t < L; t++) mean[t] /= (float)C;
    for (int c = 0; c < C; c++)
        for (int t = 0; t < L; t++) {
            float d = x[(size_t)c * L + t] - mean[t];
            rstd[t] += d * d;
        }
    for (int t = 0; t < L; t++) rstd[t] = 1.0f / sqrtf(rstd[t] / (float)C + LN_EPS);
    for (int c = 0; c < C; c++) {
        float *xc = x + (size_t)c * L, wc = w[c], bc = b[c];
        for (int t = 0; t < L; t++) xc[t] = (xc[t] - mean[t]) * rstd[t] * wc + bc;
    }
}

static void op_fusion(const mrm_engine *e, const eng_step *s, float *out, const float *x, float *scr) {
    int C = s->c, L = s->L, C8 = C / 8;
    float *xmax = scr, *xavg = scr + C, *ca = scr + 2 * C, *h = scr + 3 * C; /* h: C/8 */
    float *mm = scr + 4 * C, *sa = mm + 2 * L, *tmp = sa + L; /* (2, L), L, L */
    const float *m0 = wf(e, s, 0), *m1 = wf(e, s, 1), *mb = wf(e, s, 2), *sw = wf(e, s, 3), *sb = wf(e, s, 4);
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * L;
        xmax[c] = row_max(xc, L);
        xavg[c] = row_mean(xc, L);
    }
    /* ca = sigmoid(M(xmax) + M(xavg)), M(v) = m1 m0 v + bias */
    matvec(h, m0, xmax, C8, C);
    matvec(ca, m1, h, C, C8);
    matvec(h, m0, xavg, C8, C);
    for (int c = 0; c < C; c++) {
        const float *w = m1 + (size_t)c * C8;
        float acc = 0.0f;
        for (int j = 0; j < C8; j++) acc += w[j] * h[j];
        ca[c] = sigmoidf_((ca[c] + mb[c]) + (acc + mb[c]));
    }
    /* spatial: sa = sigmoid(conv7([max_c x, mean_c x]) + b) */
    float *mx = mm, *mn = mm + L;
    for (int t = 0; t < L; t++) mx[t] = x[t], mn[t] = 0.0f;
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * L;
        for (int t = 0; t < L; t++) {
            mx[t] = xc[t] > mx[t] ? xc[t] : mx[t];
            mn[t] += xc[t];
        }
    }
    for (int t = 0; t < L; t++) mn[t] /= (float)C;
    for (int t = 0; t < L; t++) {
        float acc = 0.0f;
        for (int r = 0; r < 2; r++)
            for (int k = 0; k < 7; k++) {
                int j = t + k - 3;
                if (j >= 0 && j < L) acc += sw[r * 7 + k] * mm[(size_t)r * L + j];
            }
        sa[t] = sigmoidf_(acc + sb[0]);
    }
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * L;
        float *o1 = out + (size_t)c * L, *o2 = out + (size_t)(C + c) * L, g = ca[c];
        for (int t = 0; t < L; t++) {
            o1[t] = xc[t] * g;
            o2[t] = xc[t] * sa[t];
        }
    }
    layernorm_ch(out, wf(e, s, 5), wf(e, s, 6), 2 * C, L, mm, tmp);
}

static void op_head(const mrm_engine *e, const eng_step *s, float *out, const float *a, int ca, int La,
                    const float *b, int cb, int Lb, float *scr) {
    int C = s->c, N = s->cout;
    float *g = scr;
    for (int c = 0; c < ca; c++) g[c] = row_mean(a + (size_t)c * La, La);
    for (int c = 0; c < cb; c++) g[ca + c] = row_mean(b + (size_t)c * Lb, Lb);
    float mean = 0.0f, var = 0.0f;
    for (int c = 0; c < C; c++) mean += g[c];
    mean /= (float)C;
    for (int c = 0; c < C; c++) var += (g[c] - mean) * (g[c] - mean);
    float rs = 1.0f / sqrtf(var / (float)C + LN_EPS);
    const float *lw = wf(e, s, 0), *lb = wf(e, s, 1), *fw = wf(e, s, 2), *fb = wf(e, s, 3);
    for (int c = 0; c < C; c++) g[c] = (g[c] - mean) * rs * lw[c] + lb[c];
    matvec(out, fw, g, N, C);
    for (int n = 0; n < N; n++) out[n] += fb[n];
}

/* ---- running --------------------------------------------------------------------------------- */

/* absmax (n_bufs) or NULL: the largest |value| each buffer has held (calibration). */
/* The small layers (gates, Fusion, heads, the heads' sum), on one thread with the scratch. */
static void run_small(const mrm_engine *e, const eng_step *s, float *out, const float *in0, const float *in1,
                      float *scr) {
    const eng_buf *b = bufs(e);
    switch (s->op) {
    case ENG_OP_GATE: op_gate(e, s, out, in0, in1, scr); break;
    case ENG_OP_FUSION: op_fusion(e, s, out, in0, scr); break;
    case ENG_OP_HEAD:
        op_head(e, s, out, in0, (int)b[s->in0].c, (int)b[s->in0].L, in1, in1 ? (int)b[s->in1].c : 0,
                in1 ? (int)b[s->in1].L : 1, scr);
        break;
    case ENG_OP_SUM:
        for (int n = 0; n < e->n_classes; n++) out[n] = in0[n] + in1[n];
        break;
    default: break; /* refused at open */
    }
}

/* One step on one thread with the scratch scr, with the engine's kernels (absmax: see
 * calibration). */
static void run_step(const mrm_engine *e, const eng_step *s, float *act, float *scr, const float *x, float *absmax) {
    const eng_buf *b = bufs(e);
#define BUF(id) ((id) == 0 ? (float *)(uintptr_t)x : act + b[id].off)
    float *out = BUF(s->out);
    const float *in0 = s->in0 >= 0 ? BUF(s->in0) : NULL, *in1 = s->in1 >= 0 ? BUF(s->in1) : NULL;
#undef BUF
    switch (s->op) {
    case ENG_OP_CONV:
        if (s->kind != ENG_CONV_DIRECT) {
            const kern *k = kern_of(e->isa);
            (s->kind == ENG_CONV_FFT ? k->convf : s->kind == ENG_CONV_FFT3 ? k->convf3 : k->convw)(out, in0, in1, wf(e, s, 0), wf(e, s, 1), s->relu, s->cin, s->lin, s->cout, s->k,
                                      s->stride, s->pad, s->lout, scr);
            break;
        }
        kern_of(e->isa)->conv(out, in0, in1, wf(e, s, 0), wf(e, s, 1), s->relu, s->cin, s->lin, s->cout, s->k, s->stride, s->pad,
             s->groups, s->lout, scr);
        break;
    case ENG_OP_CONV8:
        kern_of(e->isa)->conv8(out, in0, in1, (const int8_t *)(const void *)(e->weights + s->w[0]),
                         (const int32_t *)(const void *)(e->weights + s->w[4]), wf(e, s, 1), wf(e, s, 2), s->in_scale,
                         s->relu, s->cin, s->lin, s->cout, s->k, s->stride, s->pad, s->groups, s->lout, scr);
        break;
    case ENG_OP_POOL2S1: op_pool2s1(out, in0, s->c, s->L); break;
    case ENG_OP_POOL2: op_pool2(out, in0, in1, s->c, s->L); break;
    default: run_small(e, s, out, in0, in1, scr); break;
    }
    if (absmax) {
        size_t n = (size_t)b[s->out].c * b[s->out].L;
        float m = absmax[s->out];
        for (size_t j = 0; j < n; j++) m = fabsf(out[j]) > m ? fabsf(out[j]) : m;
        absmax[s->out] = m;
    }
}

/* A run's arguments: an open engine, a batch, a work buffer large enough and aligned. */
static mrm_status check_run(const mrm_engine *e, const void *work, size_t work_bytes, const float *x, int B,
                            const float *logits2, mrm_error *err) {
    if (!e->image) return mrm_fail(err, MRM_ERR_INVALID, "engine run: the engine is not open");
    if (!x || B < 1) return mrm_fail(err, MRM_ERR_INVALID, "engine run: batch of %d", B);
    size_t need = work_bytes_of(e);
    if (!work || work_bytes < need || (uintptr_t)work % MRM_ENGINE_ALIGN)
        return mrm_fail(err, MRM_ERR_INVALID, "engine run: work buffer of %zu bytes at %p; needs %zu bytes aligned to %d",
                        work_bytes, work, need, MRM_ENGINE_ALIGN);
    if (logits2 && e->n_heads < 2)
        return mrm_fail(err, MRM_ERR_INVALID, "engine run: the model has one output (no head 2)");
    return MRM_OK;
}

static mrm_status run(const mrm_engine *e, void *work, size_t work_bytes, const float *x, int B, float *logits1,
                      float *logits2, float *absmax, mrm_error *err) {
    mrm_status chk = check_run(e, work, work_bytes, x, B, logits2, err);
    if (chk) return chk;
    float *act = work, *scr = act + e->act_floats;
    const eng_step *st = steps(e);
    const eng_buf *b = bufs(e);
    size_t N = (size_t)e->n_classes, rec = (size_t)MRM_ENGINE_LEADS * MRM_ENGINE_SAMPLES;
    const int G = group_of(e, work_bytes, B);
    if (G <= 1) {
        for (int r = 0; r < B; r++) {
            for (int i = 0; i < e->n_steps; i++) run_step(e, &st[i], act, scr, x + (size_t)r * rec, absmax);
            if (logits1) memcpy(logits1 + (size_t)r * N, act + b[e->out_buf[0]].off, N * sizeof(float));
            if (logits2) memcpy(logits2 + (size_t)r * N, act + b[e->out_buf[1]].off, N * sizeof(float));
        }
        return MRM_OK;
    }
    /* groups of G records, step by step: record j's activations are the first context's (j = 0)
     * or lie after the whole first context; the kernels' scratch is shared (a step uses it only
     * while it runs) */
    float *acts[MRM_ENGINE_GROUP];
    acts[0] = act;
    for (int j = 1; j < G; j++)
        acts[j] = (float *)((char *)work + work_bytes_of(e) + (size_t)(j - 1) * group_act_bytes(e));
    for (int r0 = 0; r0 < B; r0 += G) {
        const int g = B - r0 < G ? B - r0 : G;
        for (int i = 0; i < e->n_steps; i++)
            for (int j = 0; j < g; j++) run_step(e, &st[i], acts[j], scr, x + (size_t)(r0 + j) * rec, absmax);
        for (int j = 0; j < g; j++) {
            if (logits1) memcpy(logits1 + (size_t)(r0 + j) * N, acts[j] + b[e->out_buf[0]].off, N * sizeof(float));
            if (logits2) memcpy(logits2 + (size_t)(r0 + j) * N, acts[j] + b[e->out_buf[1]].off, N * sizeof(float));
        }
    }
    return MRM_OK;
}

mrm_status mrm_engine_run(const mrm_engine *e, void *work, size_t work_bytes, const float *x, int B, float *logits1,
                          float *logits2, mrm_error *err) {
    return run(e, work, work_bytes, x, B, logits1, logits2, NULL, err);
}

mrm_status mrm_eng_run_steps(const mrm_engine *e, void *work, size_t work_bytes, const float *x, int i0, int i1,
                             mrm_error *err) {
    mrm_status chk = check_run(e, work, work_bytes, x, 1, NULL, err);
    if (chk) return chk;
    if (i0 < 0 || i1 > e->n_steps || i0 > i1)
        return mrm_fail(err, MRM_ERR_INVALID, "engine run: steps %d to %d of %d", i0, i1, e->n_steps);
    float *act = work, *scr = act + e->act_floats;
    for (int i = i0; i < i1; i++) run_step(e, &steps(e)[i], act, scr, x, NULL);
    return MRM_OK;
}

/* ---- a team of threads on each record ------------------------------------------------------ */

/* Step s of a record, thread ith of nth: its share of the step; sync between the phases and
 * after the step. */
static void team_step(const mrm_engine *e, const kern *k, const eng_step *s, float *act, float *scr,
                      const float *x, int ith, int nth, mrm_engine_sync_fn sync, void *user) {
    const eng_buf *b = bufs(e);
#define BUF(id) ((id) == 0 ? (float *)(uintptr_t)x : act + b[id].off)
    float *out = BUF(s->out);
    const float *in0 = s->in0 >= 0 ? BUF(s->in0) : NULL, *in1 = s->in1 >= 0 ? BUF(s->in1) : NULL;
#undef BUF
    long long p0, p1;
    const eng_tile tf = k->tile(), t8 = k->tile8();
    switch (s->op) {
    case ENG_OP_CONV:
        if (s->kind == ENG_CONV_WINOGRAD || s->kind == ENG_CONV_FFT || s->kind == ENG_CONV_FFT3) {
            /* the inputs' transforms on thread 0; the output channels (in units of the direct
             * tile's channels, which the Winograd products use too) shared out */
            const int wino = s->kind == ENG_CONV_WINOGRAD;
            if (ith == 0)
                (wino ? k->wino_in : k->fft_in)(in0, s->cin, s->lin, s->cout, s->k, s->stride, s->pad, s->lout, scr);
            sync(user);
            eng_split((s->cout + tf.co - 1) / tf.co, nth, ith, &p0, &p1);
            p0 *= tf.co, p1 = p1 * tf.co < s->cout ? p1 * tf.co : s->cout;
            if (p1 > p0)
                (wino ? k->wino_out : s->kind == ENG_CONV_FFT3 ? k->fft_out3 : k->fft_out)(out, in1, wf(e, s, 0), wf(e, s, 1), s->relu, s->cin, s->cout, s->k,
                                                  s->stride, s->lout, scr, (int)p0, (int)p1);
            break;
        }
        if (s->kind != ENG_CONV_DIRECT) {
            /* an algorithm not split: thread 0, with the scratch, while the others wait */
            if (ith == 0) run_step(e, s, act, scr, x, NULL);
            break;
        }
        eng_split(s->cin, nth, ith, &p0, &p1);
        if (p1 > p0) k->pad(scr, in0, (int)p0, (int)p1, s->lin, s->k, s->stride, s->pad, s->lout);
        sync(user);
        eng_split(eng_conv_tiles(s->cout, s->groups, s->lout, tf.co, tf.t), nth, ith, &p0, &p1);
        if (p1 > p0)
            k->tiles(out, in1, wf(e, s, 0), wf(e, s, 1), s->relu, s->cin, s->cout, s->k, s->stride, s->groups, s->lout,
                     scr, p0, p1);
        break;
    case ENG_OP_CONV8:
        eng_split((long long)s->groups * ((s->cin / s->groups + 3) / 4), nth, ith, &p0, &p1);
        if (p1 > p0)
            k->pack8(scr, in0, s->in_scale, s->cin, s->lin, s->groups, s->k, s->stride, s->pad, s->lout, (int)p0,
                     (int)p1);
        sync(user);
        eng_split(eng_conv_tiles(s->cout, s->groups, s->lout, t8.co, t8.t), nth, ith, &p0, &p1);
        if (p1 > p0)
            k->tiles8(out, in1, (const int8_t *)(const void *)(e->weights + s->w[0]),
                      (const int32_t *)(const void *)(e->weights + s->w[4]), wf(e, s, 1), wf(e, s, 2), s->relu,
                      s->cin, s->cout, s->k, s->stride, s->groups, s->lout, scr, p0, p1);
        break;
    case ENG_OP_POOL2S1:
        eng_split(s->c, nth, ith, &p0, &p1);
        if (p1 > p0) op_pool2s1(out + p0 * (s->L + 1), in0 + p0 * s->L, (int)(p1 - p0), s->L);
        break;
    case ENG_OP_POOL2:
        eng_split(s->c, nth, ith, &p0, &p1);
        if (p1 > p0)
            op_pool2(out + p0 * (s->L / 2), in0 + p0 * s->L, in1 ? in1 + p0 * (s->L / 2) : NULL, (int)(p1 - p0), s->L);
        break;
    default:
        /* the small layers: thread 0, with the scratch (no convolution runs meanwhile) */
        if (ith == 0) {
            run_small(e, s, out, in0, in1, scr);
        }
        break;
    }
    sync(user);
}

int mrm_engine_team_lanes(const mrm_engine *e, int nth) {
    if (!e || !e->image || !e->lanes || nth < 2) return 0;
    if (nth <= MRM_ENGINE_TEAM_PLANNED && e->team_planned) return e->team_n1[nth]; /* worked out at open */
    const kern *k = kern_of(e->isa);
    return mrm_eng_team_plan(steps(e), (uint32_t)e->n_steps, k->tile(), k->tile8(), nth, e->lanes);
}

/* The steps [i, j) of lane `lane` on a sub-team of m threads (this thread is its ith), with the
 * lane's scratch: one thread runs them through; more share each step and meet at sync(lane_user). */
static void lane_steps(const mrm_engine *e, const kern *k, int i, int j, int lane, float *act, float *scr,
                       const float *x, int ith, int m, mrm_engine_sync_fn sync, void *lane_user) {
    const eng_step *st = steps(e);
    for (int q = i; q < j; q++) {
        if (st[q].lane != lane) continue;
        if (m == 1)
            run_step(e, &st[q], act, scr, x, NULL);
        else
            team_step(e, k, &st[q], act, scr, x, ith, m, sync, lane_user);
    }
}

mrm_status mrm_engine_run_subteams(const mrm_engine *e, void *work, size_t work_bytes, const float *x, int B,
                                   float *logits1, float *logits2, int ith, int nth, mrm_engine_sync_fn sync,
                                   void *user, void *lane_user, mrm_error *err) {
    if (nth < 1 || ith < 0 || ith >= nth || (nth > 1 && !sync))
        return mrm_fail(err, MRM_ERR_INVALID, "engine run: thread %d of a team of %d%s", ith, nth,
                        nth > 1 && !sync ? " without a sync function" : "");
    if (nth == 1) return run(e, work, work_bytes, x, B, logits1, logits2, NULL, err);
    mrm_status chk = check_run(e, work, work_bytes, x, B, logits2, err);
    if (chk) return chk;
    float *act = work, *scr = act + e->act_floats;
    const kern *k = kern_of(e->isa);
    const eng_buf *b = bufs(e);
    const eng_step *st = steps(e);
    size_t N = (size_t)e->n_classes, rec = (size_t)MRM_ENGINE_LEADS * MRM_ENGINE_SAMPLES;
    /* the lanes (the two branches) side by side: a team of two, one thread each; a larger team
     * given its sub-teams' barrier, as two sub-teams (threads [0, n1) lane 1, the others lane 2),
     * each with its own scratch; other teams share every step */
    const int n1 = nth == ENG_MAX_LANES || lane_user ? mrm_engine_team_lanes(e, nth) : 0;
    const int lane = ith < n1 ? 1 : 2, sub_ith = ith < n1 ? ith : ith - n1, sub_n = ith < n1 ? n1 : nth - n1;
    float *lane_scr = lane == 1 ? scr : scr + e->scratch_floats;
    for (int r = 0; r < B; r++) {
        const float *xr = x + (size_t)r * rec;
        for (int i = 0; i < e->n_steps;) {
            if (!n1 || !st[i].lane) {
                team_step(e, k, &st[i], act, scr, xr, ith, nth, sync, user);
                i++;
                continue;
            }
            const int j = (int)eng_lane_region_end(st, (uint32_t)e->n_steps, (uint32_t)i);
            lane_steps(e, k, i, j, lane, act, lane_scr, xr, sub_ith, sub_n, sync, lane_user);
            sync(user);
            i = j;
        }
        if (ith == 0) {
            if (logits1) memcpy(logits1 + (size_t)r * N, act + b[e->out_buf[0]].off, N * sizeof(float));
            if (logits2) memcpy(logits2 + (size_t)r * N, act + b[e->out_buf[1]].off, N * sizeof(float));
        }
        sync(user); /* the logits are read before the next record overwrites them; complete on return */
    }
    return MRM_OK;
}

mrm_status mrm_engine_run_team(const mrm_engine *e, void *work, size_t work_bytes, const float *x, int B,
                               float *logits1, float *logits2, int ith, int nth, mrm_engine_sync_fn sync, void *user,
                               mrm_error *err) {
    return mrm_engine_run_subteams(e, work, work_bytes, x, B, logits1, logits2, ith, nth, sync, user, NULL, err);
}

int mrm_engine_num_buffers(const mrm_engine *e) { return (int)hdr(e)->n_bufs; }

mrm_status mrm_engine_calibrate(const mrm_engine *e, void *work, size_t work_bytes, const float *x, int B, float *absmax,
                                mrm_error *err) {
    return run(e, work, work_bytes, x, B, NULL, NULL, absmax, err);
}
