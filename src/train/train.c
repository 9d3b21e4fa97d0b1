/* The training loop.
 *
 * Every epoch: the training records in a fresh order (a Fisher-Yates shuffle drawn from the
 * shuffling RNG; the last partial batch is kept), one Adam/SGD step a batch on the loss of spec
 * section 5, then the validation split in evaluation mode: macro-AUC of each head and of the
 * mean of both heads' sigmoid outputs (the selection metric). The test split is never read.
 *
 * Files in the run folder:
 *   last.safetensors  weights + optimizer state + metadata "train_config" (the options) and
 *                     "train_state" (JSON: epochs done, steps, position in the epoch, the shuffling
 *                     RNG state at the start of the epoch, the dropout RNG state, best so far,
 *                     history). Written at each epoch end and when max_steps stops the run.
 *   best.safetensors  the weights of the best validation macro-AUC (a plain model file), with
 *                     classes, task, mean, std, leads, sampling_rate, and at the end of the run
 *                     "thresholds": per class, the cut maximising F1 of the averaged
 *                     probabilities on the validation split.
 *   log.jsonl         one JSON object a step ("type": "step") and an epoch ("type": "epoch"),
 *                     a "start" or "resume" line first. A resumed run first removes the lines
 *                     its checkpoint does not cover (steps after it, of a killed run or of a
 *                     resume from an earlier checkpoint), then appends.
 *   curves.svg        training loss and validation macro-AUC per epoch.
 *
 * Resuming restores weights, BN statistics, optimizer moments and step count, both RNG states and
 * the position (the epoch's order is drawn again from the saved RNG state and the steps already
 * done are skipped), so a resumed run ends with the same bytes as an uninterrupted one (same
 * thread count).
 *
 * A fresh run refuses a non-empty folder unless asked to overwrite it (then the files of a run
 * there are removed first). A resume checks that the checkpoint belongs to the run: its
 * architecture equals its own train_config's, best.safetensors' and that of log.jsonl's first
 * line, and its classes are the data's. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/rng.h"
#include "common/svg.h"
#include "mrmnet/eval.h"
#include "mrmnet/train.h"
#include "train/schedule.h"

#define SHUFFLE_SEED_SALT 0x53485546464c45ULL /* "SHUFFLE" */
#define DROPOUT_SEED_SALT 0x44524f504f5554ULL /* "DROPOUT" */

static const char *const lead_names[MRM_INPUT_LEADS] = {"I", "II", "III", "aVR", "aVL", "aVF",
                                                        "V1", "V2", "V3", "V4", "V5", "V6"};

void mrm_train_options_default(mrm_train_options *o) {
    memset(o, 0, sizeof *o);
    o->epochs = 40;
    o->batch = 96;
    o->optimizer = MRM_OPT_ADAM;
    o->lr = 1e-3, o->beta1 = 0.9, o->beta2 = 0.999, o->eps = 1e-8, o->weight_decay = 0, o->momentum = 0.9;
    o->seed = 1;
    o->shuffle = 1;
    o->dropout = 0.2f;
    mrm_model_config_default(&o->model);
}

/* One epoch's record in the history. */
typedef struct epoch_rec {
    int epoch;
    long long step;
    double loss, bce1, bce2, kl_feat, kl_logits;
    double val_auc, val_auc1, val_auc2;
    double seconds;
} epoch_rec;

/* Everything the run carries between epochs and across a resume. */
typedef struct run_state {
    int epochs_done;          /* completed epochs */
    long long step;           /* optimizer steps in all */
    long long step_in_epoch;  /* steps done in the current (incomplete) epoch */
    mrm_rng epoch_rng;        /* shuffling RNG at the start of the current epoch */
    mrm_rng dropout_rng;
    double loss_sums[5];      /* sums of the loss parts over the current epoch's steps so far */
    long long loss_n;
    double best_auc;
    int best_epoch;           /* 0: none yet */
    long long n_train;        /* training records the run was started with */
    double lr_now;            /* the rate of the current epoch */
    double plateau_best;      /* reduce-on-plateau: the best metric so far and the epochs since */
    int plateau_bad;
    int early_stopped;        /* the run stopped early (no better validation macro-AUC) */
    int n_hist;
    epoch_rec *hist;
} run_state;

typedef struct run {
    mrm_train_options o;
    char data_dir[1024], out_dir[1024];
    mrm_prepared prep;
    mrm_split_data train, val;
    int have_val;
    mrm_model *model;
    mrm_optimizer opt;
    run_state rs;
    mrm_meta model_meta;      /* classes, task, mean, std, leads, sampling_rate */
    char *config_json;
    char *ckpt_classes;       /* resume: the checkpoint's "classes" metadata (NULL if absent) */
    float *pos_weight;        /* the BCE class weights in use (n_classes), or NULL */
    FILE *log;                /* rank 0 only */
    /* data-parallel training: this process's rank among size processes (0 of 1 alone) */
    const mrm_comm *comm;
    int rank, size;
    double comm_s;            /* seconds in sums over the processes during the current step */
    /* one step's batch: this process's share of the records, their labels and dropout keys */
    float *xb, *yb;
    uint64_t *keys;
} run;

static void logf_(const run *r, mrm_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void logf_(const run *r, mrm_log_level lvl, const char *fmt, ...) {
    if (!r->o.log || r->rank != 0) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->o.log(r->o.user, lvl, msg);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the processes of a data-parallel run (r->size > 1; nothing is called alone) ------------- */

static int comm_sum_f32(run *r, float *buf, size_t n) {
    double t = now_s();
    int e = r->comm->allreduce_f32(r->comm->ctx, buf, n);
    r->comm_s += now_s() - t;
    return e;
}
static int comm_sum_f64(run *r, double *buf, size_t n) {
    double t = now_s();
    int e = r->comm->allreduce_f64(r->comm->ctx, buf, n);
    r->comm_s += now_s() - t;
    return e;
}
static int comm_bcast(run *r, void *buf, size_t bytes) { return r->comm->broadcast(r->comm->ctx, buf, bytes, 0); }
/* The model's hook of synchronised BatchNorm. */
static int comm_bn_sum(void *ctx, double *buf, size_t n) { return comm_sum_f64(ctx, buf, n); }

/* Every tensor of m (parameters, BN statistics and counts) from rank 0. */
static mrm_status bcast_model(run *r, mrm_model *m, int stats_only, mrm_error *err) {
    for (int i = 0; i < mrm_model_num_tensors(m); i++) {
        const mrm_tensor *t = mrm_model_tensor(m, i);
        if (stats_only && (t->trainable || t->is_int64)) continue;
        if (comm_bcast(r, t->data, (size_t)t->numel * (t->is_int64 ? 8 : 4)))
            return mrm_fail(err, MRM_ERR_IO, "%s could not be sent to the processes", t->name);
    }
    return MRM_OK;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

/* Every process should hold the same weights and optimizer state (same gradients, same step):
 * checked at each epoch's end by a hash; should one differ (a sum that did not give every process
 * the same bytes), rank 0's state is sent to all, with a warning. */
static mrm_status check_replicas(run *r, mrm_error *err) {
    const size_t np = mrm_model_num_params(r->model);
    uint64_t h = fnv1a(0xcbf29ce484222325ULL, mrm_model_params(r->model), np * sizeof(float)), h0 = h;
    h = fnv1a(h, r->opt.m, np * sizeof(float)), h0 = h;
    if (r->opt.v) h = fnv1a(h, r->opt.v, np * sizeof(float)), h0 = h;
    double bad;
    if (comm_bcast(r, &h0, sizeof h0)) return mrm_fail(err, MRM_ERR_IO, "the processes' weights could not be compared");
    bad = h != h0;
    if (comm_sum_f64(r, &bad, 1)) return mrm_fail(err, MRM_ERR_IO, "the processes' weights could not be compared");
    if (bad == 0) return MRM_OK;
    logf_(r, MRM_LOG_WARN, "%g of %d processes hold other weights than rank 0 after epoch %d: rank 0's are sent to all", bad,
          r->size, r->rs.epochs_done);
    mrm_status st = bcast_model(r, r->model, 0, err);
    if (!st && (comm_bcast(r, r->opt.m, np * sizeof(float)) || (r->opt.v && comm_bcast(r, r->opt.v, np * sizeof(float)))))
        st = mrm_fail(err, MRM_ERR_IO, "the optimizer state could not be sent to the processes");
    return st;
}

/* The seed of a record's dropout masks in an epoch: from the run's seed, the epoch and the
 * record's index in the training split alone (not the batch, the process or the thread). */
static uint64_t mix64(uint64_t x) {
    x ^= x >> 30, x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27, x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}
static uint64_t record_key(uint64_t seed, int epoch, int idx) {
    return mix64(mix64(mix64(seed ^ DROPOUT_SEED_SALT) ^ (uint64_t)epoch) ^ (uint64_t)idx);
}

/* A JSON number, or null when not finite. */
static json_t *jnum(double v) { return isfinite(v) ? json_real(v) : json_null(); }
static double jget(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* ---- options as JSON (saved in the checkpoint, read back on resume) --------------------------- */

static char *config_to_json(const mrm_train_options *o, const char *data_dir, const float *pos_weight, int c) {
    json_t *j = json_object();
    json_object_set_new(j, "data", json_string(data_dir));
    json_object_set_new(j, "epochs", json_integer(o->epochs));
    json_object_set_new(j, "batch", json_integer(o->batch));
    json_object_set_new(j, "optimizer", json_string(o->optimizer == MRM_OPT_ADAM ? "adam" : "sgd"));
    json_object_set_new(j, "lr", json_real(o->lr));
    json_object_set_new(j, "beta1", json_real(o->beta1));
    json_object_set_new(j, "beta2", json_real(o->beta2));
    json_object_set_new(j, "eps", json_real(o->eps));
    json_object_set_new(j, "weight_decay", json_real(o->weight_decay));
    json_object_set_new(j, "momentum", json_real(o->momentum));
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    json_object_set_new(j, "seed", json_string(seed));
    json_object_set_new(j, "init", o->init_path ? json_string(o->init_path) : json_null());
    json_object_set_new(j, "max_steps", json_integer(o->max_steps));
    json_object_set_new(j, "shuffle", json_boolean(o->shuffle));
    json_object_set_new(j, "dropout", json_real(o->dropout));
    json_t *mj = json_object();
    for (int i = 0;; i++) {
        char v[64];
        const char *k = mrm_model_config_key(i, &o->model, v, sizeof v, NULL);
        if (!k) break;
        json_object_set_new(mj, k, json_string(v));
    }
    json_object_set_new(j, "model", mj);
    json_object_set_new(j, "eval_batch", json_integer(o->eval_batch));
    /* the options beyond the paper's protocol, written whatever their value */
    static const char *const pwm[3] = {"none", "given", "auto"};
    json_object_set_new(j, "pos_weight_mode", json_string(pwm[o->pos_weight_mode]));
    json_t *pw = json_array();
    for (int k = 0; pos_weight && k < c; k++) json_array_append_new(pw, json_real(pos_weight[k]));
    json_object_set_new(j, "pos_weight", pos_weight ? pw : (json_decref(pw), json_null()));
    char sched[128];
    mrm_lr_schedule_format(&o->lr_schedule, sched, sizeof sched);
    json_object_set_new(j, "lr_schedule", json_string(sched));
    json_object_set_new(j, "early_stop", json_integer(o->early_stop));
    json_object_set_new(j, "threads", json_integer(o->threads));
    json_object_set_new(j, "no_validation", json_boolean(o->no_validation));
    json_object_set_new(j, "processes", json_integer(o->comm && o->comm->size > 1 ? o->comm->size : 1));
    json_object_set_new(j, "sync_bn", json_boolean(!o->no_sync_bn));
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(j);
    return s;
}

/* Fills the options a resumed run keeps from its checkpoint. */
static mrm_status config_from_json(mrm_train_options *o, char *data_dir, size_t dsz, const char *text,
                                   const char *path, mrm_error *err) {
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j || !json_is_object(j)) {
        if (j) json_decref(j);
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: metadata train_config: not a JSON object", path);
    }
    json_t *d = json_object_get(j, "data"), *seed = json_object_get(j, "seed"), *optn = json_object_get(j, "optimizer");
    if (!json_is_string(d) || !json_is_string(seed) || !json_is_string(optn) || !json_is_integer(json_object_get(j, "batch"))) {
        json_decref(j);
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: metadata train_config: missing data, seed, optimizer or batch", path);
    }
    if (!data_dir[0]) snprintf(data_dir, dsz, "%s", json_string_value(d));
    o->batch = (int)json_integer_value(json_object_get(j, "batch"));
    if (o->epochs <= 0) o->epochs = (int)json_integer_value(json_object_get(j, "epochs"));
    if (o->max_steps < 0) o->max_steps = json_integer_value(json_object_get(j, "max_steps"));
    if (o->threads <= 0) o->threads = (int)json_integer_value(json_object_get(j, "threads"));
    o->optimizer = strcmp(json_string_value(optn), "sgd") ? MRM_OPT_ADAM : MRM_OPT_SGD;
    o->seed = strtoull(json_string_value(seed), NULL, 10);
    o->shuffle = json_is_true(json_object_get(j, "shuffle"));
    o->dropout = (float)jget(j, "dropout");
    o->eval_batch = (int)json_integer_value(json_object_get(j, "eval_batch"));
    o->no_validation = json_is_true(json_object_get(j, "no_validation"));
    /* options added later: absent in older runs (the paper's protocol) */
    json_t *sched = json_object_get(j, "lr_schedule"), *pwj = json_object_get(j, "pos_weight");
    if (json_is_string(sched) && mrm_lr_schedule_parse(json_string_value(sched), &o->lr_schedule, err)) {
        json_decref(j);
        mrm_error_prefix(err, "%s: metadata train_config", path);
        return MRM_ERR_FORMAT;
    }
    o->early_stop = (int)json_integer_value(json_object_get(j, "early_stop"));
    if (json_is_boolean(json_object_get(j, "sync_bn"))) o->no_sync_bn = !json_is_true(json_object_get(j, "sync_bn"));
    if (json_is_number(json_object_get(j, "lr"))) o->lr = json_number_value(json_object_get(j, "lr"));
    if (json_is_array(pwj)) {
        size_t m = json_array_size(pwj);
        float *w = malloc((m ? m : 1) * sizeof *w);
        if (!w) {
            json_decref(j);
            return mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
        }
        for (size_t k = 0; k < m; k++) w[k] = (float)json_number_value(json_array_get(pwj, k));
        o->pos_weight = w; /* owned by the run (run_free) */
        o->n_pos_weight = (int)m;
        o->pos_weight_mode = MRM_POS_WEIGHT_GIVEN;
    } else {
        o->pos_weight = NULL, o->n_pos_weight = 0, o->pos_weight_mode = MRM_POS_WEIGHT_NONE;
    }
    json_decref(j);
    if (o->batch <= 0 || !(o->dropout >= 0 && o->dropout < 1))
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: metadata train_config: bad batch or dropout", path);
    return MRM_OK;
}

/* ---- run state as JSON ------------------------------------------------------------------------ */

static json_t *rng_to_json(const mrm_rng *r) {
    json_t *a = json_array();
    for (int i = 0; i < 4; i++) {
        char b[24];
        snprintf(b, sizeof b, "%016llx", (unsigned long long)r->s[i]);
        json_array_append_new(a, json_string(b));
    }
    return a;
}

static int rng_from_json(json_t *a, mrm_rng *r) {
    if (!json_is_array(a) || json_array_size(a) != 4) return -1;
    for (int i = 0; i < 4; i++) {
        json_t *v = json_array_get(a, (size_t)i);
        if (!json_is_string(v)) return -1;
        char *end;
        errno = 0;
        r->s[i] = strtoull(json_string_value(v), &end, 16);
        if (errno || *end || end == json_string_value(v)) return -1;
    }
    return 0;
}

static char *state_to_json(const run_state *s) {
    json_t *j = json_object();
    json_object_set_new(j, "epochs_done", json_integer(s->epochs_done));
    json_object_set_new(j, "n_train", json_integer(s->n_train));
    json_object_set_new(j, "step", json_integer(s->step));
    json_object_set_new(j, "step_in_epoch", json_integer(s->step_in_epoch));
    json_object_set_new(j, "epoch_rng", rng_to_json(&s->epoch_rng));
    json_t *ls = json_array();
    for (int i = 0; i < 5; i++) json_array_append_new(ls, json_real(s->loss_sums[i]));
    json_object_set_new(j, "epoch_loss_sums", ls);
    json_object_set_new(j, "epoch_loss_steps", json_integer(s->loss_n));
    json_object_set_new(j, "dropout_rng", rng_to_json(&s->dropout_rng));
    json_object_set_new(j, "best_val_macro_auc", jnum(s->best_auc));
    json_object_set_new(j, "best_epoch", json_integer(s->best_epoch));
    json_object_set_new(j, "lr_now", jnum(s->lr_now));
    json_object_set_new(j, "plateau_best", jnum(s->plateau_best));
    json_object_set_new(j, "plateau_bad", json_integer(s->plateau_bad));
    json_object_set_new(j, "early_stopped", json_boolean(s->early_stopped));
    json_t *h = json_array();
    for (int i = 0; i < s->n_hist; i++) {
        const epoch_rec *e = &s->hist[i];
        json_t *o = json_object();
        json_object_set_new(o, "epoch", json_integer(e->epoch));
        json_object_set_new(o, "step", json_integer(e->step));
        json_object_set_new(o, "loss", jnum(e->loss));
        json_object_set_new(o, "bce1", jnum(e->bce1));
        json_object_set_new(o, "bce2", jnum(e->bce2));
        json_object_set_new(o, "kl_feat", jnum(e->kl_feat));
        json_object_set_new(o, "kl_logits", jnum(e->kl_logits));
        json_object_set_new(o, "val_macro_auc", jnum(e->val_auc));
        json_object_set_new(o, "val_macro_auc_head1", jnum(e->val_auc1));
        json_object_set_new(o, "val_macro_auc_head2", jnum(e->val_auc2));
        json_object_set_new(o, "seconds", jnum(e->seconds));
        json_array_append_new(h, o);
    }
    json_object_set_new(j, "history", h);
    char *out = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(j);
    return out;
}

static mrm_status state_from_json(run_state *s, const char *text, const char *path, mrm_error *err) {
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    mrm_status st = MRM_OK;
    if (!j || !json_is_object(j) || !json_is_integer(json_object_get(j, "epochs_done")) ||
        !json_is_integer(json_object_get(j, "step")) || !json_is_integer(json_object_get(j, "step_in_epoch")) ||
        rng_from_json(json_object_get(j, "epoch_rng"), &s->epoch_rng) ||
        rng_from_json(json_object_get(j, "dropout_rng"), &s->dropout_rng) ||
        !json_is_array(json_object_get(j, "history"))) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s: metadata train_state is incomplete", path);
        goto done;
    }
    s->epochs_done = (int)json_integer_value(json_object_get(j, "epochs_done"));
    s->n_train = json_integer_value(json_object_get(j, "n_train"));
    s->step = json_integer_value(json_object_get(j, "step"));
    s->step_in_epoch = json_integer_value(json_object_get(j, "step_in_epoch"));
    s->best_auc = jget(j, "best_val_macro_auc");
    json_t *ls = json_object_get(j, "epoch_loss_sums");
    for (int i = 0; i < 5; i++) s->loss_sums[i] = json_is_array(ls) ? json_number_value(json_array_get(ls, (size_t)i)) : 0;
    s->loss_n = json_integer_value(json_object_get(j, "epoch_loss_steps"));
    s->best_epoch = (int)json_integer_value(json_object_get(j, "best_epoch"));
    s->lr_now = jget(j, "lr_now");
    s->plateau_best = jget(j, "plateau_best");
    s->plateau_bad = (int)json_integer_value(json_object_get(j, "plateau_bad"));
    s->early_stopped = json_is_true(json_object_get(j, "early_stopped"));
    json_t *h = json_object_get(j, "history");
    size_t nh = json_array_size(h);
    s->hist = calloc(nh + 1, sizeof *s->hist);
    if (!s->hist) {
        st = mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nh; i++) {
        json_t *o = json_array_get(h, i);
        epoch_rec *e = &s->hist[i];
        e->epoch = (int)json_integer_value(json_object_get(o, "epoch"));
        e->step = json_integer_value(json_object_get(o, "step"));
        e->loss = jget(o, "loss"), e->bce1 = jget(o, "bce1"), e->bce2 = jget(o, "bce2");
        e->kl_feat = jget(o, "kl_feat"), e->kl_logits = jget(o, "kl_logits");
        e->val_auc = jget(o, "val_macro_auc"), e->val_auc1 = jget(o, "val_macro_auc_head1");
        e->val_auc2 = jget(o, "val_macro_auc_head2"), e->seconds = jget(o, "seconds");
    }
    s->n_hist = (int)nh;
    if (s->epochs_done < 0 || s->step < 0 || s->step_in_epoch < 0 || s->n_hist != s->epochs_done)
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s: metadata train_state: inconsistent counts", path);
done:
    if (j) json_decref(j);
    return st;
}

/* ---- metadata of the model files ---------------------------------------------------------------- */

static mrm_status build_model_meta(run *r, mrm_error *err) {
    json_t *cls = json_array(), *leads = json_array();
    for (int k = 0; k < r->prep.n_classes; k++) json_array_append_new(cls, json_string(r->prep.classes[k]));
    for (int k = 0; k < MRM_INPUT_LEADS; k++) json_array_append_new(leads, json_string(lead_names[k]));
    char *cs = json_dumps(cls, JSON_COMPACT), *ls = json_dumps(leads, JSON_COMPACT);
    json_decref(cls), json_decref(leads);
    char mean[64], sd[64];
    snprintf(mean, sizeof mean, "%.9g", r->prep.mean);
    snprintf(sd, sizeof sd, "%.9g", r->prep.std);
    mrm_status st = cs && ls ? MRM_OK : mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
    if (!st) st = mrm_meta_set(&r->model_meta, "classes", cs, err);
    if (!st) st = mrm_meta_set(&r->model_meta, "task", r->prep.task, err);
    if (!st) st = mrm_meta_set(&r->model_meta, "mean", mean, err);
    if (!st) st = mrm_meta_set(&r->model_meta, "std", sd, err);
    if (!st) st = mrm_meta_set(&r->model_meta, "leads", ls, err);
    if (!st) st = mrm_meta_set(&r->model_meta, "sampling_rate", "100", err);
    if (!st) st = mrm_meta_set(&r->model_meta, "source", "mrmnet train", err);
    free(cs), free(ls);
    return st;
}

/* Saves last.safetensors (rank 0; the others hold the same state). */
static mrm_status save_last(run *r, mrm_error *err) {
    if (r->rank != 0) return MRM_OK;
    char path[2048];
    mrm_path_join(path, sizeof path, r->out_dir, "last.safetensors");
    mrm_meta md = {0};
    char *state = state_to_json(&r->rs);
    mrm_status st = state ? MRM_OK : mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
    for (int i = 0; !st && i < r->model_meta.n; i++) st = mrm_meta_set(&md, r->model_meta.keys[i], r->model_meta.values[i], err);
    if (!st) st = mrm_meta_set(&md, "train_config", r->config_json, err);
    if (!st) st = mrm_meta_set(&md, "train_state", state, err);
    if (!st) st = mrm_checkpoint_save(path, r->model, &r->opt, &md, err);
    free(state);
    mrm_meta_free(&md);
    return st;
}

/* Saves the model with the run's metadata plus extra key/value pairs (NULL-terminated). */
static mrm_status save_model(run *r, const mrm_model *m, const char *name, const char *const *extra, mrm_error *err) {
    if (r->rank != 0) return MRM_OK;
    char path[2048];
    mrm_path_join(path, sizeof path, r->out_dir, name);
    mrm_meta md = {0};
    mrm_status st = MRM_OK;
    for (int i = 0; !st && i < r->model_meta.n; i++) st = mrm_meta_set(&md, r->model_meta.keys[i], r->model_meta.values[i], err);
    for (int i = 0; !st && extra && extra[i]; i += 2) st = mrm_meta_set(&md, extra[i], extra[i + 1], err);
    if (!st) st = mrm_model_save(m, &md, path, err);
    mrm_meta_free(&md);
    return st;
}

/* ---- logging and curves ------------------------------------------------------------------------- */

static void put_num(FILE *f, const char *key, double v) {
    if (isfinite(v))
        fprintf(f, ",\"%s\":%.9g", key, v);
    else
        fprintf(f, ",\"%s\":null", key);
}

/* Every line of log.jsonl is flushed and checked: a full disk stops the run with the log's path. */
static mrm_status log_done(run *r, mrm_error *err) {
    if (!r->log) return MRM_OK;
    errno = 0;
    if (fflush(r->log) == 0 && !ferror(r->log)) return MRM_OK;
    int e = errno ? errno : EIO;
    char path[2048];
    mrm_path_join(path, sizeof path, r->out_dir, "log.jsonl");
    return mrm_fail(err, MRM_ERR_IO, "%s: write failed: %s", path, strerror(e));
}

static mrm_status log_step(run *r, const mrm_train_progress *p, mrm_error *err) {
    if (!r->log) return MRM_OK;
    fprintf(r->log, "{\"type\":\"step\",\"epoch\":%d,\"step\":%lld,\"step_in_epoch\":%lld", p->epoch, p->step, p->step_in_epoch);
    put_num(r->log, "loss", p->loss.total);
    put_num(r->log, "bce1", p->loss.bce1);
    put_num(r->log, "bce2", p->loss.bce2);
    put_num(r->log, "kl_feat", p->loss.kl_feat);
    put_num(r->log, "kl_logits", p->loss.kl_logits);
    put_num(r->log, "records_per_s", p->records_per_s);
    if (r->size > 1) {
        fprintf(r->log, ",\"processes\":%d", r->size);
        put_num(r->log, "comm_s", r->comm_s);
    }
    fputs("}\n", r->log);
    return log_done(r, err);
}

static mrm_status log_epoch(run *r, const epoch_rec *e, int is_best, mrm_error *err) {
    if (!r->log) return MRM_OK;
    fprintf(r->log, "{\"type\":\"epoch\",\"epoch\":%d,\"step\":%lld", e->epoch, e->step);
    put_num(r->log, "loss", e->loss);
    put_num(r->log, "bce1", e->bce1);
    put_num(r->log, "bce2", e->bce2);
    put_num(r->log, "kl_feat", e->kl_feat);
    put_num(r->log, "kl_logits", e->kl_logits);
    put_num(r->log, "val_macro_auc", e->val_auc);
    put_num(r->log, "val_macro_auc_head1", e->val_auc1);
    put_num(r->log, "val_macro_auc_head2", e->val_auc2);
    put_num(r->log, "seconds", e->seconds);
    put_num(r->log, "lr", r->opt.lr);
    fprintf(r->log, ",\"best\":%s}\n", is_best ? "true" : "false");
    return log_done(r, err);
}

static mrm_status write_curves(run *r, mrm_error *err) {
    if (r->rank != 0) return MRM_OK;
    int n = r->rs.n_hist;
    double *x = malloc(sizeof(double) * (size_t)(n + 1) * 6);
    if (!x) return mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
    double *loss = x + n + 1, *bce = loss + n + 1, *auc = bce + n + 1, *a1 = auc + n + 1, *a2 = a1 + n + 1;
    for (int i = 0; i < n; i++) {
        const epoch_rec *e = &r->rs.hist[i];
        x[i] = e->epoch, loss[i] = e->loss, bce[i] = e->bce1 + e->bce2;
        auc[i] = e->val_auc, a1[i] = e->val_auc1, a2[i] = e->val_auc2;
    }
    mrm_svg_series sl[2] = {{"total loss", x, loss, n}, {"BCE head 1 + 2", x, bce, n}};
    mrm_svg_series sa[3] = {{"both heads", x, auc, n}, {"head 1 (high)", x, a1, n}, {"head 2 (low)", x, a2, n}};
    mrm_svg_panel panels[2] = {{"Training loss per epoch", "epoch", "loss", sl, 2, 0},
                               {"Validation macro-AUC per epoch", "epoch", "macro-AUC", sa, 3, 0}};
    char path[2048];
    mrm_path_join(path, sizeof path, r->out_dir, "curves.svg");
    mrm_status st = mrm_svg_write(path, panels, 2, err);
    free(x);
    return st;
}

/* ---- validation --------------------------------------------------------------------------------- */

/* Macro-AUC of the averaged heads and of each head on the validation split. */
static mrm_status validate(run *r, mrm_model *m, double *auc, double *auc1, double *auc2, float *avg_out, mrm_error *err) {
    *auc = *auc1 = *auc2 = NAN;
    if (!r->have_val) return MRM_OK;
    const long long n = r->val.n;
    const int c = r->prep.n_classes;
    float *p1 = malloc(sizeof(float) * (size_t)n * c), *p2 = malloc(sizeof(float) * (size_t)n * c);
    float *avg = avg_out ? avg_out : malloc(sizeof(float) * (size_t)n * c);
    double *per = malloc(sizeof(double) * (size_t)c);
    mrm_status st = p1 && p2 && avg && per ? MRM_OK : mrm_fail(err, MRM_ERR_NOMEM, "validation: out of memory");
    int eb = r->o.eval_batch > 0 ? r->o.eval_batch : r->o.batch;
    if (!st && r->size > 1) {
        /* each process its share of the batches (the same batches as one process would run), the
         * others' parts zero: summing gathers them exactly */
        const long long nb = (n + eb - 1) / eb, lo = nb * r->rank / r->size * eb;
        long long hi = nb * (r->rank + 1) / r->size * eb;
        if (hi > n) hi = n;
        memset(p1, 0, sizeof(float) * (size_t)n * c), memset(p2, 0, sizeof(float) * (size_t)n * c);
        memset(avg, 0, sizeof(float) * (size_t)n * c);
        const size_t o = (size_t)lo * c;
        if (hi > lo)
            st = mrm_predict_probs(m, r->val.X + (size_t)lo * MRM_INPUT_LEADS * MRM_INPUT_LEN, hi - lo, eb, p1 + o, p2 + o,
                                   avg + o, NULL, NULL, err);
        if (!st && (comm_sum_f32(r, p1, (size_t)n * c) || comm_sum_f32(r, p2, (size_t)n * c) ||
                    comm_sum_f32(r, avg, (size_t)n * c)))
            st = mrm_fail(err, MRM_ERR_IO, "the validation probabilities could not be gathered from the processes");
    } else if (!st) {
        st = mrm_predict_probs(m, r->val.X, n, eb, p1, p2, avg, NULL, NULL, err);
    }
    if (!st) st = mrm_roc_auc(r->val.y, avg, (int)n, c, per, auc, NULL, err);
    if (!st) st = mrm_roc_auc(r->val.y, p1, (int)n, c, per, auc1, NULL, err);
    if (!st) st = mrm_roc_auc(r->val.y, p2, (int)n, c, per, auc2, NULL, err);
    if (st) mrm_error_prefix(err, "validation");
    free(p1), free(p2), free(per);
    if (!avg_out) free(avg);
    return st;
}

/* A validation split must be large enough for its metrics: two records or more, and a class
 * with both a positive and a negative record (else the macro-AUC that selects the epoch is
 * undefined and the thresholds would be fitted on nothing). */
static mrm_status check_val_split(const run *r, mrm_error *err) {
    const long long n = r->val.n;
    const int c = r->prep.n_classes;
    int usable = 0;
    for (int k = 0; k < c && !usable; k++) {
        long long pos = 0;
        for (long long i = 0; i < n; i++) pos += r->val.y[i * c + k] != 0.0f;
        usable = pos > 0 && pos < n;
    }
    if (n >= 2 && usable) return MRM_OK;
    char why[96];
    if (n < 2)
        snprintf(why, sizeof why, "%lld record%s", n, n == 1 ? "" : "s");
    else
        snprintf(why, sizeof why, "%lld records but no class with both a positive and a negative one", n);
    return mrm_fail(err, MRM_ERR_INVALID,
                    "%s: the validation split has %s: too few for the validation macro-AUC and the thresholds; prepare it "
                    "with other folds, or train without validation (--no-val)", r->data_dir, why);
}

/* ---- the run ------------------------------------------------------------------------------------ */

static void run_free(run *r) {
    if (r->log) fclose(r->log);
    free(r->xb), free(r->yb), free(r->keys);
    mrm_split_data_free(&r->train);
    mrm_split_data_free(&r->val);
    mrm_prepared_close(&r->prep);
    if (r->model) mrm_model_free(r->model);
    mrm_optimizer_free(&r->opt);
    mrm_meta_free(&r->model_meta);
    free(r->config_json);
    free(r->ckpt_classes);
    free(r->pos_weight);
    if (r->o.resume) free((float *)r->o.pos_weight); /* read from the checkpoint */
    free(r->rs.hist);
}

/* The first key of cfg whose value differs from that in j, a JSON object of strings as
 * config_to_json writes it (keys j lacks are not compared), with j's value in a and cfg's in b;
 * NULL when none differs. */
static const char *config_json_diff(json_t *j, const mrm_model_config *cfg, char *a, size_t an, char *b, size_t bn) {
    for (int i = 0; json_is_object(j); i++) {
        const char *k = mrm_model_config_key(i, cfg, b, bn, NULL);
        if (!k) break;
        const char *v = json_string_value(json_object_get(j, k));
        if (v && strcmp(v, b)) {
            snprintf(a, an, "%s", v);
            return k;
        }
    }
    return NULL;
}

static mrm_status setup_fresh(run *r, mrm_error *err) {
    const mrm_train_options *o = &r->o;
    mrm_status st;
    if (o->init_path) {
        mrm_meta im = {0};
        if ((st = mrm_model_load(&r->model, &im, o->init_path, err))) return st;
        mrm_meta_free(&im);
        const mrm_model_config *cfg = mrm_model_config_of(r->model);
        if (cfg->n_classes != r->prep.n_classes)
            return mrm_fail(err, MRM_ERR_INVALID, "%s: the model has %d classes, the data %d", o->init_path, cfg->n_classes,
                            r->prep.n_classes);
        mrm_model_config want = o->model;
        want.n_classes = r->prep.n_classes;
        mrm_model_config_normalize(&want);
        const char *d = mrm_model_config_diff(cfg, &want, 1);
        if (d) {
            char a[64] = "", b[64] = "";
            for (int i = 0;; i++) {
                const char *k = mrm_model_config_key(i, cfg, a, sizeof a, NULL);
                if (!k || !strcmp(k, d)) break;
            }
            for (int i = 0;; i++) {
                const char *k = mrm_model_config_key(i, &want, b, sizeof b, NULL);
                if (!k || !strcmp(k, d)) break;
            }
            return mrm_fail(err, MRM_ERR_INVALID, "%s: a model of another variant: its %s is '%s', the run asks for '%s'",
                            o->init_path, d, a, b);
        }
        if ((st = mrm_model_set_config(r->model, &want, err))) return st;
        r->o.model = *mrm_model_config_of(r->model);
    } else {
        mrm_model_config cfg = o->model;
        cfg.n_classes = r->prep.n_classes;
        if ((st = mrm_model_create(&r->model, &cfg, err))) return st;
        r->o.model = *mrm_model_config_of(r->model);
        mrm_model_init(r->model, o->seed);
    }
    if ((st = mrm_optimizer_init(&r->opt, o->optimizer, mrm_model_num_params(r->model), err))) return st;
    r->opt.lr = o->lr, r->opt.beta1 = o->beta1, r->opt.beta2 = o->beta2, r->opt.eps = o->eps;
    r->opt.weight_decay = o->weight_decay, r->opt.momentum = o->momentum;
    mrm_rng_seed(&r->rs.epoch_rng, o->seed ^ SHUFFLE_SEED_SALT);
    mrm_rng_seed(&r->rs.dropout_rng, o->seed ^ DROPOUT_SEED_SALT);
    r->rs.best_auc = NAN;
    r->rs.lr_now = o->lr;
    r->rs.plateau_best = NAN;
    r->rs.hist = calloc(1, sizeof *r->rs.hist);
    if (!r->rs.hist) return mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
    return MRM_OK;
}

static mrm_status setup_resume(run *r, mrm_error *err) {
    char path[2048];
    mrm_path_join(path, sizeof path, r->out_dir, "last.safetensors");
    mrm_meta md = {0};
    mrm_status st = mrm_checkpoint_load(path, &r->model, &r->opt, &md, err);
    if (st) return st;
    const char *cfg = mrm_meta_get(&md, "train_config"), *state = mrm_meta_get(&md, "train_state");
    if (!cfg || !state) {
        mrm_meta_free(&md);
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: not a training checkpoint (no train_config/train_state metadata)", path);
    }
    st = config_from_json(&r->o, r->data_dir, sizeof r->data_dir, cfg, path, err);
    if (!st) st = state_from_json(&r->rs, state, path, err);
    const char *classes = mrm_meta_get(&md, "classes");
    if (!st && classes && !(r->ckpt_classes = strdup(classes))) st = mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
    char *cfg_copy = st ? NULL : strdup(cfg);
    if (!st && !cfg_copy) st = mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
    mrm_meta_free(&md);
    if (st) return st;
    r->o.optimizer = r->opt.kind;
    if (r->o.lr_schedule.kind == MRM_LR_CONSTANT) r->o.lr = r->opt.lr; /* else the base rate of train_config */
    if (!isfinite(r->rs.lr_now)) r->rs.lr_now = r->o.lr;
    r->o.beta1 = r->opt.beta1, r->o.beta2 = r->opt.beta2, r->o.eps = r->opt.eps;
    r->o.weight_decay = r->opt.weight_decay, r->o.momentum = r->opt.momentum;
    if (r->opt.t != r->rs.step) {
        free(cfg_copy);
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: optimizer steps %lld and run steps %lld disagree", path, r->opt.t, r->rs.step);
    }
    const mrm_model_config *mc = mrm_model_config_of(r->model);
    {
        char a[64], b[64];
        json_t *tc = json_loads(cfg_copy ? cfg_copy : "{}", 0, NULL);
        const char *k = config_json_diff(json_object_get(tc, "model"), mc, a, sizeof a, b, sizeof b);
        if (k) st = mrm_fail(err, MRM_ERR_FORMAT, "%s: metadata train_config: %s '%s', but the weights' %s is '%s'", path, k,
                             a, k, b);
        json_decref(tc);
        free(cfg_copy);
        if (st) return st;
    }
    /* best.safetensors, when the run has one, is of the same architecture */
    char bpath[2048];
    mrm_path_join(bpath, sizeof bpath, r->out_dir, "best.safetensors");
    if (r->rs.best_epoch > 0 && access(bpath, F_OK) == 0) {
        mrm_model *best = NULL;
        if ((st = mrm_model_load(&best, NULL, bpath, err))) return st;
        const char *d = mrm_model_config_diff(mrm_model_config_of(best), mc, 1);
        char a[64] = "", b[64] = "";
        for (int i = 0; d; i++) {
            const char *k = mrm_model_config_key(i, mrm_model_config_of(best), a, sizeof a, NULL);
            if (!k || !strcmp(k, d)) break;
        }
        for (int i = 0; d; i++) {
            const char *k = mrm_model_config_key(i, mc, b, sizeof b, NULL);
            if (!k || !strcmp(k, d)) break;
        }
        mrm_model_free(best);
        if (d)
            return mrm_fail(err, MRM_ERR_INVALID, "%s: %s '%s', but the run's %s has %s '%s': the checkpoint is not this run's",
                            path, d, b, bpath, d, a);
    }
    r->o.model = *mc;
    return MRM_OK;
}

/* ---- the run folder ------------------------------------------------------------------------------ */

static const char *const run_files[] = {"last.safetensors", "best.safetensors", "log.jsonl", "curves.svg"};

/* How many entries a folder holds (0 when it does not exist; -1 with err when it cannot be
 * read); the first few names go into list. */
static long long folder_entries(const char *dir, char *list, size_t lsz, mrm_error *err) {
    list[0] = '\0';
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return 0;
        mrm_fail(err, MRM_ERR_IO, "%s: cannot open the folder: %s", dir, strerror(errno));
        return -1;
    }
    long long n = 0;
    size_t used = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (n <= 3) {
            int w = snprintf(list + used, lsz - used, "%s%s", n ? ", " : "", n < 3 ? e->d_name : "...");
            if (w > 0 && (size_t)w < lsz - used) used += (size_t)w;
        }
        n++;
    }
    closedir(d);
    return n;
}

/* A fresh run: the folder must be empty unless asked to overwrite; then a previous run's files go. */
static mrm_status check_out_dir(const run *r, mrm_error *err) {
    char names[600];
    long long k = folder_entries(r->out_dir, names, sizeof names, err);
    if (k < 0) return err ? err->code : MRM_ERR_IO;
    if (k > 0 && !r->o.overwrite)
        return mrm_fail(err, MRM_ERR_INVALID,
                        "%s: the folder is not empty (%s): continue its run with --resume %s, or start over in it with --force",
                        r->out_dir, names, r->out_dir);
    return MRM_OK;
}

static mrm_status remove_run_files(const run *r, mrm_error *err) {
    for (size_t i = 0; i < sizeof run_files / sizeof *run_files; i++) {
        char path[2048];
        mrm_path_join(path, sizeof path, r->out_dir, run_files[i]);
        if (unlink(path) != 0 && errno != ENOENT)
            return mrm_fail(err, MRM_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    }
    return MRM_OK;
}

/* A resumed run's log: the first "start" line's architecture and training options must be the
 * checkpoint's (else the checkpoint is another run's), and the lines after the checkpoint (steps
 * it does not cover, a line cut by a kill) are removed, atomically. */
static mrm_status resume_log(run *r, const char *path, mrm_error *err) {
    char *text;
    size_t len;
    mrm_status st = mrm_read_file(path, (size_t)1 << 31, &text, &len, err);
    if (st == MRM_ERR_NOTFOUND) return MRM_OK;
    if (st) return st;
    static const char *const same[] = {"seed", "batch", "optimizer", "lr", "dropout", "shuffle"};
    json_t *now = json_loads(r->config_json, 0, NULL);
    char *out = malloc(len + 1);
    if (!now || !out) st = mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
    size_t o = 0;
    long long dropped = 0, lineno = 0;
    int seen_start = 0;
    for (char *s = text; !st && s < text + len;) {
        char *e = memchr(s, '\n', (size_t)(text + len - s));
        size_t l = e ? (size_t)(e - s) : (size_t)(text + len - s);
        lineno++;
        json_t *j = json_loadb(s, l, 0, NULL);
        const char *type = json_string_value(json_object_get(j, "type"));
        int keep = 0;
        if (type) {
            if (!strcmp(type, "step")) keep = json_integer_value(json_object_get(j, "step")) <= r->rs.step;
            else if (!strcmp(type, "epoch")) keep = json_integer_value(json_object_get(j, "epoch")) <= r->rs.epochs_done;
            else keep = json_integer_value(json_object_get(j, "step")) <= r->rs.step;
            json_t *cfg = json_object_get(j, "config");
            char va[64], vb[64];
            const char *mk = NULL;
            if (!strcmp(type, "start") && !seen_start && json_is_object(cfg) &&
                (mk = config_json_diff(json_object_get(cfg, "model"), mrm_model_config_of(r->model), va, sizeof va, vb,
                                       sizeof vb)))
                st = mrm_fail(err, MRM_ERR_INVALID,
                              "%s/last.safetensors: %s '%s', but the run started with %s '%s' (%s:%lld): the checkpoint is "
                              "not this run's", r->out_dir, mk, vb, mk, va, path, lineno);
            if (!strcmp(type, "start") && !seen_start++ && json_is_object(cfg))
                for (size_t k = 0; !st && k < sizeof same / sizeof *same; k++) {
                    json_t *a = json_object_get(cfg, same[k]), *b = json_object_get(now, same[k]);
                    if (a && !json_equal(a, b)) {
                        char *as = json_dumps(a, JSON_ENCODE_ANY), *bs = json_dumps(b, JSON_ENCODE_ANY);
                        st = mrm_fail(err, MRM_ERR_INVALID,
                                      "%s/last.safetensors: %s %s, but the run started with %s %s (%s:%lld): the checkpoint "
                                      "is not this run's", r->out_dir, same[k], bs ? bs : "?", same[k], as ? as : "?", path,
                                      lineno);
                        free(as), free(bs);
                    }
                }
        }
        json_decref(j);
        if (keep) {
            memcpy(out + o, s, l);
            out[o + l] = '\n';
            o += l + 1;
        } else if (l) {
            dropped++;
        }
        s = e ? e + 1 : text + len;
    }
    if (!st && dropped) {
        st = mrm_write_file_atomic(path, out, o, err);
        if (!st)
            logf_(r, MRM_LOG_INFO, "%s: %lld lines after the checkpoint (step %lld) removed", path, dropped, r->rs.step);
    }
    json_decref(now);
    free(out);
    free(text);
    return st;
}

/* Thresholds on the validation split with the best weights, saved into best.safetensors. When no
 * epoch finished (max_steps), the current weights become best.safetensors. */
static mrm_status finish(run *r, mrm_error *err) {
    char path[2048];
    mrm_path_join(path, sizeof path, r->out_dir, "best.safetensors");
    mrm_model *best = NULL;
    mrm_status st;
    if (r->rs.best_epoch > 0) {
        /* rank 0 reads the file, the other processes receive its weights */
        if (r->rank == 0 && (st = mrm_model_load(&best, NULL, path, err))) return st;
        if (r->rank != 0 && (st = mrm_model_create(&best, mrm_model_config_of(r->model), err))) return st;
        if (r->size > 1 && (st = bcast_model(r, best, 0, err))) {
            mrm_model_free(best);
            return st;
        }
    } else {
        best = r->model; /* borrowed */
    }
    const int c = r->prep.n_classes;
    char *thr_json = NULL, aucbuf[64] = "null", epochbuf[32];
    st = MRM_OK;
    if (r->have_val) {
        float *avg = malloc(sizeof(float) * (size_t)r->val.n * c), *thr = malloc(sizeof(float) * (size_t)c);
        double a, a1, a2;
        st = avg && thr ? MRM_OK : mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
        if (!st) st = validate(r, best, &a, &a1, &a2, avg, err);
        if (!st) st = mrm_best_f1_thresholds(r->val.y, avg, (int)r->val.n, c, thr, err);
        if (!st) {
            json_t *arr = json_array();
            for (int k = 0; k < c; k++) json_array_append_new(arr, json_real(thr[k]));
            thr_json = json_dumps(arr, JSON_COMPACT | JSON_REAL_PRECISION(9));
            json_decref(arr);
            if (isfinite(a)) snprintf(aucbuf, sizeof aucbuf, "%.9g", a);
        }
        free(avg), free(thr);
    } else {
        logf_(r, MRM_LOG_WARN, "no validation split: best.safetensors holds the last weights and no thresholds");
    }
    snprintf(epochbuf, sizeof epochbuf, "%d", r->rs.best_epoch > 0 ? r->rs.best_epoch : r->rs.epochs_done);
    if (!st) {
        const char *extra[] = {"val_macro_auc", aucbuf, "epoch", epochbuf, thr_json ? "thresholds" : NULL, thr_json, NULL};
        st = save_model(r, best, "best.safetensors", extra, err);
    }
    free(thr_json);
    if (best != r->model) mrm_model_free(best);
    return st;
}

/* The BCE class weights: given, or negatives / positives of each class on the training split. */
static mrm_status setup_pos_weight(run *r, mrm_error *err) {
    const int c = r->prep.n_classes;
    if (r->o.pos_weight_mode == MRM_POS_WEIGHT_NONE) return MRM_OK;
    if (!(r->pos_weight = malloc((size_t)c * sizeof *r->pos_weight))) return mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
    if (r->o.pos_weight_mode == MRM_POS_WEIGHT_GIVEN) {
        if (!r->o.pos_weight || (r->o.n_pos_weight != 1 && r->o.n_pos_weight != c))
            return mrm_fail(err, MRM_ERR_INVALID, "pos_weight: %d values for %d classes (give 1 or %d)", r->o.n_pos_weight, c, c);
        for (int k = 0; k < c; k++) r->pos_weight[k] = r->o.pos_weight[r->o.n_pos_weight == 1 ? 0 : k];
    } else {
        for (int k = 0; k < c; k++) {
            long long pos = 0;
            for (long long i = 0; i < r->train.n; i++) pos += r->train.y[(size_t)i * c + k] != 0.0f;
            r->pos_weight[k] = pos ? (float)((double)(r->train.n - pos) / (double)pos) : 1.0f;
            if (!pos) logf_(r, MRM_LOG_WARN, "pos_weight auto: class %s has no positive in the training split: weight 1", r->prep.classes[k]);
            if (pos == r->train.n) r->pos_weight[k] = 1.0f; /* no negative: nothing to balance */
        }
    }
    return mrm_model_set_pos_weight(r->model, r->pos_weight, err);
}

/* ---- one training step -----------------------------------------------------------------------------
 * The global batch is the records ids[0..B) of the training split (the epoch's order). Alone, the
 * process takes them all; with P processes, rank k takes records [B k / P, B (k + 1) / P) (shares
 * differ by one at most), weights its loss gradient by its share, and the gradient buffer is
 * summed over the processes in one call; every process then takes the same optimizer step.
 * loss: the global batch's (the shares' losses weighted by their sizes). */
static mrm_status train_step(run *r, const int *ids, int B, int epoch, mrm_loss *loss, mrm_error *err) {
    const int c = r->prep.n_classes;
    const size_t rec = (size_t)MRM_INPUT_LEADS * MRM_INPUT_LEN;
    const int lo = (int)((long long)B * r->rank / r->size), hi = (int)((long long)B * (r->rank + 1) / r->size);
    const int b = hi - lo;
    for (int j = 0; j < b; j++) {
        const int idx = ids[lo + j];
        memcpy(r->xb + (size_t)j * rec, r->train.X + (size_t)idx * rec, sizeof(float) * rec);
        memcpy(r->yb + (size_t)j * c, r->train.y + (size_t)idx * c, sizeof(float) * (size_t)c);
        r->keys[j] = record_key(r->o.seed, epoch, idx);
    }
    r->comm_s = 0;
    mrm_model_zero_grad(r->model);
    if (r->size > 1) mrm_model_set_loss_scale(r->model, (float)((double)b / B));
    mrm_status st = mrm_model_forward_keyed(r->model, r->xb, b, 1, &r->rs.dropout_rng, r->keys, err);
    if (!st) st = mrm_model_backward(r->model, r->yb, loss, err);
    if (st) return st;
    if (r->size > 1) {
        const double w = (double)b / B;
        double l[5] = {loss->total * w, loss->bce1 * w, loss->bce2 * w, loss->kl_feat * w, loss->kl_logits * w};
        if (comm_sum_f64(r, l, 5) || comm_sum_f32(r, mrm_model_grads(r->model), mrm_model_num_params(r->model)))
            return mrm_fail(err, MRM_ERR_IO, "epoch %d step %lld: the gradients could not be summed over the processes", epoch,
                            r->rs.step + 1);
        *loss = (mrm_loss){l[0], l[1], l[2], l[3], l[4]};
    }
    if (!isfinite(loss->total))
        return mrm_fail(err, MRM_ERR_CHECK, "epoch %d step %lld: the loss is not finite (%g)", epoch, r->rs.step + 1, loss->total);
    mrm_optimizer_step(&r->opt, mrm_model_params(r->model), mrm_model_grads(r->model));
    return MRM_OK;
}

/* With P processes every share of every batch must be large enough for the BatchNorm statistics:
 * one record a process with synchronised BatchNorm, two without. */
static mrm_status check_shares(const run *r, mrm_error *err) {
    if (r->size <= 1) return MRM_OK;
    const long long n = r->train.n, last = n % r->o.batch;
    long long smallest = n < r->o.batch ? n : r->o.batch;
    if (last > 1 && last < smallest) smallest = last; /* a last batch of one record is skipped */
    const int need = r->o.no_sync_bn ? 2 : 1;
    if (smallest / r->size >= need) return MRM_OK;
    return mrm_fail(err, MRM_ERR_INVALID,
                    "%d processes: the smallest batch (%lld records of %lld, batch %d) leaves a process fewer than %d "
                    "record%s%s; use fewer processes or another batch size", r->size, smallest, n, r->o.batch, need,
                    need > 1 ? "s" : "", r->o.no_sync_bn ? " (per-process BatchNorm statistics)" : "");
}

mrm_status mrm_train(const mrm_train_options *opt, mrm_error *err) {
    run r;
    memset(&r, 0, sizeof r);
    r.o = *opt;
    r.comm = opt->comm && opt->comm->size > 1 ? opt->comm : NULL;
    r.rank = r.comm ? r.comm->rank : 0, r.size = r.comm ? r.comm->size : 1;
    if (r.comm && (r.rank < 0 || r.rank >= r.size || !r.comm->allreduce_f32 || !r.comm->allreduce_f64 || !r.comm->broadcast))
        return mrm_fail(err, MRM_ERR_INVALID, "train: rank %d of %d processes, or a communicator function missing", r.rank,
                        r.size);
    if (!opt->resume && r.o.max_steps < 0) r.o.max_steps = 0;
    mrm_status st = MRM_OK;
    if (!opt->out_dir) return mrm_fail(err, MRM_ERR_INVALID, "train: no output folder");
    snprintf(r.out_dir, sizeof r.out_dir, "%s", opt->out_dir);
    if (opt->data_dir) snprintf(r.data_dir, sizeof r.data_dir, "%s", opt->data_dir);
    if (!opt->resume && (!opt->data_dir || opt->epochs <= 0 || opt->batch <= 0 || !(opt->dropout >= 0 && opt->dropout < 1) ||
                         !(opt->lr > 0)))
        return mrm_fail(err, MRM_ERR_INVALID, "train: need a data folder, epochs > 0, batch > 0, lr > 0, dropout in [0, 1)");
    if (!opt->resume) {
        mrm_model_config c = opt->model;
        c.n_classes = 1; /* from the data */
        if ((st = mrm_model_config_check(&c, err))) {
            mrm_error_prefix(err, "train");
            return st;
        }
    }
    if (!opt->resume && r.rank == 0 && (st = check_out_dir(&r, err))) return st;
    int threads_before = omp_get_max_threads();
    /* the run's folder is rank 0's (the other processes of a data-parallel run write nothing) */
    if (r.rank == 0 && (st = mrm_mkdir_p(r.out_dir, err))) return st;
    /* one training at a time in a folder: a second one (a second ablate, a resume started twice)
     * would interleave its checkpoints and log lines with the first's */
    int lock = r.rank == 0 ? mrm_dir_lock(r.out_dir, "training", err) : -1;
    if (r.rank == 0 && lock < 0) return err ? err->code : MRM_ERR_IO;
    if (!opt->resume && r.rank == 0 && (st = check_out_dir(&r, err))) {
        mrm_dir_unlock(lock);
        return st;
    }
    if (opt->resume)
        st = setup_resume(&r, err);
    if (!st) st = mrm_prepared_open(&r.prep, r.data_dir, err);
    if (!st) st = mrm_prepared_check(&r.prep, err);
    if (!st && !opt->resume) st = setup_fresh(&r, err);
    if (!st && mrm_model_config_of(r.model)->n_classes != r.prep.n_classes)
        st = mrm_fail(err, MRM_ERR_INVALID, "%s: %d classes, the checkpoint's model %d", r.data_dir, r.prep.n_classes,
                      mrm_model_config_of(r.model)->n_classes);
    if (!st) st = build_model_meta(&r, err);
    if (!st && r.ckpt_classes && strcmp(r.ckpt_classes, mrm_meta_get(&r.model_meta, "classes")))
        st = mrm_fail(err, MRM_ERR_INVALID, "%s: classes %s, but the checkpoint's are %s", r.data_dir,
                      mrm_meta_get(&r.model_meta, "classes"), r.ckpt_classes);
    if (!st) st = mrm_prepared_load_split_part(&r.prep, "train", 1, r.rank, r.size, &r.train, err);
    if (!st && (r.train.n == 0 || r.train.n > INT_MAX))
        st = mrm_fail(err, MRM_ERR_INVALID, "%s: the training split has %lld records", r.data_dir, r.train.n);
    if (!st && opt->resume && r.train.n != r.rs.n_train)
        st = mrm_fail(err, MRM_ERR_INVALID, "%s: the training split has %lld records, the run was started with %lld", r.data_dir,
                      r.train.n, r.rs.n_train);
    if (!st) r.rs.n_train = r.train.n;
    if (!st) st = check_shares(&r, err);
    if (!st && !r.o.no_validation) {
        mrm_error verr = {0};
        mrm_status vs = mrm_prepared_load_split_part(&r.prep, "val", 1, r.rank, r.size, &r.val, &verr);
        if (vs == MRM_ERR_NOTFOUND) {
            logf_(&r, MRM_LOG_WARN, "%s", verr.msg);
        } else if (vs) {
            st = vs;
            if (err) *err = verr;
        } else {
            st = check_val_split(&r, err);
            r.have_val = !st;
        }
    }
    if (!st) st = setup_pos_weight(&r, err);
    if (!st && r.o.early_stop > 0 && !r.have_val)
        st = mrm_fail(err, MRM_ERR_INVALID, "%s: early stopping needs a validation split", r.data_dir);
    if (!st && r.o.lr_schedule.kind == MRM_LR_PLATEAU && !r.have_val)
        st = mrm_fail(err, MRM_ERR_INVALID, "%s: reduce-on-plateau needs a validation split", r.data_dir);
    if (st) goto done;
    if (r.o.threads > 0) omp_set_num_threads(r.o.threads);
    mrm_model_set_dropout(r.model, r.o.dropout);
    if (r.comm && !r.o.no_sync_bn) mrm_model_set_batch_sync(r.model, comm_bn_sum, &r, r.rank == 0);
    r.config_json = config_to_json(&r.o, r.data_dir, r.pos_weight, r.prep.n_classes);
    if (!r.config_json) {
        st = mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
        goto done;
    }
    char path[2048];
    mrm_path_join(path, sizeof path, r.out_dir, "log.jsonl");
    if (r.rank == 0) { /* the run's files: rank 0 alone */
        if (!opt->resume && opt->overwrite && (st = remove_run_files(&r, err))) goto done;
        if (opt->resume && (st = resume_log(&r, path, err))) goto done;
        r.log = fopen(path, opt->resume ? "a" : "w");
        if (!r.log) {
            st = mrm_fail(err, MRM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
            goto done;
        }
        fprintf(r.log, "{\"type\":\"%s\",\"config\":%s,\"epochs_done\":%d,\"step\":%lld}\n",
                opt->resume ? "resume" : "start", r.config_json, r.rs.epochs_done, r.rs.step);
        if ((st = log_done(&r, err))) goto done;
    }
    if (r.size > 1)
        logf_(&r, MRM_LOG_INFO, "%d processes: a global batch of %d (%d to %d records each), BatchNorm statistics %s", r.size,
              r.o.batch, r.o.batch / r.size, (r.o.batch + r.size - 1) / r.size,
              r.o.no_sync_bn ? "per process" : "of the global batch");

    const long long n = r.train.n;
    const int batch = r.o.batch, c = r.prep.n_classes;
    const long long steps_per_epoch = (n + batch - 1) / batch;
    const size_t rec = (size_t)MRM_INPUT_LEADS * MRM_INPUT_LEN;
    int *perm = malloc(sizeof(int) * (size_t)n);
    const int share = (batch + r.size - 1) / r.size; /* this process's records a step, at most */
    r.xb = malloc(sizeof(float) * rec * (size_t)share), r.yb = malloc(sizeof(float) * (size_t)share * c);
    r.keys = malloc(sizeof(uint64_t) * (size_t)share);
    if (!perm || !r.xb || !r.yb || !r.keys) {
        free(perm);
        st = mrm_fail(err, MRM_ERR_NOMEM, "train: cannot allocate batches of %d", batch);
        goto done;
    }
    if (r.rs.epochs_done >= r.o.epochs)
        logf_(&r, MRM_LOG_INFO, "the run has already done its %d epochs", r.o.epochs);
    const double t_start = now_s();
    long long steps_this_run = 0, total_steps = steps_per_epoch * r.o.epochs;
    if (r.o.max_steps > 0 && r.o.max_steps < total_steps) total_steps = r.o.max_steps;
    int stopped = 0, warned_single = 0;
    while (!st && !stopped && r.rs.epochs_done < r.o.epochs) {
        const int epoch = r.rs.epochs_done + 1;
        if (r.rs.early_stopped) break;
        r.opt.lr = train_lr_of_epoch(&r.o.lr_schedule, r.o.lr, epoch, r.o.epochs, r.rs.lr_now);
        r.rs.lr_now = r.opt.lr;
        mrm_rng shuffle_rng = r.rs.epoch_rng;
        for (long long i = 0; i < n; i++) perm[i] = (int)i;
        if (r.o.shuffle) mrm_rng_shuffle(&shuffle_rng, perm, (int)n);
        if (r.rs.step_in_epoch == 0) memset(r.rs.loss_sums, 0, sizeof r.rs.loss_sums), r.rs.loss_n = 0;
        double *sums = r.rs.loss_sums;
        long long recs_epoch = 0;
        const double t_epoch = now_s();
        for (long long s = r.rs.step_in_epoch; s < steps_per_epoch; s++) {
            if (r.o.max_steps > 0 && r.rs.step >= r.o.max_steps) {
                stopped = 1;
                break;
            }
            const long long b0 = s * batch;
            const int B = (int)(n - b0 < batch ? n - b0 : batch);
            if (B == 1 && n > 1) {
                /* The channel attention's BatchNorm sees one value per channel and sample: with a
                 * single record it has no batch statistics (PyTorch refuses such a batch too).
                 * The last partial batch is kept unless it holds one record; then it is skipped. */
                if (!warned_single++)
                    logf_(&r, MRM_LOG_WARN, "the last batch of each epoch holds a single record: it is skipped");
                r.rs.step_in_epoch = s + 1;
                continue;
            }
            mrm_loss loss;
            if ((st = train_step(&r, perm + b0, B, epoch, &loss, err))) break;
            r.rs.step++;
            r.rs.step_in_epoch = s + 1;
            steps_this_run++;
            recs_epoch += B;
            sums[0] += loss.total, sums[1] += loss.bce1, sums[2] += loss.bce2, sums[3] += loss.kl_feat, sums[4] += loss.kl_logits;
            r.rs.loss_n++;
            mrm_train_progress p = {0};
            p.epoch = epoch, p.epochs = r.o.epochs, p.step = r.rs.step, p.step_in_epoch = s + 1;
            p.steps_per_epoch = steps_per_epoch, p.loss = loss;
            double el = now_s() - t_epoch, el_run = now_s() - t_start;
            p.records_per_s = el > 0 ? recs_epoch / el : 0;
            long long left = total_steps - r.rs.step;
            p.seconds_left = steps_this_run > 0 && left > 0 ? el_run / steps_this_run * left : 0;
            p.val_macro_auc = p.val_auc1 = p.val_auc2 = NAN;
            if ((st = log_step(&r, &p, err))) break;
            if (r.o.on_step && r.rank == 0) r.o.on_step(r.o.user, &p);
        }
        if (st) break;
        if (stopped) {
            /* the position within the epoch is saved; resume draws the same order again */
            st = save_last(&r, err);
            break;
        }
        /* the epoch is complete */
        if (r.size > 1 && r.o.no_sync_bn && (st = bcast_model(&r, r.model, 1, err))) break; /* rank 0's BN statistics */
        if (r.size > 1 && (st = check_replicas(&r, err))) break;
        double auc, auc1, auc2;
        if ((st = validate(&r, r.model, &auc, &auc1, &auc2, NULL, err))) break;
        epoch_rec *nh = realloc(r.rs.hist, sizeof *nh * (size_t)(r.rs.n_hist + 1));
        if (!nh) {
            st = mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
            break;
        }
        r.rs.hist = nh;
        epoch_rec *e = &r.rs.hist[r.rs.n_hist++];
        memset(e, 0, sizeof *e);
        e->epoch = epoch, e->step = r.rs.step;
        double dn = r.rs.loss_n ? (double)r.rs.loss_n : NAN;
        e->loss = sums[0] / dn, e->bce1 = sums[1] / dn, e->bce2 = sums[2] / dn, e->kl_feat = sums[3] / dn, e->kl_logits = sums[4] / dn;
        e->val_auc = auc, e->val_auc1 = auc1, e->val_auc2 = auc2;
        e->seconds = now_s() - t_epoch;
        /* without a usable validation metric (no split, or no class with an AUC) the latest wins */
        int is_best = r.rs.best_epoch == 0 ||
                      (isfinite(auc) ? !isfinite(r.rs.best_auc) || auc > r.rs.best_auc : !isfinite(r.rs.best_auc));
        r.rs.epochs_done = epoch;
        r.rs.step_in_epoch = 0;
        r.rs.epoch_rng = shuffle_rng;
        if (is_best) {
            r.rs.best_auc = auc;
            r.rs.best_epoch = epoch;
            char ab[64], eb[32];
            snprintf(ab, sizeof ab, isfinite(auc) ? "%.9g" : "null", auc);
            snprintf(eb, sizeof eb, "%d", epoch);
            const char *extra[] = {"val_macro_auc", ab, "epoch", eb, NULL};
            if ((st = save_model(&r, r.model, "best.safetensors", extra, err))) break;
        }
        train_plateau_update(&r.o.lr_schedule, auc, &r.rs.plateau_best, &r.rs.plateau_bad, &r.rs.lr_now);
        if (r.o.early_stop > 0 && epoch - r.rs.best_epoch >= r.o.early_stop && epoch < r.o.epochs) {
            r.rs.early_stopped = 1;
            logf_(&r, MRM_LOG_INFO, "early stop after epoch %d: no better validation macro-AUC for %d epochs (best %.4f at epoch %d)",
                  epoch, r.o.early_stop, r.rs.best_auc, r.rs.best_epoch);
        }
        if ((st = save_last(&r, err))) break;
        if ((st = log_epoch(&r, e, is_best, err))) break;
        if (r.rs.early_stopped && r.log) {
            fprintf(r.log, "{\"type\":\"early_stop\",\"epoch\":%d,\"best_epoch\":%d}\n", epoch, r.rs.best_epoch);
            if ((st = log_done(&r, err))) break;
        }
        if ((st = write_curves(&r, err))) break;
        if (r.o.on_epoch && r.rank == 0) {
            mrm_train_progress p = {0};
            p.epoch = epoch, p.epochs = r.o.epochs, p.step = r.rs.step, p.step_in_epoch = steps_per_epoch;
            p.steps_per_epoch = steps_per_epoch;
            p.loss = (mrm_loss){e->loss, e->bce1, e->bce2, e->kl_feat, e->kl_logits};
            p.records_per_s = e->seconds > 0 ? recs_epoch / e->seconds : 0;
            double el_run = now_s() - t_start;
            long long left = total_steps - r.rs.step;
            p.seconds_left = steps_this_run > 0 && left > 0 ? el_run / steps_this_run * left : 0;
            p.val_macro_auc = auc, p.val_auc1 = auc1, p.val_auc2 = auc2, p.is_best = is_best;
            r.o.on_epoch(r.o.user, &p);
        }
    }
    free(perm);
    if (!st) st = finish(&r, err);
    if (r.log) { /* closed here, checked: the log's last lines reach the disk or the run fails */
        int bad = fflush(r.log) != 0 || ferror(r.log) || fsync(fileno(r.log)) != 0;
        int e = errno ? errno : EIO;
        if (fclose(r.log) != 0 && !bad) bad = 1, e = errno ? errno : EIO;
        r.log = NULL;
        if (bad && !st) {
            char lp[2048];
            mrm_path_join(lp, sizeof lp, r.out_dir, "log.jsonl");
            st = mrm_fail(err, MRM_ERR_IO, "%s: write failed: %s", lp, strerror(e));
        }
    }
done:
    mrm_dir_unlock(lock);
    if (r.o.threads > 0) omp_set_num_threads(threads_before);
    run_free(&r);
    return st;
}
