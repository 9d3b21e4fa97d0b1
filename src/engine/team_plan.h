/* How a team of threads shares a record's steps (mrm_engine_run_team), and a model of the time it
 * takes: what the engine uses to cut a team into two sub-teams, one for each lane (branch), and
 * what `bench/bench_team.c` and the team test use to predict batch-1 latency against the thread
 * count from each step's one-thread time.
 *
 * A team of nth threads runs a record in one of two schemes (mrm_eng_team_plan picks one):
 *  - ENG_TEAM_LAYERS: every step shared by the whole team, one after the other, a barrier after
 *    each (and between a convolution's padding and its tiles): the scheme of images without lanes.
 *  - ENG_TEAM_LANES: the lane-0 steps as above; in each region of lane steps, threads [0, n1) run
 *    lane 1 and threads [n1, nth) lane 2 (mrm_eng_team_lane_split), each sub-team sharing its
 *    lane's steps among its threads with barriers of its own, the whole team meeting once at the
 *    region's end. A sub-team of one thread runs its steps without barriers.
 *
 * Within a step, the slowest of m threads does the largest share of its units: a direct
 * convolution's register tiles (eng_conv_tiles), a pool's channels, an FFT convolution's output
 * channels and a Winograd convolution's likewise (in units of the direct tile's channels; their
 * inputs' transforms on one thread first); the other steps (gates, Fusion, heads) run on the
 * (sub-)team's first thread. */
#ifndef MRM_ENGINE_TEAM_PLAN_H
#define MRM_ENGINE_TEAM_PLAN_H

#include "engine/engine_image.h"
#include "engine/kernels.h"
#include "mrmnet/engine.h"

enum { ENG_TEAM_LAYERS = 0, ENG_TEAM_LANES = 1, ENG_TEAM_ENGINE = 2 };

/* The share of step s's one-thread time that the slowest of m threads does (1 for a step that
 * runs on one thread), with the float tile f and the int8 tile q. */
double mrm_eng_team_share(const eng_step *s, eng_tile f, eng_tile q, int m);

/* The barriers each thread of a (sub-)team of more than one thread calls for step s. */
int mrm_eng_team_syncs(const eng_step *s);

/* An estimate of step s's one-thread time, in the direct kernel's multiply-adds: a direct
 * convolution's count; a Winograd one's halved; an FFT one's complex products (4 real each) at
 * 0.6 of the direct kernel's rate; pools, gates and the Fusion block 15, 20 and 160 per output.
 * The factors are from one profile of the default model's steps with AVX-512
 * (tests/fixtures/engine/team_steps.txt); what the engine splits by, having no measured times. */
double mrm_eng_step_cost(const eng_step *s);

/* The time of lane `lane`'s steps in the region [i0, i1) on a sub-team of m threads: the sum of
 * the slowest thread's shares of cost[i] (NULL: mrm_eng_step_cost), plus m > 1 ? barrier(m)
 * per sync. barrier_m: the cost of one barrier of m threads, indexed by m (NULL: 0). */
double mrm_eng_team_lane_time(const eng_step *st, uint32_t i0, uint32_t i1, int lane, eng_tile f, eng_tile q, int m,
                              const double *cost, const double *barrier_m);

/* The size of lane 1's sub-team for a team of nth >= 2 threads (threads [0, n1); lane 2 gets the
 * other nth - n1): the n1 in [1, nth - 1] that minimises the slowest lane's time summed over
 * the image's lane regions, costs as for mrm_eng_team_lane_time (barriers not counted); on a
 * tie, the one nearest to nth times lane 1's share of the two lanes' work. */
int mrm_eng_team_lane_split(const eng_step *st, uint32_t n, eng_tile f, eng_tile q, int nth, const double *cost);

/* The barrier of m threads in mrm_eng_step_cost's units: (m - 1) times ENG_TEAM_BARRIER_COST
 * (every arrival one more atomic update of the same cache line; the two-thread barrier measured
 * 0.24-0.31 us on this project's 2-core machine, about 27,000 of the direct kernel's
 * multiply-adds with AVX-512 at ~95 per ns). */
#define ENG_TEAM_BARRIER_COST 27000.0
#define ENG_TEAM_MAX 256 /* teams larger than this: no model, sub-teams whenever the lanes allow */
double mrm_eng_team_barrier_cost(int m);

/* How the engine runs a team of nth threads (mrm_engine_team_lanes): lane 1's sub-team size
 * (mrm_eng_team_lane_split), or 0 to share every layer (ENG_TEAM_LAYERS): sub-teams where the
 * model below, from the estimated costs and barriers, predicts them no slower; a team of two
 * always runs the lanes one thread each; 0 without lanes (lanes_ok 0) or for nth < 2. */
int mrm_eng_team_plan(const eng_step *st, uint32_t n, eng_tile f, eng_tile q, int nth, int lanes_ok);

/* mrm_eng_team_plan for every team of 0 .. nmax threads at once, into n1[0 .. nmax] (the same
 * values: the same sums in the same order, each step's share on m threads computed once for
 * every m, each region's lane times on 1 .. nmax - 1 threads once rather than once a split of
 * each team), for mrm_engine_open to keep in the engine. nmax at most ENG_TEAM_PLAN_MAX (MRM_ENGINE_TEAM_PLANNED). Returns 1, or 0 (n1 not
 * all set) for an nmax out of range or an image of more than ENG_TEAM_PLAN_REGIONS lane regions
 * (its tables, on the stack, hold 4 x ENG_TEAM_PLAN_MAX doubles a region: 4 KiB in all; the
 * builder's images have one region); then plan each team with mrm_eng_team_plan. */
#define ENG_TEAM_PLAN_MAX MRM_ENGINE_TEAM_PLANNED
#define ENG_TEAM_PLAN_REGIONS 2
int mrm_eng_team_plan_all(const eng_step *st, uint32_t n, eng_tile f, eng_tile q, int lanes_ok, int nmax,
                          unsigned char *n1);

/* The predicted time of one record on nth threads, lane 1 on n1 threads (0: every step shared
 * by the whole team): the sum over steps (and lane regions) of the slowest thread's time of
 * cost[i] (NULL: mrm_eng_step_cost), plus barrier_m[m] (NULL: none) for each barrier of m
 * threads (one more a record, one a lane region). */
double mrm_eng_team_predict_n1(const eng_step *st, uint32_t n, eng_tile f, eng_tile q, int nth, int n1,
                               const double *cost, const double *barrier_m);

/* The same in a scheme: ENG_TEAM_LAYERS the engine before sub-teams (every step shared, except a
 * team of two on an image with lanes: one thread a lane); ENG_TEAM_LANES always sub-teams
 * (mrm_eng_team_lane_split); ENG_TEAM_ENGINE what the engine does now (mrm_eng_team_plan). */
double mrm_eng_team_predict(const eng_step *st, uint32_t n, eng_tile f, eng_tile q, int nth, int scheme, int lanes_ok,
                            const double *cost, const double *barrier_m);

/* Steps [i0, i1) of one record x on one thread (the earlier steps' outputs are the work buffer's
 * from a previous call): to time each step alone (bench/bench_team.c). */
mrm_status mrm_eng_run_steps(const mrm_engine *e, void *work, size_t work_bytes, const float *x, int i0, int i1,
                             mrm_error *err);

#endif
