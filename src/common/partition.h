/* How every parallel loop of the library shares out its work: n units (batch rows, output
 * channel tiles, time tiles, records) over at most max_parts threads (or run contexts).
 *
 *  - mrm_partition_parts: the number of parts to use: as many as there are threads, but no
 *    more than there are units, nor more than n / min_units (a part should carry at least
 *    min_units units to be worth a thread); at least 1.
 *  - mrm_partition: part p's units [begin, end): contiguous, in order, every unit in exactly one
 *    part, and sizes that differ by at most one (the first n mod parts parts get the extra one).
 *
 * A split that follows these two never leaves a thread idle while another has two units or
 * more, and its result depends only on (n, parts): the same inputs and thread count give the
 * same work to the same thread, so per-thread partial sums add up in the same order. */
#ifndef MRM_COMMON_PARTITION_H
#define MRM_COMMON_PARTITION_H

typedef struct {
    long long begin, end;
} mrm_range;

int mrm_partition_parts(long long n, int max_parts, long long min_units);
mrm_range mrm_partition(long long n, int parts, int p);

#endif
