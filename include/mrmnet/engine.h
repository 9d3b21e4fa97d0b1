/* mrmnet engine: the embeddable MRM-Net inference engine (libmrmnet_engine).
 *
 * C11 and libm only: no allocation, no threads, no file system, no global state. A model is
 * compiled once (by libmrmnet: mrm_engine_build in mrmnet/engine_build.h, or `mrmnet export
 * --engine` / `--c-source`) into an engine IMAGE: a flat list of steps and one weight arena
 * (BatchNorm folded into the convolutions, the multi-scale kernels merged, the weights packed
 * for the kernels), position-independent. The image is used in place, read-only: it may be a
 * `const` array in flash, a mapped file or a buffer the caller read.
 *
 *   mrm_engine e;
 *   mrm_engine_open(&e, image, image_len, &err);      // checks every offset and size; no copy
 *   mrm_engine_sizes s;  mrm_engine_get_sizes(&e, B, &s);
 *   void *work = <s.work_bytes bytes, aligned to 64>;  // one per thread: the run context
 *   mrm_engine_run(&e, work, s.work_bytes, x, B, logits1, logits2, &err);
 *
 * One engine (its image) is shared read-only by any number of threads, each with its own work
 * buffer (or a team of threads sharing one buffer and each record: mrm_engine_run_team).
 * Running allocates nothing and calls nothing but the kernels. The kernels are chosen
 * once, when the engine is opened, from the CPU the program runs on (x86-64: AVX-512, AVX2 +
 * FMA or the portable kernels; aarch64: the dot-product int8 kernel where the CPU has it; other
 * CPUs: the portable kernels), so one binary runs on any x86-64 and is fast where AVX-512 is
 * present.
 *
 * The input is what the model was trained on: x (B, 12, 1000) float32, 12 leads of 10 s at
 * 100 Hz, standardised as the model's metadata says (mrm_engine_info). The outputs are logits
 * (B, n_classes) of each head; a class's probability is 1 / (1 + exp(-logit)), averaged over
 * the heads where there are two. */
#ifndef MRMNET_ENGINE_H
#define MRMNET_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MRM_ENGINE_LEADS 12
#define MRM_ENGINE_SAMPLES 1000
/* The alignment the image and the work buffer must have. */
#define MRM_ENGINE_ALIGN 64

/* The kernels an engine runs (chosen at open). */
typedef enum mrm_engine_isa {
    MRM_ENGINE_PORTABLE = 0, /* plain C (vectorised by the compiler for the build's baseline) */
    MRM_ENGINE_AVX2 = 1,     /* x86-64 AVX2 + FMA */
    MRM_ENGINE_AVX512 = 2,   /* x86-64 AVX-512F */
    MRM_ENGINE_AVX512VNNI = 3, /* x86-64 AVX-512F with AVX512-VNNI: the int8 convolutions use vpdpbusd */
    MRM_ENGINE_NEONDOT = 4     /* aarch64 with the dot-product instructions (ARMv8.2 dotprod): the int8
                                  convolutions use sdot; the float ones are the portable (NEON) kernels */
} mrm_engine_isa;
/* The last mrm_engine_isa value (for loops over every set). */
#define MRM_ENGINE_ISA_LAST MRM_ENGINE_NEONDOT

/* The largest team whose sub-team split (mrm_engine_team_lanes) the engine works out at open and
 * keeps; a larger team's is worked out on each call. */
#define MRM_ENGINE_TEAM_PLANNED 64

/* An opened engine: a view of an image (the caller keeps the image alive and unchanged). Its
 * fields are read-only for the caller. */
typedef struct mrm_engine {
    const unsigned char *image;
    size_t image_len;
    const void *steps;     /* into the image */
    int n_steps;
    const unsigned char *weights; /* the weight arena, into the image */
    size_t weight_bytes;
    size_t act_floats;     /* activations of one record */
    size_t scratch_floats; /* kernels' scratch */
    size_t lane_scratch_floats; /* a second scratch, for a team of two running the branches side by side */
    int lanes;             /* 1: the two branches may run side by side (mrm_engine_run_team, 2 threads) */
    int n_classes, n_heads;
    int out_buf[2];        /* the buffers holding each head's logits */
    int isa;               /* mrm_engine_isa, detected at open */
    int quantized;         /* 1: some layers run in int8 */
    int team_planned;      /* 1: team_n1 holds mrm_engine_team_lanes for teams of 0 .. MRM_ENGINE_TEAM_PLANNED */
    unsigned char team_n1[MRM_ENGINE_TEAM_PLANNED + 1]; /* by team size: lane 1's sub-team, 0: none */
} mrm_engine;

/* Opens an image: checks the header, every step's shapes and every offset against image_len.
 * No allocation, no copy. The image must be aligned to MRM_ENGINE_ALIGN. */
mrm_status mrm_engine_open(mrm_engine *e, const void *image, size_t image_len, mrm_error *err);
/* As mrm_engine_open with the kernels forced (tests, benchmarks); refused when the CPU lacks
 * them. */
mrm_status mrm_engine_open_isa(mrm_engine *e, const void *image, size_t image_len, mrm_engine_isa isa,
                               mrm_error *err);
/* The name of an ISA ("portable", "avx2", "avx512", "avx512vnni", "neondot"). */
const char *mrm_engine_isa_name(int isa);

/* Memory of an engine for a batch of B records: the weights (the image, read-only, shared) and
 * the work buffer one run context needs (records run one after the other, so the work memory
 * does not grow with B). A larger work buffer lets mrm_engine_run take a group of up to
 * MRM_ENGINE_GROUP records through each step together (step by step, the group's records one
 * after the other, each with its own activations), so that each step's weights are read from
 * memory once per group rather than once per record: faster at batches of several records on
 * a CPU whose caches hold a step's weights but not all of them. group_work_bytes is the buffer
 * for min(B, MRM_ENGINE_GROUP) records; any size from work_bytes up works (the group is as many
 * records as fit), and the outputs are the same bit for bit. */
#define MRM_ENGINE_GROUP 8
typedef struct mrm_engine_sizes {
    size_t weight_bytes;     /* the image: weights, steps and header */
    size_t work_bytes;       /* one run context */
    size_t group_work_bytes; /* a run context for a group of group_records records */
    int group_records;       /* min(B, MRM_ENGINE_GROUP) */
} mrm_engine_sizes;
mrm_status mrm_engine_get_sizes(const mrm_engine *e, int B, mrm_engine_sizes *s, mrm_error *err);

/* Runs B records x (B, 12, 1000) with the caller's work buffer (work_bytes from
 * mrm_engine_get_sizes, aligned to MRM_ENGINE_ALIGN): logits1 (B, n_classes) of head 1 and,
 * when the model has two heads and logits2 is not NULL, logits2 of head 2. Allocates nothing. */
mrm_status mrm_engine_run(const mrm_engine *e, void *work, size_t work_bytes, const float *x, int B,
                          float *logits1, float *logits2, mrm_error *err);

/* ---- a team of the caller's threads on the same records ------------------------------------
 * mrm_engine_run spends one thread on a record. To cut the latency of one record (or of a batch
 * smaller than the number of cores), nth threads the caller owns may share each record: every
 * one of them calls mrm_engine_run_team with the same arguments but its own ith (0 .. nth-1) and
 * err. Each convolution's output tiles (output channels x time steps) and its padded input's
 * channels (an FFT convolution: its output channels, after its inputs' transforms on thread 0),
 * and the pooling layers' channels, are shared out among the team; the small layers (gates,
 * fusion, heads) run on thread 0. A team of two threads runs the two branches of a two-branch
 * model side by side instead (one branch a thread, e->lanes), where the image plans their
 * buffers apart (images of this version do); larger teams can too, as two sub-teams
 * (mrm_engine_run_subteams below). Between layers every thread calls sync(user), which
 * must return only once all nth threads of the team have called it (a barrier: a pthread
 * barrier, `#pragma omp barrier` inside a parallel region of nth threads, a spinning counter,
 * ...); it is called the same number of times by every thread. The engine creates no threads and
 * waits on nothing but sync.
 *
 * Memory: the whole team shares ONE work buffer of mrm_engine_sizes.work_bytes (the same size as
 * a single thread's, which includes the second branch's scratch): the activations and the padded
 * input are the team's, and a layer that runs on one thread uses the scratch while the others
 * wait. Several teams need one buffer each.
 *
 * The results equal mrm_engine_run's bit for bit, for any nth: every output is summed by one
 * thread in the same order. The records run one after the other; logits1/logits2 are complete
 * when mrm_engine_run_team returns in any of the team's threads. The arguments are checked the
 * same way on every thread, so on an error every thread returns it without calling sync. */
typedef void (*mrm_engine_sync_fn)(void *user);
mrm_status mrm_engine_run_team(const mrm_engine *e, void *work, size_t work_bytes, const float *x, int B,
                               float *logits1, float *logits2, int ith, int nth, mrm_engine_sync_fn sync, void *user,
                               mrm_error *err);

/* ---- sub-teams: the two branches side by side on a larger team -----------------------------
 * A team of nth >= 3 threads runs the branches one after the other, every layer shared by the
 * whole team, unless it can give each branch's threads a barrier of their own. Then threads
 * [0, n1) run branch 1 and threads [n1, nth) branch 2, each sub-team sharing its branch's layers
 * among its threads and meeting at its own barrier; the whole team meets only at the shared
 * layers and after the branches. mrm_engine_team_lanes gives n1 (the threads in proportion to the
 * branches' estimated work, each sub-team at least one; the same for the same e and nth on every
 * call), or 0 when the team cannot split (nth < 2, or an image whose branches' buffers are not
 * planned apart: e->lanes 0). The split is worked out once, when the engine is opened, for
 * every team of up to MRM_ENGINE_TEAM_PLANNED threads (kept in the mrm_engine: a look-up then);
 * a larger team's on each call (tens of microseconds). Every thread calls mrm_engine_run_subteams like mrm_engine_run_team,
 * plus lane_user: the argument that makes sync a barrier of ITS sub-team (n1 threads for ith <
 * n1, else nth - n1; a sub-team of one thread never calls it). With lane_user NULL it is
 * mrm_engine_run_team. The results equal mrm_engine_run's bit for bit. */
int mrm_engine_team_lanes(const mrm_engine *e, int nth);
mrm_status mrm_engine_run_subteams(const mrm_engine *e, void *work, size_t work_bytes, const float *x, int B,
                                   float *logits1, float *logits2, int ith, int nth, mrm_engine_sync_fn sync,
                                   void *user, void *lane_user, mrm_error *err);

/* Calibration for int8 (mrm_engine_quantize, mrmnet/engine_build.h): runs B records like
 * mrm_engine_run and raises absmax[i] (mrm_engine_num_buffers values, the caller's, start them at
 * 0) to the largest |value| activation buffer i held. */
int mrm_engine_num_buffers(const mrm_engine *e);
mrm_status mrm_engine_calibrate(const mrm_engine *e, void *work, size_t work_bytes, const float *x, int B,
                                float *absmax, mrm_error *err);

/* Metadata kept in the image (the model's metadata: "classes", "mean", "std", "thresholds",
 * ...): the value of key as a NUL-terminated string inside the image, or NULL. */
const char *mrm_engine_info(const mrm_engine *e, const char *key);

#ifdef __cplusplus
}
#endif

#endif
