/* The mrmnet command-line tool: shared helpers of the subcommands. */
#ifndef MRM_CLI_H
#define MRM_CLI_H

#include <stdio.h>

#include "mrmnet.h"

/* Each subcommand: argv[0] is the subcommand's name. Returns the process exit status
 * (0 success, 1 failure of the work, 2 bad usage). */
typedef int (*mrm_cli_command_fn)(int argc, char **argv);

int cmd_read(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_prepare(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_backward(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_ablate(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_quantize(int argc, char **argv);

/* Standard output with its errors kept: cli_stdout_begin() (first thing in main) routes stdout through a
 * stream that remembers the first write error's reason; cli_stdout_end(cmd) flushes it and, when any
 * write failed, prints "mrmnet <cmd>: cannot write standard output: <reason>" and returns 1 (else 0). */
void cli_stdout_begin(void);
int cli_stdout_end(const char *cmd);

/* Data-parallel training (mpi_comm.c). cli_comm_start fills c: MPI_COMM_WORLD's rank and size and
 * functions when a launcher (mpirun, srun) started the process and the tool was built with MPI;
 * rank 0 of 1 and no functions otherwise. A build without MPI started by a launcher of several
 * processes prints why it cannot train and returns -1. cli_comm_end ends MPI: failed != 0 with
 * several processes aborts the whole job (the others may wait in a sum) with that exit status.
 * cli_launcher_size: the processes a launcher's environment announces (0: none; -1: unknown). */
int cli_comm_start(const char *cmd, mrm_comm *c);
void cli_comm_end(const mrm_comm *c, int failed);
int cli_comm_available(void);
int cli_launcher_size(void);

/* Prints "mrmnet <cmd>: <err->msg>" on stderr and returns 1. */
int cli_report(const char *cmd, const mrm_error *err);

/* A progress callback (mrm_progress_fn) drawing a bar on stderr when stderr is a terminal,
 * and a line every 10% otherwise. `user` is unused. */
void cli_progress(void *user, const char *what, size_t done, size_t total);

/* A log callback (mrm_log_fn) printing warnings and errors on stderr. */
void cli_log(void *user, mrm_log_level level, const char *msg);

/* When meta is a training checkpoint's (a run's last.safetensors), says on stderr that its current
 * weights are used and where the selected weights and thresholds are. */
void cli_note_checkpoint(const char *cmd, const char *path, const mrm_meta *meta);

/* Strict number parsing of option values; print a usage error and return -1 on failure. */
int cli_parse_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);
int cli_parse_double(const char *cmd, const char *opt, const char *s, double *out);
/* A finite number in the range lo..hi, each end open or closed (lo may be -INFINITY, hi INFINITY); the
 * message names the option and the range, e.g. "mrmnet predict: --threshold: '2' is not a number in [0, 1]". */
int cli_parse_double_in(const char *cmd, const char *opt, const char *s, double lo, int lo_open, double hi, int hi_open,
                        double *out);
/* --engine-isa NAME: the engine's kernel set named (mrm_engine_isa_name: portable, avx2, avx512,
 * avx512vnni, neondot); -1 with a usage message naming the sets when NAME is none of them. */
int cli_parse_engine_isa(const char *cmd, const char *opt, const char *s);
/* A non-negative integer of 64 bits (seeds). */
int cli_parse_u64(const char *cmd, const char *opt, const char *s, unsigned long long *out);

/* One option of a subcommand, for cli_parse_options. A table of them ends with {NULL}. */
typedef enum {
    CLI_FLAG, /* no value; sets *(int *)dst to 1 */
    CLI_STR,  /* a value; *(const char **)dst = the value */
    CLI_INT   /* an integer value in [lo, hi] (cli_parse_int); *(long *)dst = it */
} cli_opt_kind;

typedef struct {
    const char *name; /* "--model" */
    cli_opt_kind kind;
    void *dst;
    long lo, hi;
} cli_opt;

/* Parses argv[1..argc-1] against opts. --help or -h prints usage(stdout) and returns 0; an unknown
 * option or one without its value prints "mrmnet <cmd>: unknown option or missing value: '<arg>'"
 * and usage(stderr) and returns 2, as does a bad integer (cli_parse_int's message, no usage).
 * Returns -1 when every argument was an option of the table: the command goes on. */
int cli_parse_options(const char *cmd, int argc, char **argv, const cli_opt *opts, void (*usage)(FILE *));

/* Prints "mrmnet <cmd>: <what> are required" and usage(stderr); returns 2. */
int cli_missing(const char *cmd, const char *what, void (*usage)(FILE *));

/* The model's variant options, one per key of the config table (mrm_model_config_key):
 * --width, --attention, --fusion, --branches, --combine, --lambda-feat, --lambda-logit,
 * --temperature; --variant K=V,... (several at once) and the older --hi-attention (attention
 * both). cli_model_extract takes them out of argv (argc shrinks) in the order given; 2 on a
 * missing value (message printed), else 0. cli_model_apply sets them on cfg (2 and a message
 * naming the option when a value is bad). */
#define CLI_MODEL_MAX_OPTS 64
typedef struct cli_model_opts {
    int n;
    const char *key[CLI_MODEL_MAX_OPTS]; /* a config key, or "variant" */
    const char *value[CLI_MODEL_MAX_OPTS];
} cli_model_opts;
int cli_model_extract(const char *cmd, int *argc, char **argv, cli_model_opts *mo);
int cli_model_apply(const char *cmd, const cli_model_opts *mo, mrm_model_config *cfg);
/* The usage lines of the variant options (from the key table: allowed values, defaults). */
void cli_model_usage(FILE *f);

#endif
