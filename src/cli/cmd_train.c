/* mrmnet train: train MRM-Net on a prepared dataset. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/fileutil.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: mrmnet train --data PREP/ --out RUN/ [options]\n"
            "       mrmnet train --resume RUN/ [--epochs N] [--steps K] [--threads T]\n\n"
            "Trains on PREP/X_train.npy, selects the epoch by the validation macro-AUC (never the test\n"
            "split) and writes RUN/last.safetensors, RUN/best.safetensors (with per-class thresholds),\n"
            "RUN/log.jsonl and RUN/curves.svg. RUN/ must be new or empty (see --resume, --force).\n\n"
            "options:\n"
            "  --epochs N         epochs (40)\n"
            "  --batch B          batch size (96); the last partial batch is kept\n"
            "  --optimizer NAME   adam (default) or sgd\n"
            "  --lr X             learning rate (1e-3)\n"
            "  --beta1 X --beta2 X --eps X   Adam (0.9, 0.999, 1e-8)\n"
            "  --weight-decay X   L2 added to the gradient (0)\n"
            "  --momentum X       SGD momentum (0.9)\n"
            "  --seed S           initialisation, shuffling and dropout (1)\n"
            "  --threads T        OpenMP threads (default: OpenMP's)\n"
            "  --init W           start from these weights instead of a fresh initialisation (a model\n"
            "                     file or a run's last.safetensors)\n"
            "  --steps K          stop after K optimizer steps in all (0: no limit)\n"
            "  --no-shuffle       keep the records' order every epoch\n"
            "  --dropout P        dropout of the multi-scale path (0.2)\n"
            "  --eval-batch B     batch of the validation forward (same as --batch)\n"
            "  --resume RUN/      continue a stopped run exactly where its checkpoint left it\n"
            "  --force            start over in a non-empty RUN/ (its run's files are removed first)\n"
            "  --no-val           train without the validation split (best = last epoch, no thresholds)\n"
            "beyond the paper's protocol (the defaults keep it; every run's record holds these):\n"
            "  --pos-weight W     BCE weight of each class's positives: auto (negatives/positives of the\n"
            "                     training split), one number for every class, or one per class (W1,W2,...)\n"
            "  --lr-schedule S    constant (default), step:EPOCHS:GAMMA, cosine[:MIN_LR],\n"
            "                     plateau:PATIENCE:FACTOR[:MIN_LR] (on the validation macro-AUC)\n"
            "  --early-stop N     stop after N epochs without a better validation macro-AUC (0: never)\n"
            "  --quiet            no progress line\n"
            "data-parallel (mpirun -np P mrmnet train ...; see docs/distributed.md):\n"
            "  --no-sync-bn       BatchNorm statistics of each process's share of the batch (default: of\n"
            "                     the global batch, the same step as one process)\n");
    cli_model_usage(f);
    fprintf(f, "With --init, the variant options left out are the file's; one that changes the weights'\n"
               "shapes and differs from the file is refused.\n");
}

typedef struct progress_state {
    int tty, quiet;
    long long last_printed;
} progress_state;

static void fmt_time(char *out, size_t n, double s) {
    if (!(s >= 0) || !isfinite(s)) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(out, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else
        snprintf(out, n, "%ldm%02lds", t / 60, t % 60);
}

static void on_step(void *user, const mrm_train_progress *p) {
    progress_state *ps = user;
    if (ps->quiet) return;
    long long every = p->steps_per_epoch / 10 ? p->steps_per_epoch / 10 : 1;
    if (!ps->tty && p->step_in_epoch % every && p->step_in_epoch != p->steps_per_epoch && p->step > 1) return;
    char left[32];
    fmt_time(left, sizeof left, p->seconds_left);
    fprintf(stderr, "%sepoch %d/%d step %lld/%lld loss %.4f (bce %.4f + %.4f, kl feat %.4f, kl logits %.4f) %.1f rec/s, %s left%s",
            ps->tty ? "\r\033[K" : "", p->epoch, p->epochs, p->step_in_epoch, p->steps_per_epoch, p->loss.total, p->loss.bce1,
            p->loss.bce2, p->loss.kl_feat, p->loss.kl_logits, p->records_per_s, left, ps->tty ? "" : "\n");
    fflush(stderr);
}

static void on_epoch(void *user, const mrm_train_progress *p) {
    progress_state *ps = user;
    if (ps->quiet) return;
    char left[32];
    fmt_time(left, sizeof left, p->seconds_left);
    fprintf(stderr, "%sepoch %d/%d done: loss %.4f, validation macro-AUC %.4f (head 1 %.4f, head 2 %.4f)%s, %s left\n",
            ps->tty ? "\r\033[K" : "", p->epoch, p->epochs, p->loss.total, p->val_macro_auc, p->val_auc1, p->val_auc2,
            p->is_best ? " best" : "", left);
    fflush(stderr);
}

int cmd_train(int argc, char **argv) {
    const char *cmd = "train";
    mrm_train_options o;
    mrm_train_options_default(&o);
    progress_state ps = {.tty = isatty(fileno(stderr))};
    int epochs_given = 0, steps_given = 0;
    const char *fixed_given = NULL; /* an option a resumed run takes from its checkpoint */
    const char *resume_dir = NULL;
    float pw[1024];
    cli_model_opts mo;
    if (cli_model_extract(cmd, &argc, argv, &mo)) return 2;
    if (mo.n) fixed_given = "a model option";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long l;
        double d;
#define NEED_VALUE                                                           \
    if (!v) {                                                                \
        fprintf(stderr, "mrmnet %s: %s needs a value\n", cmd, a);            \
        return 2;                                                            \
    }                                                                        \
    i++;
        if (strcmp(a, "--data") && strcmp(a, "--out") && strcmp(a, "--resume") && strcmp(a, "--epochs") &&
            strcmp(a, "--steps") && strcmp(a, "--threads") && strcmp(a, "--quiet") && strcmp(a, "--force") &&
            strcmp(a, "--sync-bn"))
            fixed_given = a;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--data")) {
            NEED_VALUE o.data_dir = v;
        } else if (!strcmp(a, "--out")) {
            NEED_VALUE o.out_dir = v;
        } else if (!strcmp(a, "--resume")) {
            NEED_VALUE resume_dir = v;
        } else if (!strcmp(a, "--epochs")) {
            NEED_VALUE if (cli_parse_int(cmd, a, v, 1, 1000000, &l)) return 2;
            o.epochs = (int)l, epochs_given = 1;
        } else if (!strcmp(a, "--batch")) {
            NEED_VALUE if (cli_parse_int(cmd, a, v, 1, 65536, &l)) return 2;
            o.batch = (int)l;
        } else if (!strcmp(a, "--eval-batch")) {
            NEED_VALUE if (cli_parse_int(cmd, a, v, 1, 65536, &l)) return 2;
            o.eval_batch = (int)l;
        } else if (!strcmp(a, "--steps")) {
            NEED_VALUE if (cli_parse_int(cmd, a, v, 0, 1L << 40, &l)) return 2;
            o.max_steps = l, steps_given = 1;
        } else if (!strcmp(a, "--threads")) {
            NEED_VALUE if (cli_parse_int(cmd, a, v, 1, 4096, &l)) return 2;
            o.threads = (int)l;
        } else if (!strcmp(a, "--seed")) {
            NEED_VALUE unsigned long long s;
            if (cli_parse_u64(cmd, a, v, &s)) return 2;
            o.seed = s;
        } else if (!strcmp(a, "--optimizer")) {
            NEED_VALUE if (!strcmp(v, "adam")) o.optimizer = MRM_OPT_ADAM;
            else if (!strcmp(v, "sgd")) o.optimizer = MRM_OPT_SGD;
            else {
                fprintf(stderr, "mrmnet %s: --optimizer: '%s' is not adam or sgd\n", cmd, v);
                return 2;
            }
        } else if (!strcmp(a, "--lr") || !strcmp(a, "--beta1") || !strcmp(a, "--beta2") || !strcmp(a, "--eps") ||
                   !strcmp(a, "--weight-decay") || !strcmp(a, "--momentum") || !strcmp(a, "--dropout")) {
            NEED_VALUE
            /* the range of each: lower end, open?, upper end, open? */
            int pos = !strcmp(a, "--lr") || !strcmp(a, "--eps"), unit = !strcmp(a, "--beta1") || !strcmp(a, "--beta2") || !strcmp(a, "--dropout");
            if (cli_parse_double_in(cmd, a, v, 0, pos, unit ? 1 : INFINITY, 1, &d)) return 2;
            if (!strcmp(a, "--lr")) o.lr = d;
            else if (!strcmp(a, "--beta1")) o.beta1 = d;
            else if (!strcmp(a, "--beta2")) o.beta2 = d;
            else if (!strcmp(a, "--eps")) o.eps = d;
            else if (!strcmp(a, "--weight-decay")) o.weight_decay = d;
            else if (!strcmp(a, "--momentum")) o.momentum = d;
            else o.dropout = (float)d;
        } else if (!strcmp(a, "--pos-weight")) {
            NEED_VALUE if (!strcmp(v, "auto")) {
                o.pos_weight_mode = MRM_POS_WEIGHT_AUTO;
            } else {
                int m = 1;
                for (const char *q = v; *q; q++) m += *q == ',';
                if (m > (int)(sizeof pw / sizeof *pw)) {
                    fprintf(stderr, "mrmnet %s: --pos-weight: more than %zu values\n", cmd, sizeof pw / sizeof *pw);
                    return 2;
                }
                const char *q = v;
                for (int k = 0; k < m; k++) {
                    char *end;
                    double w = strtod(q, &end);
                    if (end == q || (*end && *end != ',') || !(w > 0) || !isfinite(w)) {
                        fprintf(stderr, "mrmnet %s: --pos-weight: '%s' is not auto or positive numbers separated by ','\n", cmd, v);
                        return 2;
                    }
                    pw[k] = (float)w;
                    q = *end ? end + 1 : end;
                }
                o.pos_weight_mode = MRM_POS_WEIGHT_GIVEN, o.pos_weight = pw, o.n_pos_weight = m;
            }
        } else if (!strcmp(a, "--lr-schedule")) {
            NEED_VALUE mrm_error e = {0};
            if (mrm_lr_schedule_parse(v, &o.lr_schedule, &e)) {
                fprintf(stderr, "mrmnet %s: --lr-schedule: %s\n", cmd, e.msg);
                return 2;
            }
        } else if (!strcmp(a, "--early-stop")) {
            NEED_VALUE if (cli_parse_int(cmd, a, v, 0, 1000000, &l)) return 2;
            o.early_stop = (int)l;
        } else if (!strcmp(a, "--init")) {
            NEED_VALUE o.init_path = v;
        } else if (!strcmp(a, "--no-shuffle")) {
            o.shuffle = 0;
        } else if (!strcmp(a, "--force")) {
            o.overwrite = 1;
        } else if (!strcmp(a, "--no-val")) {
            o.no_validation = 1;
        } else if (!strcmp(a, "--no-sync-bn")) {
            o.no_sync_bn = 1;
        } else if (!strcmp(a, "--sync-bn")) {
            o.no_sync_bn = 0;
        } else if (!strcmp(a, "--quiet")) {
            ps.quiet = 1;
        } else {
            fprintf(stderr, "mrmnet %s: unknown option '%s'\n", cmd, a);
            usage(stderr);
            return 2;
        }
#undef NEED_VALUE
    }
    if (resume_dir) {
        if (o.out_dir && strcmp(o.out_dir, resume_dir)) {
            fprintf(stderr, "mrmnet %s: --out and --resume name different folders\n", cmd);
            return 2;
        }
        o.out_dir = resume_dir;
        o.resume = 1;
        if (fixed_given)
            fprintf(stderr, "mrmnet %s: warning: %s is ignored with --resume (the run keeps its own options)\n", cmd, fixed_given);
        if (!epochs_given) o.epochs = 0;
        if (!steps_given) o.max_steps = -1;
    } else if (!o.data_dir || !o.out_dir) {
        fprintf(stderr, "mrmnet %s: --data and --out are required (or --resume RUN/)\n", cmd);
        usage(stderr);
        return 2;
    }
    mrm_error err = {0};
    if (!o.resume && o.init_path) { /* the variant of the file, with the options given on top */
        mrm_model *im = NULL;
        if (mrm_model_load(&im, NULL, o.init_path, &err)) return cli_report(cmd, &err);
        o.model = *mrm_model_config_of(im);
        mrm_model_free(im);
    }
    if (!o.resume && cli_model_apply(cmd, &mo, &o.model)) return 2;
    o.on_step = on_step;
    o.on_epoch = on_epoch;
    o.log = cli_log;
    o.user = &ps;
    mrm_comm comm;
    if (cli_comm_start(cmd, &comm)) return 2;
    if (comm.size > 1) {
        o.comm = &comm;
        if (comm.rank != 0) ps.quiet = 1; /* rank 0 reports */
    }
    int rc = 0;
    /* the run's folder is rank 0's: another rank's write probe there would race with rank 0's check that it is empty */
    if ((comm.rank == 0 && mrm_check_output_dir(o.out_dir, &err)) || mrm_train(&o, &err) != MRM_OK) {
        if (ps.tty && !ps.quiet) fputc('\n', stderr);
        if (comm.size > 1) {
            char what[64];
            snprintf(what, sizeof what, "%s (rank %d of %d)", cmd, comm.rank, comm.size);
            rc = cli_report(what, &err);
        } else {
            rc = cli_report(cmd, &err);
        }
    } else {
        if (ps.tty && !ps.quiet) fputc('\n', stderr);
        if (comm.rank == 0)
            fprintf(stderr, "mrmnet %s: wrote %s/best.safetensors and %s/last.safetensors\n", cmd, o.out_dir, o.out_dir);
    }
    cli_comm_end(&comm, rc);
    return rc;
}
