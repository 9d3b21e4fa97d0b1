/* The ablation study: every variant trained with every seed, the test split evaluated once per
 * run with the validation-chosen weights, and a summary with paired bootstrap intervals.
 *
 * Runs are ordinary training runs (mrm_train) in out_dir/VARIANT/seedS. After training, the run's
 * best.safetensors (the epoch of the best validation macro-AUC) predicts the test split; the
 * averaged output's probabilities go to test_probs.npy and the numbers to test_eval.json, written
 * last: its presence marks a finished run.
 *
 * Jobs: `jobs` worker threads take runs from one queue; each sets its own OpenMP thread count
 * (a per-thread setting) and passes it to mrm_train, so the caller's setting is not touched.
 *
 * Summary statistics (all on the same test records):
 *  - per run: test macro-AUC and its bootstrap interval (mrm_bootstrap_macro_auc, the study's
 *    resamples and seed);
 *  - per variant: mean, sample standard deviation, min and max over seeds; a 95% interval of the
 *    seed-mean test macro-AUC: at each bootstrap resample of the test records (the same
 *    resamples for every run), the mean over seeds of each run's macro-AUC, then the 2.5/97.5
 *    percentiles;
 *  - against the reference variant ("released" when in the list, else the first): the difference
 *    of the seed means, paired by seed and by test record: at each resample, the mean over seeds
 *    of (variant's macro-AUC - reference's macro-AUC) on that resample; its 2.5/97.5
 *    percentiles. An interval that excludes 0 is a difference beyond the test-set sampling noise
 *    (the variation between training runs enters only through the seeds averaged). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "mrmnet/eval.h"
#include "mrmnet/io.h"
#include "mrmnet/train.h"

#define MAX_JSON_BYTES (64u << 20)

static const mrm_ablate_variant default_variants[] = {
    {"released", ""},
    {"no-attention", "attention=none"},
    {"attention-both", "attention=both"},
    {"attention-high", "attention=high"},
    {"no-fusion", "fusion=off"},
    {"no-mutual", "lambda_feat=0,lambda_logit=0"},
    {"high-only", "branches=high"},
    {"low-only", "branches=low"},
    {"add", "combine=add"},
    {"concat", "combine=concat"},
};

const mrm_ablate_variant *mrm_ablate_default_variants(int *n) {
    *n = (int)(sizeof default_variants / sizeof default_variants[0]);
    return default_variants;
}

void mrm_ablate_options_default(mrm_ablate_options *o) {
    memset(o, 0, sizeof *o);
    o->epochs = 40;
    o->jobs = 1;
    o->resamples = 1000;
    o->bootstrap_seed = 1;
    mrm_train_options_default(&o->train);
}

/* ---- the variant list ------------------------------------------------------------------------- */

void mrm_ablate_variants_free(mrm_ablate_variant *v, int n) {
    if (!v) return;
    for (int i = 0; i < n; i++) free((char *)v[i].name), free((char *)v[i].config);
    free(v);
}

static int is_config_key(const char *k, size_t len) {
    mrm_model_config cfg;
    mrm_model_config_default(&cfg);
    char buf[64];
    for (int i = 0;; i++) {
        const char *key = mrm_model_config_key(i, &cfg, buf, sizeof buf, NULL);
        if (!key) return 0;
        if (strlen(key) != len) continue;
        size_t j = 0;
        for (; j < len; j++)
            if (key[j] != (k[j] == '-' ? '_' : k[j])) break;
        if (j == len) return 1;
    }
}

static int valid_name(const char *s) {
    if (!*s || !strcmp(s, ".") || !strcmp(s, "..") || strlen(s) > 64) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' ||
              *s == '-'))
            return 0;
    return 1;
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n), d[n] = 0;
    return d;
}

mrm_status mrm_ablate_parse_variants(const char *list, mrm_ablate_variant **out, int *n, mrm_error *err) {
    *out = NULL, *n = 0;
    if (!list) return mrm_fail(err, MRM_ERR_INVALID, "variants: no list");
    int nd;
    const mrm_ablate_variant *defs = mrm_ablate_default_variants(&nd);
    size_t cap = 1;
    for (const char *p = list; *p; p++) cap += *p == ',';
    mrm_ablate_variant *v = calloc(cap, sizeof *v);
    if (!v) return mrm_fail(err, MRM_ERR_NOMEM, "variants: out of memory");
    int cnt = 0, custom_open = 0;
    mrm_status st = MRM_OK;
    const char *p = list;
    while (!st) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        int n_eq = 0;
        for (size_t i = 0; i < len; i++) n_eq += p[i] == '=';
        if (len == 0) {
            st = mrm_fail(err, MRM_ERR_INVALID, "variants: an empty item in '%s'", list);
        } else if (n_eq == 0) { /* a default variant's name */
            int k = 0;
            while (k < nd && (strlen(defs[k].name) != len || strncmp(defs[k].name, p, len))) k++;
            if (k == nd) {
                char names[512] = "";
                for (int i = 0; i < nd; i++)
                    snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", defs[i].name);
                st = mrm_fail(err, MRM_ERR_INVALID, "variants: unknown variant '%.*s' (known: %s; or NAME=KEY=VALUE,...)", (int)len, p,
                              names);
            } else {
                v[cnt].name = dup_n(defs[k].name, strlen(defs[k].name));
                v[cnt].config = dup_n(defs[k].config, strlen(defs[k].config));
                if (!v[cnt].name || !v[cnt].config) st = mrm_fail(err, MRM_ERR_NOMEM, "variants: out of memory");
                cnt++;
                custom_open = 0;
            }
        } else if (n_eq == 1 && custom_open && is_config_key(p, (size_t)(eq - p))) { /* KEY=VALUE of the last one */
            const char *old = v[cnt - 1].config;
            size_t ol = strlen(old);
            char *nc = malloc(ol + len + 2);
            if (!nc) {
                st = mrm_fail(err, MRM_ERR_NOMEM, "variants: out of memory");
            } else {
                memcpy(nc, old, ol);
                nc[ol] = ',';
                memcpy(nc + ol + 1, p, len);
                nc[ol + 1 + len] = 0;
                free((char *)old);
                v[cnt - 1].config = nc;
            }
        } else if (n_eq >= 2 || (n_eq == 1 && len - (size_t)(eq - p) - 1 == strlen("released") && !strncmp(eq + 1, "released", 8))) {
            v[cnt].name = dup_n(p, (size_t)(eq - p));
            v[cnt].config = dup_n(eq + 1, len - (size_t)(eq - p) - 1);
            if (!v[cnt].name || !v[cnt].config) st = mrm_fail(err, MRM_ERR_NOMEM, "variants: out of memory");
            cnt++;
            custom_open = 1;
        } else {
            st = mrm_fail(err, MRM_ERR_INVALID,
                          "variants: '%.*s': expected a variant's name, NAME=KEY=VALUE or NAME=released (a KEY=VALUE item "
                          "extends the variant before it)",
                          (int)len, p);
        }
        if (!e) break;
        p = e + 1;
    }
    for (int i = 0; i < cnt && !st; i++) {
        mrm_model_config cfg;
        mrm_model_config_default(&cfg);
        if (!valid_name(v[i].name))
            st = mrm_fail(err, MRM_ERR_INVALID, "variants: '%s' is not a usable name (letters, digits, '.', '_', '-'; at most 64)",
                          v[i].name);
        else if ((st = mrm_model_config_parse(&cfg, v[i].config, err)) || (st = mrm_model_config_check(&cfg, err)))
            mrm_error_prefix(err, "variants: %s", v[i].name);
        for (int j = 0; j < i && !st; j++)
            if (!strcmp(v[i].name, v[j].name)) st = mrm_fail(err, MRM_ERR_INVALID, "variants: '%s' named twice", v[i].name);
    }
    if (st) {
        mrm_ablate_variants_free(v, cnt);
        return st;
    }
    *out = v, *n = cnt;
    return MRM_OK;
}

/* ---- one run ----------------------------------------------------------------------------------- */

typedef struct run_result {
    int variant, seed_index;
    uint64_t seed;
    char dir[2048];
    char describe[512];
    mrm_model_config cfg;  /* normalized, n_classes of the data */
    int done;
    int epochs, best_epoch;
    double val_auc, test_auc, train_seconds;
    mrm_bootstrap boot;
    long long n_params;
    float *probs;          /* (n_test, c) */
} run_result;

typedef struct study {
    const mrm_ablate_options *o;
    mrm_prepared prep;
    mrm_split_data test;
    run_result *runs;
    int n_runs, n_variants, n_seeds;
    const mrm_ablate_variant *variants;
    const uint64_t *seeds;
    pthread_mutex_t lock;
    int next, finished, failed;
    mrm_error first_err;
    mrm_status first_st;
} study;

static void emit(study *s, mrm_ablate_event *e) {
    if (!s->o->on_event) return;
    pthread_mutex_lock(&s->lock);
    e->n_runs = s->n_runs;
    e->runs_finished = s->finished;
    s->o->on_event(s->o->user, e);
    pthread_mutex_unlock(&s->lock);
}

static void logmsg(study *s, mrm_log_level lv, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void logmsg(study *s, mrm_log_level lv, const char *fmt, ...) {
    if (!s->o->log) return;
    char buf[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&s->lock);
    s->o->log(s->o->user, lv, buf);
    pthread_mutex_unlock(&s->lock);
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* 1 when a run's folder holds only what training writes before its first checkpoint (log.jsonl,
 * curves.svg: the study was stopped during the run's first epoch), so that the run may start
 * again in it; 0 when the folder is absent, empty or holds anything else (then training refuses
 * it as usual and nothing is touched); -1 with err when it cannot be read. */
static int partial_first_epoch(const char *dir, mrm_error *err) {
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return 0;
        mrm_fail(err, MRM_ERR_IO, "%s: cannot read the folder: %s", dir, strerror(errno));
        return -1;
    }
    int n = 0, other = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        n++;
        if (strcmp(e->d_name, "log.jsonl") && strcmp(e->d_name, "curves.svg")) other = 1;
    }
    closedir(d);
    return n > 0 && !other;
}

static json_t *jnum(double v) { return isfinite(v) ? json_real(v) : json_null(); }
static double jdbl(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* Seconds of training (the epochs' own, validation included), best epoch and epochs done, from
 * the run's last.safetensors; optionally its model config and seed. */
static mrm_status read_checkpoint(const char *dir, double *seconds, int *best_epoch, int *epochs_done,
                                  mrm_model_config *cfg, uint64_t *seed, mrm_error *err) {
    char path[2048];
    mrm_path_join(path, sizeof path, dir, "last.safetensors");
    mrm_model *m = NULL;
    mrm_optimizer o;
    memset(&o, 0, sizeof o);
    mrm_meta md = {0};
    mrm_status st = mrm_checkpoint_load(path, &m, &o, &md, err);
    if (st) return st;
    const char *state = mrm_meta_get(&md, "train_state"), *conf = mrm_meta_get(&md, "train_config");
    json_error_t je;
    json_t *js = state ? json_loads(state, 0, &je) : NULL, *jc = conf ? json_loads(conf, 0, &je) : NULL;
    if (!js || !jc || !json_is_array(json_object_get(js, "history")) || !json_is_string(json_object_get(jc, "seed"))) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s: not a training checkpoint (train_state/train_config missing or malformed)", path);
    } else {
        json_t *h = json_object_get(js, "history");
        double sum = 0;
        for (size_t i = 0; i < json_array_size(h); i++) sum += jdbl(json_array_get(h, i), "seconds");
        if (seconds) *seconds = sum;
        if (best_epoch) *best_epoch = (int)json_integer_value(json_object_get(js, "best_epoch"));
        if (epochs_done) *epochs_done = (int)json_integer_value(json_object_get(js, "epochs_done"));
        if (cfg) *cfg = *mrm_model_config_of(m);
        if (seed) *seed = strtoull(json_string_value(json_object_get(jc, "seed")), NULL, 10);
    }
    if (js) json_decref(js);
    if (jc) json_decref(jc);
    mrm_meta_free(&md);
    mrm_optimizer_free(&o);
    mrm_model_free(m);
    return st;
}

/* Reads a finished run's test_eval.json and test_probs.npy; checks they belong to this run. */
static mrm_status read_finished(study *s, run_result *r, const char *json_path, mrm_error *err) {
    char *text = NULL;
    size_t len;
    mrm_status st = mrm_read_file(json_path, MAX_JSON_BYTES, &text, &len, err);
    if (st) return st;
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    free(text);
    if (!j || !json_is_object(j)) {
        if (j) json_decref(j);
        return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: not a JSON object (%s)", json_path, je.line, je.text);
    }
    const char *desc = json_string_value(json_object_get(j, "config"));
    const char *seed = json_string_value(json_object_get(j, "seed"));
    char seedbuf[32];
    snprintf(seedbuf, sizeof seedbuf, "%llu", (unsigned long long)r->seed);
    json_t *ep = json_object_get(j, "epochs"), *nt = json_object_get(j, "n_test");
    if (!desc || !seed || !json_is_integer(ep) || !json_is_integer(nt) || !json_is_integer(json_object_get(j, "best_epoch")) ||
        !json_is_integer(json_object_get(j, "n_params"))) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s: config, seed, epochs, n_test, best_epoch or n_params missing", json_path);
    } else if (strcmp(desc, r->describe)) {
        st = mrm_fail(err, MRM_ERR_INVALID, "%s: a run of another config ('%s'; this study asks for '%s'): move it or use another --out",
                      json_path, desc, r->describe);
    } else if (strcmp(seed, seedbuf)) {
        st = mrm_fail(err, MRM_ERR_INVALID, "%s: a run of seed %s, not %s", json_path, seed, seedbuf);
    } else if (json_integer_value(ep) != s->o->epochs) {
        st = mrm_fail(err, MRM_ERR_INVALID, "%s: a run of %lld epochs, this study asks for %d: use another --out", json_path,
                      (long long)json_integer_value(ep), s->o->epochs);
    } else if (json_integer_value(nt) != s->test.n) {
        st = mrm_fail(err, MRM_ERR_INVALID, "%s: evaluated on %lld test records, the data has %lld", json_path,
                      (long long)json_integer_value(nt), s->test.n);
    }
    if (!st) {
        r->epochs = (int)json_integer_value(ep);
        r->best_epoch = (int)json_integer_value(json_object_get(j, "best_epoch"));
        r->n_params = json_integer_value(json_object_get(j, "n_params"));
        r->val_auc = jdbl(j, "val_macro_auc");
        r->test_auc = jdbl(j, "test_macro_auc");
        r->train_seconds = jdbl(j, "train_seconds");
        json_t *b = json_object_get(j, "test_macro_auc_bootstrap");
        r->boot.point = r->test_auc;
        r->boot.mean = jdbl(b, "mean");
        r->boot.lo95 = jdbl(b, "p2.5"), r->boot.hi95 = jdbl(b, "p97.5");
        r->boot.lo90 = jdbl(b, "p5"), r->boot.hi90 = jdbl(b, "p95");
        r->boot.n_resamples = (int)json_integer_value(json_object_get(b, "resamples"));
        r->boot.n_redrawn = (int)json_integer_value(json_object_get(b, "redrawn"));
    }
    json_decref(j);
    if (st) return st;
    char path[2048];
    mrm_path_join(path, sizeof path, r->dir, "test_probs.npy");
    float *p = NULL;
    int nd = 0;
    long long shape[4] = {0};
    if ((st = mrm_npy_read_f32(path, &p, &nd, shape, err))) return st;
    if (nd != 2 || shape[0] != s->test.n || shape[1] != s->prep.n_classes) {
        free(p);
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: shape (%lld, %lld), expected (%lld, %d)", path, shape[0], nd > 1 ? shape[1] : 0,
                        s->test.n, s->prep.n_classes);
    }
    r->probs = p;
    return MRM_OK;
}

typedef struct epoch_ctx {
    study *s;
    run_result *r;
    int index;
} epoch_ctx;

static void on_epoch(void *user, const mrm_train_progress *p) {
    epoch_ctx *c = user;
    mrm_ablate_event e = {.kind = MRM_ABLATE_EPOCH, .variant = c->s->variants[c->r->variant].name, .seed = c->r->seed,
                          .run = c->index, .epoch = p, .test_macro_auc = NAN, .train_seconds = NAN};
    emit(c->s, &e);
}

static void on_train_log(void *user, mrm_log_level lv, const char *msg) {
    epoch_ctx *c = user;
    if (lv >= MRM_LOG_WARN) logmsg(c->s, lv, "%s/seed%llu: %s", c->s->variants[c->r->variant].name, (unsigned long long)c->r->seed, msg);
}

/* Test evaluation of a trained run: best.safetensors on the test split, written out. */
static mrm_status evaluate(study *s, run_result *r, mrm_error *err) {
    const mrm_ablate_options *o = s->o;
    const int c = s->prep.n_classes;
    char path[2048];
    mrm_path_join(path, sizeof path, r->dir, "best.safetensors");
    mrm_model *m = NULL;
    mrm_meta md = {0};
    mrm_status st = mrm_model_load(&m, &md, path, err);
    if (st) return st;
    const char *d = mrm_model_config_diff(mrm_model_config_of(m), &r->cfg, 0);
    if (d) st = mrm_fail(err, MRM_ERR_INVALID, "%s: its %s differs from the variant's", path, d);
    r->n_params = (long long)mrm_model_num_params(m);
    const char *va = mrm_meta_get(&md, "val_macro_auc");
    char *vend = NULL;
    r->val_auc = va ? strtod(va, &vend) : NAN;
    if (va && (vend == va || *vend)) r->val_auc = NAN; /* "null": no validation metric */
    if (!st) {
        r->probs = malloc(sizeof(float) * (size_t)s->test.n * (size_t)c);
        if (!r->probs) st = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory for the test probabilities", r->dir);
    }
    int batch = o->train.eval_batch > 0 ? o->train.eval_batch : o->train.batch > 0 ? o->train.batch : 64;
    if (!st) st = mrm_predict_probs(m, s->test.X, s->test.n, batch, NULL, NULL, r->probs, NULL, NULL, err);
    mrm_meta_free(&md);
    mrm_model_free(m);
    if (!st) st = mrm_bootstrap_macro_auc(s->test.y, r->probs, (int)s->test.n, c, o->resamples, o->bootstrap_seed, &r->boot, err);
    if (st) return st;
    r->test_auc = r->boot.point;
    if ((st = read_checkpoint(r->dir, &r->train_seconds, &r->best_epoch, NULL, NULL, NULL, err))) return st;
    long long shape[2] = {s->test.n, c};
    mrm_path_join(path, sizeof path, r->dir, "test_probs.npy");
    if ((st = mrm_npy_write_f32(path, r->probs, 2, shape, err))) return st;
    json_t *j = json_object();
    char seedbuf[32];
    snprintf(seedbuf, sizeof seedbuf, "%llu", (unsigned long long)r->seed);
    json_object_set_new(j, "variant", json_string(s->variants[r->variant].name));
    json_object_set_new(j, "variant_config", json_string(s->variants[r->variant].config));
    json_object_set_new(j, "config", json_string(r->describe));
    json_object_set_new(j, "seed", json_string(seedbuf));
    json_object_set_new(j, "epochs", json_integer(o->epochs));
    json_object_set_new(j, "best_epoch", json_integer(r->best_epoch));
    json_object_set_new(j, "val_macro_auc", jnum(r->val_auc));
    json_object_set_new(j, "n_test", json_integer(s->test.n));
    json_object_set_new(j, "test_macro_auc", jnum(r->test_auc));
    json_t *b = json_object();
    json_object_set_new(b, "resamples", json_integer(r->boot.n_resamples));
    json_object_set_new(b, "seed", json_integer((json_int_t)o->bootstrap_seed));
    json_object_set_new(b, "redrawn", json_integer(r->boot.n_redrawn));
    json_object_set_new(b, "mean", jnum(r->boot.mean));
    json_object_set_new(b, "p2.5", jnum(r->boot.lo95));
    json_object_set_new(b, "p97.5", jnum(r->boot.hi95));
    json_object_set_new(b, "p5", jnum(r->boot.lo90));
    json_object_set_new(b, "p95", jnum(r->boot.hi90));
    json_object_set_new(j, "test_macro_auc_bootstrap", b);
    json_object_set_new(j, "n_params", json_integer(r->n_params));
    json_object_set_new(j, "train_seconds", jnum(r->train_seconds));
    json_object_set_new(j, "predictions", json_string("test_probs.npy"));
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    json_decref(j);
    mrm_path_join(path, sizeof path, r->dir, "test_eval.json");
    st = text ? mrm_write_file_atomic(path, text, strlen(text), err) : mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
    free(text);
    return st;
}

static mrm_status do_run(study *s, int index, mrm_error *err) {
    const mrm_ablate_options *o = s->o;
    run_result *r = &s->runs[index];
    const char *vname = s->variants[r->variant].name;
    char path[2048];
    mrm_path_join(path, sizeof path, r->dir, "test_eval.json");
    mrm_status st;
    if (file_exists(path)) {
        if ((st = read_finished(s, r, path, err))) return st;
        pthread_mutex_lock(&s->lock);
        r->done = 1;
        s->finished++;
        pthread_mutex_unlock(&s->lock);
        mrm_ablate_event e = {.kind = MRM_ABLATE_SKIP, .variant = vname, .seed = r->seed, .run = index,
                              .test_macro_auc = r->test_auc, .train_seconds = r->train_seconds};
        emit(s, &e);
        return MRM_OK;
    }
    mrm_train_options t = o->train;
    t.data_dir = o->data_dir;
    t.out_dir = r->dir;
    t.epochs = o->epochs;
    t.seed = r->seed;
    t.model = r->cfg;
    t.threads = o->threads;
    t.init_path = NULL;
    t.max_steps = 0; /* the study never stops a run by steps (a resumed run's own limit dropped too) */
    t.on_step = NULL;
    epoch_ctx ctx = {s, r, index};
    t.on_epoch = on_epoch;
    t.log = on_train_log;
    t.user = &ctx;
    mrm_path_join(path, sizeof path, r->dir, "last.safetensors");
    t.resume = file_exists(path);
    int restart = 0;
    if (!t.resume) {
        int k = partial_first_epoch(r->dir, err);
        if (k < 0) return err ? err->code : MRM_ERR_IO;
        restart = k;
        t.overwrite = restart; /* only the log (and chart) of an epoch that never finished */
    }
    if (t.resume) { /* the checkpoint must be this run's */
        mrm_model_config cc;
        uint64_t cseed = 0;
        int done = 0;
        if ((st = read_checkpoint(r->dir, NULL, NULL, &done, &cc, &cseed, err))) return st;
        const char *d = mrm_model_config_diff(&cc, &r->cfg, 0);
        if (d) return mrm_fail(err, MRM_ERR_INVALID, "%s: a run of another variant (its %s differs from %s's): move it or use another --out", path, d, vname);
        if (cseed != r->seed) return mrm_fail(err, MRM_ERR_INVALID, "%s: a run of seed %llu, not %llu", path, (unsigned long long)cseed, (unsigned long long)r->seed);
        if (done > o->epochs) return mrm_fail(err, MRM_ERR_INVALID, "%s: %d epochs done, this study asks for %d: use another --out", path, done, o->epochs);
    }
    mrm_ablate_event e0 = {.kind = t.resume ? MRM_ABLATE_RESUME : restart ? MRM_ABLATE_RESTART : MRM_ABLATE_START, .variant = vname, .seed = r->seed, .run = index,
                           .test_macro_auc = NAN, .train_seconds = NAN};
    emit(s, &e0);
    if ((st = mrm_train(&t, err))) return st;
    if ((st = evaluate(s, r, err))) return st;
    pthread_mutex_lock(&s->lock);
    r->done = 1;
    s->finished++;
    pthread_mutex_unlock(&s->lock);
    mrm_ablate_event e = {.kind = MRM_ABLATE_DONE, .variant = vname, .seed = r->seed, .run = index,
                          .test_macro_auc = r->test_auc, .train_seconds = r->train_seconds};
    emit(s, &e);
    return MRM_OK;
}

static void *worker(void *arg) {
    study *s = arg;
    if (s->o->threads > 0) omp_set_num_threads(s->o->threads); /* this thread's own setting */
    for (;;) {
        pthread_mutex_lock(&s->lock);
        int i = s->failed || s->next >= s->n_runs ? -1 : s->next++;
        pthread_mutex_unlock(&s->lock);
        if (i < 0) break;
        mrm_error e = {0};
        mrm_status st = do_run(s, i, &e);
        if (st) {
            mrm_error_prefix(&e, "%s", s->runs[i].dir);
            pthread_mutex_lock(&s->lock);
            if (!s->failed) s->failed = 1, s->first_st = st, s->first_err = e;
            pthread_mutex_unlock(&s->lock);
        }
    }
    return NULL;
}

/* ---- the summary ----------------------------------------------------------------------------- */

typedef struct variant_summary {
    int n;                    /* seeds */
    double mean, sd, min, max;
    double lo95, hi95;        /* of the seed mean, bootstrap of the test records */
    double diff, diff_lo95, diff_hi95; /* against the reference; NAN for the reference itself */
    double seconds_mean, seconds_total;
    long long n_params;
    int best_epoch_min, best_epoch_max;
} variant_summary;

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static mrm_status summarise(study *s, int ref, variant_summary *vs, int *n_redrawn, mrm_error *err) {
    const int nv = s->n_variants, ns = s->n_seeds, R = s->o->resamples, c = s->prep.n_classes;
    const float **sets = malloc(sizeof *sets * (size_t)s->n_runs);
    double *vals = malloc(sizeof *vals * (size_t)R * (size_t)s->n_runs), *tmp = malloc(sizeof *tmp * (size_t)R);
    mrm_status st = sets && vals && tmp ? MRM_OK : mrm_fail(err, MRM_ERR_NOMEM, "summary: out of memory");
    for (int i = 0; !st && i < s->n_runs; i++) sets[i] = s->runs[i].probs;
    if (!st)
        st = mrm_bootstrap_macro_auc_sets(s->test.y, sets, s->n_runs, (int)s->test.n, c, R, s->o->bootstrap_seed, vals, n_redrawn, err);
    for (int v = 0; !st && v < nv; v++) {
        variant_summary *q = &vs[v];
        memset(q, 0, sizeof *q);
        q->n = ns;
        q->min = INFINITY, q->max = -INFINITY;
        q->best_epoch_min = 1 << 30, q->best_epoch_max = 0;
        for (int k = 0; k < ns; k++) {
            const run_result *r = &s->runs[v * ns + k];
            q->mean += r->test_auc / ns;
            q->min = fmin(q->min, r->test_auc), q->max = fmax(q->max, r->test_auc);
            q->seconds_total += r->train_seconds;
            q->n_params = r->n_params;
            if (r->best_epoch < q->best_epoch_min) q->best_epoch_min = r->best_epoch;
            if (r->best_epoch > q->best_epoch_max) q->best_epoch_max = r->best_epoch;
        }
        q->seconds_mean = q->seconds_total / ns;
        double ss = 0;
        for (int k = 0; k < ns; k++) ss += pow(s->runs[v * ns + k].test_auc - q->mean, 2);
        q->sd = ns > 1 ? sqrt(ss / (ns - 1)) : NAN;
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1 && v == ref) {
                q->diff = q->diff_lo95 = q->diff_hi95 = NAN;
                break;
            }
            for (int b = 0; b < R; b++) {
                double m = 0;
                for (int k = 0; k < ns; k++) {
                    m += vals[(size_t)b * s->n_runs + v * ns + k];
                    if (pass) m -= vals[(size_t)b * s->n_runs + ref * ns + k];
                }
                tmp[b] = m / ns;
            }
            qsort(tmp, (size_t)R, sizeof *tmp, cmp_dbl);
            double lo = mrm_percentile_sorted(tmp, R, 2.5), hi = mrm_percentile_sorted(tmp, R, 97.5);
            if (pass == 0) {
                q->lo95 = lo, q->hi95 = hi;
            } else {
                double d = 0;
                for (int k = 0; k < ns; k++) d += (s->runs[v * ns + k].test_auc - s->runs[ref * ns + k].test_auc) / ns;
                q->diff = d, q->diff_lo95 = lo, q->diff_hi95 = hi;
            }
        }
    }
    free(sets), free(vals), free(tmp);
    return st;
}

static mrm_status write_json(study *s, int ref, const variant_summary *vs, int n_redrawn, mrm_error *err) {
    const mrm_ablate_options *o = s->o;
    json_t *j = json_object();
    json_object_set_new(j, "data", json_string(o->data_dir));
    json_object_set_new(j, "task", json_string(s->prep.task));
    json_object_set_new(j, "n_test", json_integer(s->test.n));
    json_object_set_new(j, "epochs", json_integer(o->epochs));
    json_object_set_new(j, "jobs", json_integer(o->jobs));
    json_object_set_new(j, "threads", json_integer(o->threads));
    json_t *seeds = json_array();
    for (int k = 0; k < s->n_seeds; k++) {
        char b[32];
        snprintf(b, sizeof b, "%llu", (unsigned long long)s->seeds[k]);
        json_array_append_new(seeds, json_string(b));
    }
    json_object_set_new(j, "seeds", seeds);
    json_t *bo = json_object();
    json_object_set_new(bo, "resamples", json_integer(o->resamples));
    json_object_set_new(bo, "seed", json_integer((json_int_t)o->bootstrap_seed));
    json_object_set_new(bo, "redrawn", json_integer(n_redrawn));
    json_object_set_new(bo, "method", json_string("resamples of the test records, the same for every run; a variant's interval is of the mean "
                                                  "over seeds of the runs' macro-AUC at each resample; a difference is paired by seed and "
                                                  "record: mean over seeds of (variant - reference) at each resample; 2.5/97.5 percentiles"));
    json_object_set_new(j, "bootstrap", bo);
    json_object_set_new(j, "reference", json_string(s->variants[ref].name));
    json_t *va = json_array();
    for (int v = 0; v < s->n_variants; v++) {
        const variant_summary *q = &vs[v];
        json_t *x = json_object();
        json_object_set_new(x, "name", json_string(s->variants[v].name));
        json_object_set_new(x, "variant_config", json_string(s->variants[v].config));
        json_object_set_new(x, "config", json_string(s->runs[v * s->n_seeds].describe));
        json_object_set_new(x, "n_params", json_integer(q->n_params));
        json_object_set_new(x, "seeds", json_integer(q->n));
        json_object_set_new(x, "test_macro_auc_mean", jnum(q->mean));
        json_object_set_new(x, "test_macro_auc_sd", jnum(q->sd));
        json_object_set_new(x, "test_macro_auc_min", jnum(q->min));
        json_object_set_new(x, "test_macro_auc_max", jnum(q->max));
        json_object_set_new(x, "test_macro_auc_mean_p2.5", jnum(q->lo95));
        json_object_set_new(x, "test_macro_auc_mean_p97.5", jnum(q->hi95));
        if (v != ref) {
            json_t *d = json_object();
            json_object_set_new(d, "mean", jnum(q->diff));
            json_object_set_new(d, "p2.5", jnum(q->diff_lo95));
            json_object_set_new(d, "p97.5", jnum(q->diff_hi95));
            json_object_set_new(d, "excludes_zero", json_boolean(q->diff_lo95 > 0 || q->diff_hi95 < 0));
            json_object_set_new(x, "difference_to_reference", d);
        }
        json_object_set_new(x, "train_seconds_mean", jnum(q->seconds_mean));
        json_object_set_new(x, "train_seconds_total", jnum(q->seconds_total));
        json_array_append_new(va, x);
    }
    json_object_set_new(j, "variants", va);
    json_t *ra = json_array();
    for (int i = 0; i < s->n_runs; i++) {
        const run_result *r = &s->runs[i];
        json_t *x = json_object();
        char b[32];
        snprintf(b, sizeof b, "%llu", (unsigned long long)r->seed);
        json_object_set_new(x, "variant", json_string(s->variants[r->variant].name));
        json_object_set_new(x, "config", json_string(r->describe));
        json_object_set_new(x, "seed", json_string(b));
        json_object_set_new(x, "dir", json_string(r->dir));
        json_object_set_new(x, "epochs", json_integer(r->epochs ? r->epochs : o->epochs));
        json_object_set_new(x, "best_epoch", json_integer(r->best_epoch));
        json_object_set_new(x, "val_macro_auc", jnum(r->val_auc));
        json_object_set_new(x, "test_macro_auc", jnum(r->test_auc));
        json_object_set_new(x, "test_macro_auc_p2.5", jnum(r->boot.lo95));
        json_object_set_new(x, "test_macro_auc_p97.5", jnum(r->boot.hi95));
        json_object_set_new(x, "n_params", json_integer(r->n_params));
        json_object_set_new(x, "train_seconds", jnum(r->train_seconds));
        json_array_append_new(ra, x);
    }
    json_object_set_new(j, "runs", ra);
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    json_decref(j);
    char path[2048];
    mrm_path_join(path, sizeof path, o->out_dir, "ablation.json");
    mrm_status st = text ? mrm_write_file_atomic(path, text, strlen(text), err) : mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
    free(text);
    return st;
}

static void fmt_seconds(char *b, size_t n, double s) {
    if (!isfinite(s)) snprintf(b, n, "-");
    else if (s >= 3600) snprintf(b, n, "%.1f h", s / 3600);
    else if (s >= 60) snprintf(b, n, "%.1f min", s / 60);
    else snprintf(b, n, "%.1f s", s);
}

static mrm_status write_md(study *s, int ref, const variant_summary *vs, mrm_error *err) {
    const mrm_ablate_options *o = s->o;
    char path[2048];
    mrm_path_join(path, sizeof path, o->out_dir, "ablation.md");
    mrm_atomic_file a;
    FILE *f = mrm_atomic_open(&a, path, err);
    if (!f) return err ? err->code : MRM_ERR_IO;
    const int ns = s->n_seeds;
    fprintf(f, "# Ablation study: %s\n\n", s->prep.task);
    fprintf(f, "Data: `%s` (%lld test records, %d classes). Each variant trained %d epochs with seed%s", o->data_dir, s->test.n,
            s->prep.n_classes, o->epochs, ns > 1 ? "s" : "");
    for (int k = 0; k < ns; k++) fprintf(f, "%s%llu", k ? ", " : " ", (unsigned long long)s->seeds[k]);
    fprintf(f, "; the epoch of the best validation macro-AUC kept, the test split evaluated once with it (the model's combined "
               "output: the mean of both heads' probabilities, or the single head). Bootstrap: %d resamples of the test records "
               "(seed %llu), the same resamples for every run.\n\n",
            o->resamples, (unsigned long long)o->bootstrap_seed);
    fprintf(f, "| variant | config | parameters | test macro-AUC, mean over seeds | sd | min - max | 95%% CI of the mean | "
               "difference to %s [95%% CI] | best epochs | training time per run |\n",
            s->variants[ref].name);
    fprintf(f, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int v = 0; v < s->n_variants; v++) {
        const variant_summary *q = &vs[v];
        char sd[32], diff[96], secs[32];
        if (isfinite(q->sd)) snprintf(sd, sizeof sd, "%.4f", q->sd);
        else snprintf(sd, sizeof sd, "-");
        if (v == ref) snprintf(diff, sizeof diff, "(reference)");
        else snprintf(diff, sizeof diff, "%+.4f [%+.4f, %+.4f]", q->diff, q->diff_lo95, q->diff_hi95);
        fmt_seconds(secs, sizeof secs, q->seconds_mean);
        fprintf(f, "| %s | %s | %lld | %.4f | %s | %.4f - %.4f | [%.4f, %.4f] | %s | %d - %d | %s |\n", s->variants[v].name,
                *s->variants[v].config ? s->variants[v].config : "released", q->n_params, q->mean, sd, q->min, q->max, q->lo95,
                q->hi95, diff, q->best_epoch_min, q->best_epoch_max, secs);
    }
    fprintf(f, "\nTraining time: the epochs' own seconds (validation included) summed per run, averaged over seeds; runs "
               "trained %d at a time with %d thread%s each%s.\n",
            o->jobs, o->threads, o->threads == 1 ? "" : "s", o->threads ? "" : " (0: OpenMP's default)");
    fprintf(f, "\n## Reading (computed facts only)\n\n");
    fprintf(f, "Differences are the mean over seeds of (variant - %s), paired by seed and by test record; the interval is the "
               "2.5/97.5 percentiles of that mean over the bootstrap resamples of the %lld test records. It covers the "
               "sampling of test records, not the variation between training runs beyond the %d seed%s averaged.\n\n",
            s->variants[ref].name, s->test.n, ns, ns > 1 ? "s" : "");
    int n_ex = 0;
    for (int v = 0; v < s->n_variants; v++) n_ex += v != ref && (vs[v].diff_lo95 > 0 || vs[v].diff_hi95 < 0);
    fprintf(f, "- Intervals that exclude 0 (%d of %d):", n_ex, s->n_variants - 1);
    if (!n_ex) fprintf(f, " none.");
    fprintf(f, "\n");
    for (int v = 0; v < s->n_variants; v++)
        if (v != ref && (vs[v].diff_lo95 > 0 || vs[v].diff_hi95 < 0))
            fprintf(f, "  - %s: %s than %s by %.4f [%.4f, %.4f]\n", s->variants[v].name, vs[v].diff > 0 ? "higher" : "lower",
                    s->variants[ref].name, fabs(vs[v].diff), fabs(vs[v].diff_hi95 < 0 ? vs[v].diff_hi95 : vs[v].diff_lo95),
                    fabs(vs[v].diff_hi95 < 0 ? vs[v].diff_lo95 : vs[v].diff_hi95));
    fprintf(f, "- Intervals that include 0 (not told apart from %s on these records):", s->variants[ref].name);
    int first = 1;
    for (int v = 0; v < s->n_variants; v++)
        if (v != ref && !(vs[v].diff_lo95 > 0 || vs[v].diff_hi95 < 0)) {
            fprintf(f, "%s %s (%+.4f)", first ? "" : ",", s->variants[v].name, vs[v].diff);
            first = 0;
        }
    fprintf(f, "%s\n", first ? " none." : ".");
    if (ns > 1) {
        double sdmax = 0;
        for (int v = 0; v < s->n_variants; v++)
            if (isfinite(vs[v].sd) && vs[v].sd > sdmax) sdmax = vs[v].sd;
        fprintf(f, "- Spread between seeds: the largest standard deviation of a variant's test macro-AUC is %.4f (%s %.4f). "
                   "Mean differences smaller than the larger of the two variants' standard deviations:",
                sdmax, s->variants[ref].name, vs[ref].sd);
        first = 1;
        for (int v = 0; v < s->n_variants; v++)
            if (v != ref && fabs(vs[v].diff) < fmax(vs[v].sd, vs[ref].sd)) {
                fprintf(f, "%s %s", first ? "" : ",", s->variants[v].name);
                first = 0;
            }
        fprintf(f, "%s\n", first ? " none." : ".");
    }
    fprintf(f, "\nPer run (test macro-AUC with its own 95%% bootstrap interval):\n\n| variant | seed | best epoch | validation "
               "macro-AUC | test macro-AUC [95%% CI] | training time |\n|---|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < s->n_runs; i++) {
        const run_result *r = &s->runs[i];
        char secs[32];
        fmt_seconds(secs, sizeof secs, r->train_seconds);
        fprintf(f, "| %s | %llu | %d | %.4f | %.4f [%.4f, %.4f] | %s |\n", s->variants[r->variant].name, (unsigned long long)r->seed,
                r->best_epoch, r->val_auc, r->test_auc, r->boot.lo95, r->boot.hi95, secs);
    }
    return mrm_atomic_commit(&a, err);
}

/* The chart: one row a variant; each seed's test macro-AUC (small dots), the mean (a bar) and its
 * 95% bootstrap interval (a line). */
static void xml_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else fputc(*s, f);
    }
}

static mrm_status write_svg(study *s, const variant_summary *vs, mrm_error *err) {
    const int nv = s->n_variants, ns = s->n_seeds;
    double lo = INFINITY, hi = -INFINITY;
    for (int v = 0; v < nv; v++) {
        lo = fmin(lo, fmin(vs[v].lo95, vs[v].min));
        hi = fmax(hi, fmax(vs[v].hi95, vs[v].max));
    }
    if (!isfinite(lo) || !isfinite(hi)) lo = 0, hi = 1;
    double pad = (hi - lo) * 0.08 + 1e-3;
    lo -= pad, hi += pad;
    const int left = 150, width = 520, top = 40, row = 26, H = top + row * nv + 50, W = left + width + 30;
    char path[2048];
    mrm_path_join(path, sizeof path, s->o->out_dir, "ablation.svg");
    mrm_atomic_file a;
    FILE *f = mrm_atomic_open(&a, path, err);
    if (!f) return err ? err->code : MRM_ERR_IO;
#define X(v) (left + ((v) - lo) / (hi - lo) * width)
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"10\" y=\"20\" font-size=\"14\">");
    xml_text(f, s->prep.task);
    fprintf(f, ": test macro-AUC on %lld records; seeds (dots), mean over seeds (bar), its 95%% bootstrap interval (line)</text>\n",
            s->test.n);
    /* axis with ticks */
    int yaxis = top + row * nv + 5;
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", left, yaxis, left + width, yaxis);
    double span = hi - lo, step = pow(10, floor(log10(span / 4)));
    if (span / step > 10) step *= 2;
    if (span / step > 10) step *= 2.5;
    for (double t = ceil(lo / step) * step; t <= hi + 1e-12; t += step) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>\n", X(t), top - 5, X(t), yaxis);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.3f</text>\n", X(t), yaxis + 16, t);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">test macro-AUC</text>\n", left + width / 2, yaxis + 34);
    for (int v = 0; v < nv; v++) {
        const variant_summary *q = &vs[v];
        double y = top + row * v + row / 2.0;
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">", left - 8, y + 4);
        xml_text(f, s->variants[v].name);
        fprintf(f, "</text>\n");
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#1f77b4\" stroke-width=\"2\"/>\n", X(q->lo95), y,
                X(q->hi95), y);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#1f77b4\" stroke-width=\"3\"/>\n", X(q->mean), y - 8,
                X(q->mean), y + 8);
        for (int k = 0; k < ns; k++)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#ff7f0e\" fill-opacity=\"0.8\"/>\n", X(s->runs[v * ns + k].test_auc),
                    y);
    }
    fprintf(f, "</svg>\n");
#undef X
    return mrm_atomic_commit(&a, err);
}

/* ---- the study --------------------------------------------------------------------------------- */

mrm_status mrm_ablate(const mrm_ablate_options *opt, mrm_error *err) {
    study s;
    memset(&s, 0, sizeof s);
    s.o = opt;
    static const uint64_t default_seeds[] = {1, 2, 3};
    s.variants = opt->variants ? opt->variants : mrm_ablate_default_variants(&s.n_variants);
    if (opt->variants) s.n_variants = opt->n_variants;
    s.seeds = opt->seeds ? opt->seeds : default_seeds;
    s.n_seeds = opt->seeds ? opt->n_seeds : 3;
    if (!opt->data_dir || !opt->out_dir) return mrm_fail(err, MRM_ERR_INVALID, "ablate: need a data folder and an output folder");
    if (s.n_variants <= 0 || s.n_seeds <= 0 || opt->epochs <= 0 || opt->jobs <= 0 || opt->threads < 0 || opt->resamples <= 0)
        return mrm_fail(err, MRM_ERR_INVALID, "ablate: need variants, seeds, epochs > 0, jobs > 0, threads >= 0, resamples > 0");
    for (int i = 0; i < s.n_seeds; i++)
        for (int j = 0; j < i; j++)
            if (s.seeds[i] == s.seeds[j]) return mrm_fail(err, MRM_ERR_INVALID, "ablate: seed %llu given twice", (unsigned long long)s.seeds[i]);
    mrm_status st = mrm_prepared_open(&s.prep, opt->data_dir, err);
    if (st) return st;
    if ((st = mrm_prepared_load_split(&s.prep, "test", 1, &s.test, err))) goto out_prep;
    if (s.test.n <= 0 || s.test.n > (1LL << 30)) {
        st = mrm_fail(err, MRM_ERR_INVALID, "%s: the test split has %lld records", opt->data_dir, s.test.n);
        goto out_test;
    }
    /* Every variant checked before any training: name, config, and the model builds it. */
    s.n_runs = s.n_variants * s.n_seeds;
    s.runs = calloc((size_t)s.n_runs, sizeof *s.runs);
    if (!s.runs) {
        st = mrm_fail(err, MRM_ERR_NOMEM, "ablate: out of memory");
        goto out_test;
    }
    int ref = 0;
    for (int v = 0; v < s.n_variants; v++) {
        const mrm_ablate_variant *va = &s.variants[v];
        if (!strcmp(va->name, "released")) ref = v;
        mrm_model_config cfg;
        mrm_model_config_default(&cfg);
        if (!va->name || !valid_name(va->name)) {
            st = mrm_fail(err, MRM_ERR_INVALID, "ablate: variant %d: '%s' is not a usable name", v + 1, va->name ? va->name : "(null)");
            goto out_runs;
        }
        for (int w = 0; w < v; w++)
            if (!strcmp(s.variants[w].name, va->name)) {
                st = mrm_fail(err, MRM_ERR_INVALID, "ablate: variant '%s' named twice", va->name);
                goto out_runs;
            }
        if ((st = mrm_model_config_parse(&cfg, va->config ? va->config : "", err))) {
            mrm_error_prefix(err, "ablate: variant %s", va->name);
            goto out_runs;
        }
        cfg.n_classes = s.prep.n_classes;
        mrm_model *m = NULL;
        if ((st = mrm_model_create(&m, &cfg, err))) {
            mrm_error_prefix(err, "ablate: variant %s (%s)", va->name, va->config);
            goto out_runs;
        }
        cfg = *mrm_model_config_of(m);
        mrm_model_free(m);
        for (int k = 0; k < s.n_seeds; k++) {
            run_result *r = &s.runs[v * s.n_seeds + k];
            r->variant = v, r->seed_index = k, r->seed = s.seeds[k], r->cfg = cfg;
            r->test_auc = r->val_auc = r->train_seconds = NAN;
            mrm_model_config_describe(&cfg, r->describe, sizeof r->describe);
            char sub[128];
            snprintf(sub, sizeof sub, "%s/seed%llu", va->name, (unsigned long long)s.seeds[k]);
            if (mrm_path_join(r->dir, sizeof r->dir, opt->out_dir, sub)) {
                st = mrm_fail(err, MRM_ERR_INVALID, "ablate: %s: the path is too long", opt->out_dir);
                goto out_runs;
            }
        }
    }
    if ((st = mrm_mkdir_p(opt->out_dir, err))) goto out_runs;
    if (pthread_mutex_init(&s.lock, NULL)) {
        st = mrm_fail(err, MRM_ERR_NOMEM, "ablate: cannot create a lock");
        goto out_runs;
    }
    int jobs = opt->jobs < s.n_runs ? opt->jobs : s.n_runs;
    pthread_t *th = calloc((size_t)jobs, sizeof *th);
    int started = 0;
    if (!th) {
        st = mrm_fail(err, MRM_ERR_NOMEM, "ablate: out of memory");
    } else {
        for (; started < jobs; started++)
            if (pthread_create(&th[started], NULL, worker, &s)) break;
        if (!started) st = mrm_fail(err, MRM_ERR_NOMEM, "ablate: cannot start a thread");
        for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
        free(th);
    }
    pthread_mutex_destroy(&s.lock);
    if (!st && s.failed) {
        st = s.first_st;
        if (err) *err = s.first_err;
    }
    if (!st) {
        variant_summary *vs = calloc((size_t)s.n_variants, sizeof *vs);
        int n_redrawn = 0;
        if (!vs) st = mrm_fail(err, MRM_ERR_NOMEM, "ablate: out of memory");
        if (!st) st = summarise(&s, ref, vs, &n_redrawn, err);
        if (!st) st = write_json(&s, ref, vs, n_redrawn, err);
        if (!st) st = write_md(&s, ref, vs, err);
        if (!st) st = write_svg(&s, vs, err);
        free(vs);
    }
out_runs:
    for (int i = 0; s.runs && i < s.n_runs; i++) free(s.runs[i].probs);
    free(s.runs);
out_test:
    mrm_split_data_free(&s.test);
out_prep:
    mrm_prepared_close(&s.prep);
    return st;
}
