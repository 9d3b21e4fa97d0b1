/* The library's one rule for sharing work among threads (partition.h). */
#include "common/partition.h"

int mrm_partition_parts(long long n, int max_parts, long long min_units) {
    if (n < 1 || max_parts < 1) return 1;
    if (min_units < 1) min_units = 1;
    long long cap = n / min_units;
    if (cap < 1) cap = 1;
    return cap < max_parts ? (int)cap : max_parts;
}

mrm_range mrm_partition(long long n, int parts, int p) {
    mrm_range r = {0, 0};
    if (n < 1 || parts < 1 || p < 0 || p >= parts) return r;
    long long q = n / parts, extra = n % parts;
    r.begin = (long long)p * q + (p < extra ? p : extra);
    r.end = r.begin + q + (p < extra ? 1 : 0);
    return r;
}

mrm_range mrm_partition_team(long long n, int threads, int teams, int j) {
    mrm_range r = {0, 0};
    if (n < 1 || teams < 1 || teams > threads || teams > n || j < 0 || j >= teams) return r;
    mrm_range rows = mrm_partition(n, teams, j);
    long long extra = threads - teams;
    r.begin = j + extra * rows.begin / n;
    r.end = j + 1 + extra * rows.end / n;
    return r;
}

int mrm_partition_teams(long long n, int threads) {
    if (n < 1 || threads < 1) return 1;
    int gmax = n < threads ? (int)n : threads, best = 1;
    long long bnum = 0, bden = 1;
    for (int g = 1; g <= gmax; g++) {
        long long num = 0, den = 1; /* the slowest team's r (1/m + 1/16) = r (16 + m) / (16 m) */
        for (int j = 0; j < g; j++) {
            mrm_range rows = mrm_partition(n, g, j), th = mrm_partition_team(n, threads, g, j);
            long long m = th.end - th.begin, tn = (rows.end - rows.begin) * (16 + m), td = 16 * m;
            if (tn * den > num * td) num = tn, den = td;
        }
        if (g == 1 || num * bden <= bnum * den) best = g, bnum = num, bden = den;
    }
    return best;
}
