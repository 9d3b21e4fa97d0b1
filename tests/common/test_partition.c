/* The library's one rule for sharing work among threads (src/common/partition.h), checked for
 * 1 to 64 threads against every batch size from 1 to 256 and against the units the model's
 * layers are split into: output-channel tiles (6 and 32 channels) and time tiles (64, 24 and 12
 * steps) of its convolutions at their real shapes, Winograd columns (sample, 4-step tile) of
 * its 3-tap convolutions at batches 1 to 256, and records over engine run contexts.
 * For each: every unit in exactly one part, parts contiguous and in order, no idle thread
 * where the work could be split (as many parts as threads, or as units), no part more than one
 * unit larger than another, and the same split every time. */
#include "../test_util.h"
#include "common/partition.h"

static long long checked;

/* n units over at most nt threads, parts of at least min_units units. */
static void check_split(long long n, int nt, long long min_units, const char *what) {
    int parts = mrm_partition_parts(n, nt, min_units);
    long long want = n / min_units < nt ? n / min_units : nt;
    if (want < 1) want = 1;
    if (parts != want) {
        CHECK(0, "%s: %lld units, %d threads, at least %lld a part: %d parts (want %lld)", what, n, nt, min_units,
              parts, want);
        return;
    }
    long long next = 0, lo = -1, hi = -1;
    int ok = 1;
    for (int p = 0; p < parts && ok; p++) {
        mrm_range r = mrm_partition(n, parts, p), r2 = mrm_partition(n, parts, p);
        long long len = r.end - r.begin;
        ok &= r.begin == next && len >= 0 && r.begin == r2.begin && r.end == r2.end;
        next = r.end;
        if (lo < 0 || len < lo) lo = len;
        if (hi < 0 || len > hi) hi = len;
    }
    ok &= next == n;                         /* every unit, once, in order */
    ok &= hi - lo <= 1;                      /* imbalance at most one unit */
    ok &= n < parts || lo >= 1;              /* nobody idle while another has work */
    ok &= n < min_units || lo >= min_units;  /* parts worth a thread */
    CHECK(ok, "%s: %lld units over %d threads (%d parts): sizes %lld..%lld, covered up to %lld", what, n, nt, parts,
          lo, hi, next);
    checked++;
}

static long long ceil_div(long long a, long long b) { return (a + b - 1) / b; }

int main(void) {
    /* degenerate arguments: one part, nothing out of range */
    CHECK(mrm_partition_parts(0, 8, 1) == 1 && mrm_partition_parts(5, 0, 1) == 1 && mrm_partition_parts(5, 8, 0) == 5,
          "degenerate part counts");
    mrm_range e = mrm_partition(10, 4, 4), f = mrm_partition(10, 0, 0), g = mrm_partition(0, 3, 1);
    CHECK(e.begin == e.end && f.begin == f.end && g.begin == g.end, "out-of-range parts are empty");
    mrm_range a = mrm_partition(32, 12, 0), b = mrm_partition(32, 12, 11);
    CHECK(a.begin == 0 && a.end == 3 && b.begin == 30 && b.end == 32, "32 rows over 12 threads: 3 first, 2 last");

    /* the model's per-record shapes (C, L) of its convolution outputs (docs: spec section 4) */
    const int shapes[][2] = {{16, 1001}, {32, 1002}, {64, 1003}, {64, 1004}, {64, 1000}, {64, 502},
                             {128, 500}, {128, 251}, {256, 251}, {128, 502}, {8, 502}, {16, 251}, {1, 502}, {1, 251}};
    const int ctiles[] = {6, 16, 32}, ttiles[] = {64, 24, 12};
    for (int nt = 1; nt <= 64; nt++) {
        for (long long B = 1; B <= 256; B++) {
            check_split(B, nt, 1, "batch rows");           /* samples of a layer, records of an engine run */
            check_split(B * 63, nt, 16, "winograd columns, 128x251");
            check_split(B * 126, nt, 16, "winograd columns, 64x502");
            check_split(B * 251, nt, 16, "winograd columns, 64x1003");
        }
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (size_t i = 0; i < 3; i++)
                for (size_t j = 0; j < 3; j++) {
                    long long tiles = ceil_div(shapes[s][0], ctiles[i]) * ceil_div(shapes[s][1], ttiles[j]);
                    check_split(tiles, nt, 1, "channel x time tiles of one record");
                    for (long long B = 1; B <= 8; B++) check_split(B * tiles, nt, 1, "tiles of a small batch");
                }
    }
    printf("%lld splits checked\n", checked);
    TEST_END();
}
