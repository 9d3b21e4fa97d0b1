/* Data-parallel training over MPI: the training loop's communicator (mrm_comm) on
 * MPI_COMM_WORLD. The library knows nothing of MPI; the command-line tool links it when the
 * build found an MPI library (CMake option MRM_MPI, on by default), and starts MPI only when a
 * launcher (mpirun, mpiexec, srun) started the process. A build without MPI started by a
 * launcher says so and refuses to train rather than run P independent copies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#ifdef MRM_WITH_MPI
#include <mpi.h>
#endif

/* The number of processes a launcher says it started (0: none seen; -1: a launcher, count
 * unknown): Open MPI's mpirun (OMPI_COMM_WORLD_SIZE), PMI-1/2 launchers such as MPICH's and
 * srun --mpi=pmi2 (PMI_SIZE), PMIx (PMIX_RANK). */
int cli_launcher_size(void) {
    static const char *const sizes[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        const char *v = getenv(sizes[i]);
        if (v && *v) {
            int n = atoi(v);
            return n > 0 ? n : -1;
        }
    }
    return getenv("PMIX_RANK") || getenv("PMI_RANK") ? -1 : 0;
}

#ifdef MRM_WITH_MPI

/* Counts above INT_MAX go in pieces. */
enum { CHUNK = 1 << 30 };

/* An in-place sum over the ranks of n elements of type t (esz bytes each). */
static int sum_all(void *buf, size_t n, MPI_Datatype t, size_t esz) {
    for (size_t o = 0; o < n; o += CHUNK) {
        int k = (int)(n - o < CHUNK ? n - o : CHUNK);
        if (MPI_Allreduce(MPI_IN_PLACE, (char *)buf + o * esz, k, t, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS) return -1;
    }
    return 0;
}
static int sum_f32(void *ctx, float *buf, size_t n) {
    (void)ctx;
    return sum_all(buf, n, MPI_FLOAT, sizeof *buf);
}
static int sum_f64(void *ctx, double *buf, size_t n) {
    (void)ctx;
    return sum_all(buf, n, MPI_DOUBLE, sizeof *buf);
}
static int bcast(void *ctx, void *buf, size_t bytes, int root) {
    (void)ctx;
    for (size_t o = 0; o < bytes; o += CHUNK) {
        int k = (int)(bytes - o < CHUNK ? bytes - o : CHUNK);
        if (MPI_Bcast((char *)buf + o, k, MPI_BYTE, root, MPI_COMM_WORLD) != MPI_SUCCESS) return -1;
    }
    return 0;
}

static int mpi_started;

int cli_comm_start(const char *cmd, mrm_comm *c) {
    memset(c, 0, sizeof *c);
    c->size = 1;
    if (!cli_launcher_size()) return 0; /* not started by a launcher: one process, no MPI */
    int provided = 0;
    /* MPI is called from the main thread only, outside the OpenMP regions */
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "mrmnet %s: MPI could not be started\n", cmd);
        return -1;
    }
    mpi_started = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    c->allreduce_f32 = sum_f32, c->allreduce_f64 = sum_f64, c->broadcast = bcast;
    return 0;
}

void cli_comm_end(const mrm_comm *c, int failed) {
    if (!mpi_started) return;
    if (failed && c->size > 1) {
        /* the other processes may be waiting in a sum: end them all */
        fprintf(stderr, "mrmnet: rank %d of %d failed: ending the job\n", c->rank, c->size);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, failed);
    }
    MPI_Finalize();
    mpi_started = 0;
}

int cli_comm_available(void) { return 1; }

#else /* built without MPI */

int cli_comm_start(const char *cmd, mrm_comm *c) {
    memset(c, 0, sizeof *c);
    c->size = 1;
    int n = cli_launcher_size();
    if (n > 1 || n < 0) {
        char count[32] = "several";
        if (n > 1) snprintf(count, sizeof count, "%d", n);
        fprintf(stderr,
                "mrmnet %s: started by an MPI launcher (mpirun, srun) as one of %s processes, but this mrmnet was built "
                "without MPI (no MPI library, e.g. Debian's libopenmpi-dev, when it was built): it cannot train "
                "data-parallel. Install libopenmpi-dev and rebuild, or start it without the launcher.\n",
                cmd, count);
        return -1;
    }
    return 0;
}

void cli_comm_end(const mrm_comm *c, int failed) { (void)c, (void)failed; }

int cli_comm_available(void) { return 0; }

#endif
