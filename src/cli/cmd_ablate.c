/* mrmnet ablate: the ablation study (mrm_ablate) from the command line. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: mrmnet ablate --data PREP/ --out DIR/ [options]\n\n"
            "Trains every variant with every seed (an ordinary training run each, DIR/VARIANT/seedS), keeps\n"
            "the epoch of the best validation macro-AUC, evaluates the test split once with it, and writes\n"
            "DIR/ablation.md, DIR/ablation.json and DIR/ablation.svg: test macro-AUC per variant (mean and\n"
            "spread over seeds, bootstrap intervals, paired differences to the released model), parameters\n"
            "and training time. Rerun the same command to continue a stopped study: finished runs are\n"
            "read back, a stopped run resumes from its checkpoint (one stopped during its first epoch,\n"
            "before any checkpoint, starts again).\n\n"
            "options:\n"
            "  --variants LIST    variants, comma-separated: default names, or NAME=KEY=VALUE[,KEY=VALUE...]\n"
            "                     (a variant of one's own; see mrmnet train --help for the keys), or\n"
            "                     NAME=released (default: every variant of --list-variants)\n"
            "  --list-variants    print the default variants and exit\n"
            "  --seeds LIST       training seeds, comma-separated (1,2,3)\n"
            "  --epochs N         epochs of each run (40)\n"
            "  --jobs J           runs trained at once (1)\n"
            "  --threads T        OpenMP threads of each run (default: the cores / J, at least 1)\n"
            "  --batch B          batch size (96)\n"
            "  --resamples N      bootstrap resamples of the test records (1000)\n"
            "  --bootstrap-seed S (1)\n"
            "  --quiet            no progress lines\n");
}

typedef struct ablate_progress {
    int quiet;
} ablate_progress;

static void on_event(void *user, const mrm_ablate_event *e) {
    const ablate_progress *ps = user;
    if (ps->quiet) return;
    unsigned long long seed = (unsigned long long)e->seed;
    switch (e->kind) {
    case MRM_ABLATE_SKIP:
        fprintf(stderr, "[%d/%d] %s seed %llu: finished before, test macro-AUC %.4f (skipped)\n", e->runs_finished, e->n_runs, e->variant,
                seed, e->test_macro_auc);
        break;
    case MRM_ABLATE_START:
    case MRM_ABLATE_RESUME:
    case MRM_ABLATE_RESTART:
        fprintf(stderr, "[%d/%d] %s seed %llu: %s\n", e->runs_finished, e->n_runs, e->variant, seed,
                e->kind == MRM_ABLATE_START    ? "training"
                : e->kind == MRM_ABLATE_RESUME ? "resuming from its checkpoint"
                                               : "starting again (it was stopped before its first checkpoint)");
        break;
    case MRM_ABLATE_EPOCH:
        fprintf(stderr, "[%d/%d] %s seed %llu: epoch %d/%d, loss %.4f, validation macro-AUC %.4f%s\n", e->runs_finished, e->n_runs,
                e->variant, seed, e->epoch->epoch, e->epoch->epochs, e->epoch->loss.total, e->epoch->val_macro_auc,
                e->epoch->is_best ? " best" : "");
        break;
    case MRM_ABLATE_DONE:
        fprintf(stderr, "[%d/%d] %s seed %llu: done, test macro-AUC %.4f, %.0f s of training\n", e->runs_finished, e->n_runs, e->variant,
                seed, e->test_macro_auc, e->train_seconds);
        break;
    }
    fflush(stderr);
}

/* "1,2,3" into a new array. */
static int parse_seeds(const char *cmd, const char *s, uint64_t **out, int *n) {
    int cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    uint64_t *v = malloc(sizeof *v * (size_t)cap);
    if (!v) return 1;
    int k = 0;
    const char *p = s;
    for (;;) {
        char *end;
        if (*p < '0' || *p > '9') break;
        unsigned long long x = strtoull(p, &end, 10);
        v[k++] = x;
        if (*end == ',') {
            p = end + 1;
            continue;
        }
        if (!*end) {
            *out = v, *n = k;
            return 0;
        }
        break;
    }
    fprintf(stderr, "mrmnet %s: --seeds: '%s' is not a comma-separated list of non-negative integers\n", cmd, s);
    free(v);
    return 2;
}

int cmd_ablate(int argc, char **argv) {
    const char *cmd = "ablate";
    mrm_ablate_options o;
    mrm_ablate_options_default(&o);
    const char *data = NULL, *out = NULL, *variants = NULL, *seeds = NULL, *boot_seed = NULL;
    long epochs = 40, jobs = 1, threads = 0, batch = o.train.batch, resamples = 1000;
    int quiet = 0, list = 0;
    const cli_opt opts[] = {{"--data", CLI_STR, &data, 0, 0},
                            {"--out", CLI_STR, &out, 0, 0},
                            {"--variants", CLI_STR, &variants, 0, 0},
                            {"--seeds", CLI_STR, &seeds, 0, 0},
                            {"--epochs", CLI_INT, &epochs, 1, 1000000},
                            {"--jobs", CLI_INT, &jobs, 1, 4096},
                            {"--threads", CLI_INT, &threads, 1, 4096},
                            {"--batch", CLI_INT, &batch, 1, 65536},
                            {"--resamples", CLI_INT, &resamples, 1, 1000000},
                            {"--bootstrap-seed", CLI_STR, &boot_seed, 0, 0},
                            {"--quiet", CLI_FLAG, &quiet, 0, 0},
                            {"--list-variants", CLI_FLAG, &list, 0, 0},
                            {NULL, CLI_FLAG, NULL, 0, 0}};
    int rc = cli_parse_options(cmd, argc, argv, opts, usage);
    if (rc >= 0) return rc;
    if (list) {
        int n;
        const mrm_ablate_variant *v = mrm_ablate_default_variants(&n);
        for (int i = 0; i < n; i++) printf("%-16s %s\n", v[i].name, *v[i].config ? v[i].config : "(the released model)");
        return 0;
    }
    if (!data || !out) return cli_missing(cmd, "--data and --out", usage);
    mrm_error err = {0};
    mrm_ablate_variant *vl = NULL;
    int nv = 0;
    uint64_t *sl = NULL;
    int nsd = 0;
    if (variants && mrm_ablate_parse_variants(variants, &vl, &nv, &err)) {
        fprintf(stderr, "mrmnet %s: %s\n", cmd, err.msg);
        return 2;
    }
    if (seeds && (rc = parse_seeds(cmd, seeds, &sl, &nsd))) {
        mrm_ablate_variants_free(vl, nv);
        return rc;
    }
    if (boot_seed) {
        char *end;
        o.bootstrap_seed = strtoull(boot_seed, &end, 10);
        if (!*boot_seed || *end || boot_seed[0] == '-') {
            fprintf(stderr, "mrmnet %s: --bootstrap-seed: '%s' is not a non-negative integer\n", cmd, boot_seed);
            mrm_ablate_variants_free(vl, nv);
            free(sl);
            return 2;
        }
    }
    if (!threads) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores > 0 && cores / jobs > 0 ? cores / jobs : 1;
    }
    o.data_dir = data, o.out_dir = out;
    o.variants = vl, o.n_variants = nv;
    o.seeds = sl, o.n_seeds = nsd;
    o.epochs = (int)epochs, o.jobs = (int)jobs, o.threads = (int)threads, o.resamples = (int)resamples;
    o.train.batch = (int)batch;
    ablate_progress ps = {.quiet = quiet};
    o.on_event = on_event;
    o.log = cli_log;
    o.user = &ps;
    rc = 0;
    if (mrm_ablate(&o, &err))
        rc = cli_report(cmd, &err);
    else if (!quiet)
        fprintf(stderr, "mrmnet %s: wrote %s/ablation.md, %s/ablation.json and %s/ablation.svg\n", cmd, out, out, out);
    mrm_ablate_variants_free(vl, nv);
    free(sl);
    return rc;
}
