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

/* Teams for n records (inference) on `threads` threads: how many teams to form, each team
 * sharing its records one by one (the engine's team run), when n is small next to threads.
 * Team j has the records mrm_partition(n, teams, j) and the threads mrm_partition_team(n,
 * threads, teams, j): one each, and the rest in proportion to the records; so every thread is
 * in one team and every team has a record and a thread. The count is chosen to minimise the
 * slowest team's time, r records on m threads taking r (1 / m + 1/16) record-times (1/16: what
 * one more thread on a record costs in waiting and in the layers that do not split); ties go to
 * more, smaller teams. 1 team for one record; `threads` teams (one thread each, no sharing) when
 * n is a multiple of threads. */
int mrm_partition_teams(long long n, int threads);
mrm_range mrm_partition_team(long long n, int threads, int teams, int j);

#endif
