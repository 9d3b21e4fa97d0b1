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
