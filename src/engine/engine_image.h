/* The engine image (mrmnet/engine.h): its layout, shared by the runtime (src/engine) and the
 * compiler that writes it (src/model/engine_build.c). All offsets are from the image's start,
 * in bytes; numbers are in the byte order of the machine that compiled the image (the magic
 * tells a reader of the other order).
 *
 *   header | buffers (n_bufs) | steps (n_steps) | metadata (key NUL value NUL ...) | weights
 *
 * Buffers are the activations of ONE record: buffer 0 is the input (12, 1000), read from the
 * caller; the others live at their offset in the work buffer (buffers whose lives do not
 * overlap share memory). Every section starts at a multiple of 64 bytes. */
#ifndef MRM_ENGINE_IMAGE_H
#define MRM_ENGINE_IMAGE_H

#include <stdint.h>

#define ENG_MAGIC "MRMENG01"
#define ENG_VERSION 5
#define ENG_VERSION_MIN 2 /* read too: its convolutions are all direct */
#define ENG_NW 8        /* weight slots of a step */
#define ENG_NONE UINT64_MAX
#define ENG_MAX_STEPS 4096
#define ENG_MAX_DIM 1000000
/* Packed convolution weights are followed by this many zero floats (the kernels' channel tiles
 * read up to 8 columns past a group's last). */
#define ENG_W_TAIL 16
/* Rows of the padded input are padded to a multiple of this many outputs (the widest tile). */
#define ENG_T_MAX 64

typedef struct eng_header {
    char magic[8];
    uint32_t version, header_bytes;
    uint32_t n_steps, n_bufs;
    uint32_t n_classes, n_heads;
    int32_t out_buf[2];
    uint64_t bufs_off, steps_off, meta_off, meta_bytes, weights_off, weights_bytes, total_bytes;
    uint64_t act_floats;     /* the activations of one record */
    uint64_t scratch_floats; /* the kernels' scratch */
    uint32_t flags;          /* ENG_FLAG_* */
    uint32_t step_bytes;     /* sizeof(eng_step) */
} eng_header;

#define ENG_FLAG_INT8 1u

/* A convolution step's algorithm (eng_step.kind; version 2 images have only the direct one). */
enum { ENG_CONV_DIRECT = 0, ENG_CONV_WINOGRAD = 1, ENG_CONV_FFT = 2 /* version 4 on */, ENG_CONV_FFT3 = 3 /* version 5 on */ };

typedef struct eng_buf {
    uint64_t off;    /* floats from the start of the activations */
    uint32_t c, L;   /* shape (c, L) of one record */
} eng_buf;

typedef enum {
    ENG_OP_CONV = 1,   /* out = act(conv(in0) + bias [+ in1]); kind ENG_CONV_DIRECT: w0 packed (g, i, k, o);
                        * kind ENG_CONV_WINOGRAD (groups 1, version 3 on): w0 the transformed weights of
                        * mrm_eng_wino_pack (engine/wino.h); kind ENG_CONV_FFT (groups 1,
                        * version 4 on): w0 the spectra of mrm_eng_fft_pack (engine/fft.h); kind
                        * ENG_CONV_FFT3 (groups 1, version 5 on): the same convolution, w0 the spectra
                        * as mrm_eng_fft3_pack's three planes (three real products a bin); w1 bias (cout) */
    ENG_OP_POOL2S1,    /* out (c, L+1) = MaxPool(k2, s1, p1)(in0 (c, L)) */
    ENG_OP_POOL2,      /* out (c, L/2) = MaxPool(2)(in0 (c, L)) [+ in1 (c, L/2)] */
    ENG_OP_GATE,       /* out = in0 + in1 * gate(mean_t in1); kind 0: hardsigmoid, 1: SE (w0 fc0, w1 fc2) */
    ENG_OP_FUSION,     /* out (2c, L) = LayerNorm([in0 * ca, in0 * sa]); w0 m0, w1 m1, w2 bias, w3 sp conv,
                        * w4 sp bias, w5 ln weight, w6 ln bias */
    ENG_OP_HEAD,       /* out (N, 1) = fc(LayerNorm(concat(mean_t in0, mean_t in1))); w0 ln w, w1 ln b,
                        * w2 fc w (N, c), w3 fc b */
    ENG_OP_SUM,        /* out = in0 + in1 (N, 1) */
    ENG_OP_CONV8,      /* CONV in int8: w0 int8 packed by mrm_eng_pack8 (g, i/4, k, o, 4), w1 bias, w2
                        * per-output scales (in_scale * w3[o]), w3 the weights' per-output step (w = int8 *
                        * w3[o]), w4 int32 (cout) 128 * the channel's weight sum, in_scale: the input's step */
    ENG_OP_COUNT
} eng_op;

typedef struct eng_step {
    int32_t op;
    int32_t in0, in1, out; /* buffer ids, -1 none */
    int32_t cin, cout, k, stride, pad, groups, lin, lout, relu, kind, c, L;
    float in_scale;        /* CONV8 */
    int32_t lane;          /* 0: runs with the whole team; 1, 2: a branch of a two-branch model (ENG_MAX_LANES) */
    uint64_t w[ENG_NW];    /* byte offsets into the weight arena, ENG_NONE when absent */
    uint64_t nw[ENG_NW];   /* their sizes in bytes */
} eng_step;

/* Lanes: a run of consecutive steps whose lanes are all 1 or 2 is a region where the steps of
 * lane 1 and those of lane 2 touch no common memory (except buffers both only read), so two
 * threads may run the two lanes side by side; the builder plans the buffers of the two lanes
 * apart (images of version 2 and 3 have lane 0 everywhere: the field was reserved, zero). */
#define ENG_MAX_LANES 2

/* The end of the region that starts at step i (whose lane is not 0): the first step after it
 * in lane 0, or n. */
static inline uint32_t eng_lane_region_end(const eng_step *s, uint32_t n, uint32_t i) {
    while (i < n && s[i].lane) i++;
    return i;
}

/* The kernels' scratch (floats, a multiple of 16) that a list of steps needs: what an image's
 * scratch_floats must be. */
uint64_t mrm_eng_steps_scratch(const eng_step *s, uint32_t n);

#endif
