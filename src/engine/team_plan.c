/* How a team shares a record's steps, and its time modelled (team_plan.h). */
#include "engine/team_plan.h"

#include "engine/fft.h"

/* The largest of m contiguous parts of n units, as a fraction of n (eng_split's first part). */
static double largest_part(long long n, int m) {
    if (n < 1 || m < 2) return 1.0;
    long long b, e;
    eng_split(n, m, 0, &b, &e);
    return (double)(e - b) / (double)n;
}

double mrm_eng_team_share(const eng_step *s, eng_tile f, eng_tile q, int m) {
    switch (s->op) {
    case ENG_OP_CONV:
        if (s->kind == ENG_CONV_FFT || s->kind == ENG_CONV_FFT3) {
            /* the inputs' transforms on one thread, then the output channels (units of f.co):
             * the transforms' share estimated from operation counts, ~5 log2 H flops a point for
             * an FFT against 8 (kind FFT3: 6) a point and input channel for the products */
            const eng_fft ff = eng_fft_shape(s->cin, s->lout, s->k, s->stride);
            int lg = 0;
            while ((1 << lg) < ff.H) lg++;
            const double fwd = 5.0 * lg * ff.Ce, prod = (s->kind == ENG_CONV_FFT3 ? 6.0 : 8.0) * ff.Ce * s->cout,
                         inv = 5.0 * lg * s->cout;
            const double fin = fwd / (fwd + prod + inv);
            return fin + (1 - fin) * largest_part((s->cout + f.co - 1) / f.co, m);
        }
        if (s->kind == ENG_CONV_WINOGRAD) {
            /* the same halves; the input transform about one product's work per input channel
             * (36 of 6 x 6 per tile) against cout */
            const double fin = 1.0 / (1.0 + s->cout);
            return fin + (1 - fin) * largest_part((s->cout + f.co - 1) / f.co, m);
        }
        if (s->kind != ENG_CONV_DIRECT) return 1.0;
        return largest_part(eng_conv_tiles(s->cout, s->groups, s->lout, f.co, f.t), m);
    case ENG_OP_CONV8: return largest_part(eng_conv_tiles(s->cout, s->groups, s->lout, q.co, q.t), m);
    case ENG_OP_POOL2S1:
    case ENG_OP_POOL2: return largest_part(s->c, m);
    default: return 1.0;
    }
}

int mrm_eng_team_syncs(const eng_step *s) {
    return s->op == ENG_OP_CONV || s->op == ENG_OP_CONV8 ? 2 : 1;
}

double mrm_eng_step_cost(const eng_step *s) {
    switch (s->op) {
    case ENG_OP_CONV:
    case ENG_OP_CONV8: {
        double g = s->groups > 0 ? s->groups : 1;
        double macs = (double)s->cout * ((double)s->cin / g) * s->k * s->lout;
        if (s->op == ENG_OP_CONV8) return macs / 2; /* four products a 32-bit lane, at about half the rate */
        if (s->kind == ENG_CONV_WINOGRAD) return macs / 2;
        if (s->kind == ENG_CONV_FFT || s->kind == ENG_CONV_FFT3) {
            /* its complex products (4 real a product, 3 for kind FFT3), at about 0.6 of the direct
             * kernel's rate */
            const eng_fft ff = eng_fft_shape(s->cin, s->lout, s->k, s->stride);
            return 1.6 * (s->kind == ENG_CONV_FFT3 ? 3.0 : 4.0) * ff.H * ff.nbp * (double)ff.Ce * s->cout;
        }
        return macs;
    }
    /* the others per output, in the direct kernel's multiply-adds (AVX-512, the default model) */
    case ENG_OP_POOL2S1:
    case ENG_OP_POOL2: return 15.0 * s->c * s->L;
    case ENG_OP_GATE: return 20.0 * s->c * s->L;
    case ENG_OP_FUSION: return 160.0 * s->c * s->L;
    default: return 1e4; /* heads, the heads' sum */
    }
}

double mrm_eng_team_barrier_cost(int m) { return m < 2 ? 0 : ENG_TEAM_BARRIER_COST * (m - 1); }

static double cost_of(const eng_step *st, uint32_t i, const double *cost) {
    return cost ? cost[i] : mrm_eng_step_cost(&st[i]);
}

double mrm_eng_team_lane_time(const eng_step *st, uint32_t i0, uint32_t i1, int lane, eng_tile f, eng_tile q, int m,
                              const double *cost, const double *barrier_m) {
    double t = 0;
    for (uint32_t i = i0; i < i1; i++) {
        if (st[i].lane != lane) continue;
        t += cost_of(st, i, cost) * mrm_eng_team_share(&st[i], f, q, m);
        if (m > 1 && barrier_m) t += mrm_eng_team_syncs(&st[i]) * barrier_m[m];
    }
    return t;
}

/* The slowest lane's time summed over the regions, lane 1 on n1 threads, lane 2 on nth - n1. */
static double lanes_time(const eng_step *st, uint32_t n, eng_tile f, eng_tile q, int n1, int nth, const double *cost,
                         const double *barrier_m) {
    double t = 0;
    for (uint32_t i = 0; i < n;) {
        if (!st[i].lane) {
            i++;
            continue;
        }
        uint32_t j = eng_lane_region_end(st, n, i);
        double a = mrm_eng_team_lane_time(st, i, j, 1, f, q, n1, cost, barrier_m);
        double b = mrm_eng_team_lane_time(st, i, j, 2, f, q, nth - n1, cost, barrier_m);
        t += a > b ? a : b;
        i = j;
    }
    return t;
}

/* The two lanes' work (w[1], w[2]) and the n1 a team of nth threads would give lane 1 in
 * proportion to it (mrm_eng_team_lane_split's tie-break). */
static void lanes_work(const eng_step *st, uint32_t n, const double *cost, double w[3]) {
    w[0] = w[1] = w[2] = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (st[i].lane == 1) w[1] += cost_of(st, i, cost);
        if (st[i].lane == 2) w[2] += cost_of(st, i, cost);
    }
}
static double ideal_n1(const double w[3], int nth) { return w[1] + w[2] > 0 ? nth * w[1] / (w[1] + w[2]) : nth / 2.0; }

/* Whether lane 1 on n1 threads, the slowest lane's time t, beats the best split so far (best,
 * bt): faster, or as fast and nearer the ideal; n1 = 1 is the first candidate. */
static int better_split(int n1, double t, double ideal, int best, double bt) {
    double d = n1 - ideal, bd = best - ideal;
    return n1 == 1 || t < bt * (1 - 1e-9) || (t <= bt * (1 + 1e-9) && d * d < bd * bd);
}

int mrm_eng_team_lane_split(const eng_step *st, uint32_t n, eng_tile f, eng_tile q, int nth, const double *cost) {
    if (nth < 2) return nth < 1 ? 0 : 1;
    double w[3];
    lanes_work(st, n, cost, w);
    const double ideal = ideal_n1(w, nth);
    int best = 1;
    double bt = 0;
    for (int n1 = 1; n1 < nth; n1++) {
        double t = lanes_time(st, n, f, q, n1, nth, cost, NULL);
        if (better_split(n1, t, ideal, best, bt)) best = n1, bt = t;
    }
    return best;
}

/* Sub-teams or every layer shared, for a team of nth >= 3 threads whose lane split is n1:
 * mrm_eng_team_plan's choice, bar[m] the barrier cost for m = 0 .. nth. */
static int plan_choice(const eng_step *st, uint32_t n, eng_tile f, eng_tile q, int nth, int n1, const double *bar) {
    double layers = mrm_eng_team_predict_n1(st, n, f, q, nth, 0, NULL, bar);
    double lanes = mrm_eng_team_predict_n1(st, n, f, q, nth, n1, NULL, bar);
    return lanes <= layers ? n1 : 0;
}

int mrm_eng_team_plan(const eng_step *st, uint32_t n, eng_tile f, eng_tile q, int nth, int lanes_ok) {
    if (!lanes_ok || nth < 2) return 0;
    const int n1 = mrm_eng_team_lane_split(st, n, f, q, nth, NULL);
    if (nth == 2) return n1; /* one thread a lane */
    double bar[ENG_TEAM_MAX + 1];
    for (int m = 0; m <= nth && m <= ENG_TEAM_MAX; m++) bar[m] = mrm_eng_team_barrier_cost(m);
    if (nth > ENG_TEAM_MAX) return n1;
    return plan_choice(st, n, f, q, nth, n1, bar);
}

int mrm_eng_team_plan_all(const eng_step *st, uint32_t n, eng_tile f, eng_tile q, int lanes_ok, int nmax,
                          unsigned char *n1) {
    if (nmax < 0 || nmax > ENG_TEAM_PLAN_MAX) return 0;
    for (int nth = 0; nth <= nmax; nth++) n1[nth] = 0;
    if (!lanes_ok || nmax < 2) return 1;
    int nr = 0;
    for (uint32_t i = 0; i < n; i = st[i].lane ? eng_lane_region_end(st, n, i) : i + 1)
        if (st[i].lane && ++nr > ENG_TEAM_PLAN_REGIONS) return 0;
    /* each region's lane times on m threads (lane 1: a, lane 2: b; with the barriers of
     * mrm_eng_team_predict_n1: ab, bb), filled in for m = 1, 2, ... in turn: a team of m threads
     * looks up only splits of fewer threads. Each step's share at m threads computed once, for
     * the tables and for the team of m's two predictions: the same terms summed in the same
     * order as mrm_eng_team_lane_split, mrm_eng_team_lane_time and mrm_eng_team_predict_n1. */
    double a[ENG_TEAM_PLAN_REGIONS][ENG_TEAM_PLAN_MAX], b[ENG_TEAM_PLAN_REGIONS][ENG_TEAM_PLAN_MAX];
    double ab[ENG_TEAM_PLAN_REGIONS][ENG_TEAM_PLAN_MAX], bb[ENG_TEAM_PLAN_REGIONS][ENG_TEAM_PLAN_MAX];
    double w[3], bar[ENG_TEAM_PLAN_MAX + 1];
    lanes_work(st, n, NULL, w);
    for (int m = 0; m <= nmax; m++) bar[m] = mrm_eng_team_barrier_cost(m);
    for (int m = 1; m <= nmax; m++) {
        int best = 1;
        if (m >= 2) { /* mrm_eng_team_lane_split */
            const double ideal = ideal_n1(w, m);
            double bt = 0;
            for (int k = 1; k < m; k++) {
                double t = 0;
                for (int r = 0; r < nr; r++) t += a[r][k] > b[r][m - k] ? a[r][k] : b[r][m - k];
                if (better_split(k, t, ideal, best, bt)) best = k, bt = t;
            }
        }
        const int tables = m < nmax, predict = m >= 3;
        double layers = bar[m], lanes = bar[m]; /* mrm_eng_team_predict_n1 with n1 0 and best */
        int r = -1;
        for (uint32_t i = 0; i < n; i++) {
            const int lane = st[i].lane;
            if (lane && (i == 0 || !st[i - 1].lane)) { /* a region starts */
                r++;
                if (tables) a[r][m] = b[r][m] = ab[r][m] = bb[r][m] = 0;
                if (predict) lanes += (ab[r][best] > bb[r][m - best] ? ab[r][best] : bb[r][m - best]) + bar[m];
            }
            if (!predict && (!tables || !lane)) continue;
            const double c = mrm_eng_step_cost(&st[i]), sh = mrm_eng_team_share(&st[i], f, q, m);
            const int syncs = mrm_eng_team_syncs(&st[i]);
            if (predict) {
                layers += c * sh + syncs * bar[m];
                if (!lane) lanes += c * sh + syncs * bar[m];
            }
            if (tables && lane) {
                double *t = lane == 1 ? &a[r][m] : &b[r][m], *tb = lane == 1 ? &ab[r][m] : &bb[r][m];
                *t += c * sh;
                *tb += c * sh;
                if (m > 1) *tb += syncs * bar[m];
            }
        }
        if (m >= 2) n1[m] = (unsigned char)(predict && !(lanes <= layers) ? 0 : best);
    }
    return 1;
}

double mrm_eng_team_predict_n1(const eng_step *st, uint32_t n, eng_tile f, eng_tile q, int nth, int n1,
                               const double *cost, const double *barrier_m) {
    if (nth < 1) return 0;
    const double bar = nth > 1 && barrier_m ? barrier_m[nth] : 0;
    double t = bar; /* the record's last barrier */
    for (uint32_t i = 0; i < n;) {
        if (!n1 || !st[i].lane) {
            t += cost_of(st, i, cost) * mrm_eng_team_share(&st[i], f, q, nth) + mrm_eng_team_syncs(&st[i]) * bar;
            i++;
            continue;
        }
        uint32_t j = eng_lane_region_end(st, n, i);
        double a = mrm_eng_team_lane_time(st, i, j, 1, f, q, n1, cost, barrier_m);
        double b = mrm_eng_team_lane_time(st, i, j, 2, f, q, nth - n1, cost, barrier_m);
        t += (a > b ? a : b) + bar;
        i = j;
    }
    return t;
}

double mrm_eng_team_predict(const eng_step *st, uint32_t n, eng_tile f, eng_tile q, int nth, int scheme, int lanes_ok,
                            const double *cost, const double *barrier_m) {
    int n1 = 0;
    if (scheme == ENG_TEAM_LANES && lanes_ok && nth >= 2) n1 = mrm_eng_team_lane_split(st, n, f, q, nth, NULL);
    if (scheme == ENG_TEAM_ENGINE) n1 = mrm_eng_team_plan(st, n, f, q, nth, lanes_ok);
    if (scheme == ENG_TEAM_LAYERS && lanes_ok && nth == 2) n1 = 1; /* a team of two ran the lanes already */
    return mrm_eng_team_predict_n1(st, n, f, q, nth, n1, cost, barrier_m);
}
