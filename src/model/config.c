/* The model's config: defaults (the released model), checks, and ONE key table through which
 * every field is set from text, written to and read from the weights' metadata, compared and
 * described. A new knob is one field in mrm_model_config and one row here. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "mrmnet/model.h"

typedef enum { K_INT, K_ENUM, K_REAL } key_kind;

typedef struct cfg_key {
    const char *key;
    key_kind kind;
    size_t off;
    int weights;                /* the field changes the tensors */
    const char *const *names;   /* K_ENUM: value names by enum value (NULL-terminated) */
    double lo, hi;              /* K_INT / K_REAL range */
    const char *allowed;        /* for messages and --help */
} cfg_key;

static const char *const attention_names[] = {"low", "both", "high", "none", NULL};
static const char *const onoff_names[] = {"off", "on", NULL};
static const char *const branches_names[] = {"both", "high", "low", NULL};
static const char *const combine_names[] = {"mutual", "add", "concat", NULL};

#define OFF(f) offsetof(mrm_model_config, f)
static const cfg_key keys[] = {
    {"n_classes", K_INT, OFF(n_classes), 1, NULL, 1, 100000, "an integer in 1..100000"},
    {"width", K_INT, OFF(width), 1, NULL, 4, MRM_MAX_WIDTH, "a multiple of 4 in 4..128 (the authors ship 16, 32, 64)"},
    {"attention", K_ENUM, OFF(attention), 1, attention_names, 0, 0, "low, high, both or none"},
    {"fusion", K_ENUM, OFF(fusion), 1, onoff_names, 0, 0, "on or off"},
    {"branches", K_ENUM, OFF(branches), 1, branches_names, 0, 0, "both, high or low"},
    {"combine", K_ENUM, OFF(combine), 1, combine_names, 0, 0, "mutual, add or concat"},
    {"lambda_feat", K_REAL, OFF(lambda_feat), 0, NULL, 0, 1e6, "a number >= 0 (0: term off)"},
    {"lambda_logit", K_REAL, OFF(lambda_logit), 0, NULL, 0, 1e6, "a number >= 0 (0: term off)"},
    {"temperature", K_REAL, OFF(temperature), 0, NULL, 1e-6, 1e6, "a number > 0"},
};
#define N_KEYS ((int)(sizeof keys / sizeof keys[0]))

static int *ifield(mrm_model_config *c, const cfg_key *k) { return (int *)((char *)c + k->off); }
static double *dfield(mrm_model_config *c, const cfg_key *k) { return (double *)((char *)c + k->off); }
static int iget(const mrm_model_config *c, const cfg_key *k) { return *(const int *)((const char *)c + k->off); }
static double dget(const mrm_model_config *c, const cfg_key *k) { return *(const double *)((const char *)c + k->off); }

void mrm_model_config_default(mrm_model_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->n_classes = 5;
    cfg->width = 16;
    cfg->attention = MRM_ATTENTION_LOW;
    cfg->fusion = 1;
    cfg->branches = MRM_BRANCHES_BOTH;
    cfg->combine = MRM_COMBINE_MUTUAL;
    cfg->lambda_feat = 0.01;
    cfg->lambda_logit = 0.1;
    cfg->temperature = 4.0;
}

void mrm_model_config_normalize(mrm_model_config *cfg) {
    int hi = cfg->attention == MRM_ATTENTION_BOTH || cfg->attention == MRM_ATTENTION_HIGH;
    int lo = cfg->attention == MRM_ATTENTION_BOTH || cfg->attention == MRM_ATTENTION_LOW;
    if (cfg->branches == MRM_BRANCHES_HIGH) lo = 0;
    if (cfg->branches == MRM_BRANCHES_LOW) hi = 0;
    cfg->attention = hi ? (lo ? MRM_ATTENTION_BOTH : MRM_ATTENTION_HIGH) : lo ? MRM_ATTENTION_LOW : MRM_ATTENTION_NONE;
    if (cfg->branches != MRM_BRANCHES_BOTH || cfg->combine != MRM_COMBINE_MUTUAL) {
        /* one output: no mutual-learning terms */
        cfg->lambda_feat = 0;
        cfg->lambda_logit = 0;
    }
}

static const cfg_key *find_key(const char *key) {
    char k[64];
    size_t n = strlen(key);
    if (n >= sizeof k) return NULL;
    for (size_t i = 0; i <= n; i++) k[i] = key[i] == '-' ? '_' : key[i];
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(keys[i].key, k)) return &keys[i];
    return NULL;
}

/* Parses value into the field of k; the message is prefixed with `where` (e.g. a path). */
static mrm_status set_key(mrm_model_config *cfg, const cfg_key *k, const char *value, const char *where, mrm_error *err) {
    const char *sep = where && *where ? ": " : "";
    if (!where) where = "";
    if (k->kind == K_ENUM) {
        for (int v = 0; k->names[v]; v++)
            if (!strcmp(value, k->names[v])) {
                *ifield(cfg, k) = v;
                return MRM_OK;
            }
        if (k->names == onoff_names && (!strcmp(value, "1") || !strcmp(value, "0"))) {
            *ifield(cfg, k) = value[0] == '1';
            return MRM_OK;
        }
        return mrm_fail(err, MRM_ERR_INVALID, "%s%s%s: '%s' is not %s", where, sep, k->key, value, k->allowed);
    }
    char *end;
    errno = 0;
    double x = strtod(value, &end);
    int bad = errno || end == value || *end || !isfinite(x) || x < k->lo || x > k->hi;
    if (k->kind == K_INT) bad = bad || x != floor(x);
    if (bad) return mrm_fail(err, MRM_ERR_INVALID, "%s%s%s: '%s' is not %s", where, sep, k->key, value, k->allowed);
    if (k->kind == K_INT) *ifield(cfg, k) = (int)x;
    else *dfield(cfg, k) = x;
    return MRM_OK;
}

static void value_of(const mrm_model_config *cfg, const cfg_key *k, char *buf, size_t n) {
    if (k->kind == K_ENUM) {
        int v = iget(cfg, k), nv = 0;
        while (k->names[nv]) nv++;
        snprintf(buf, n, "%s", v >= 0 && v < nv ? k->names[v] : "?");
    } else if (k->kind == K_INT) {
        snprintf(buf, n, "%d", iget(cfg, k));
    } else {
        snprintf(buf, n, "%.17g", dget(cfg, k));
        /* shortest text that reads back the same double (0.01, not 0.01000000000000000021) */
        for (int p = 1; p <= 17; p++) {
            char t[64];
            snprintf(t, sizeof t, "%.*g", p, dget(cfg, k));
            if (strtod(t, NULL) == dget(cfg, k)) {
                snprintf(buf, n, "%s", t);
                break;
            }
        }
    }
}

mrm_status mrm_model_config_set(mrm_model_config *cfg, const char *key, const char *value, mrm_error *err) {
    const cfg_key *k = find_key(key);
    if (!k) {
        char list[512] = "";
        size_t u = 0;
        for (int i = 0; i < N_KEYS && u < sizeof list; i++)
            u += (size_t)snprintf(list + u, sizeof list - u, "%s%s", i ? ", " : "", keys[i].key);
        return mrm_fail(err, MRM_ERR_INVALID, "model config: no key '%s' (keys: %s)", key, list);
    }
    return set_key(cfg, k, value, "model config", err);
}

mrm_status mrm_model_config_parse(mrm_model_config *cfg, const char *variant, mrm_error *err) {
    if (!variant || !*variant || !strcmp(variant, "released")) return MRM_OK;
    const char *p = variant;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char item[128];
        if (len >= sizeof item) return mrm_fail(err, MRM_ERR_INVALID, "variant '%s': item too long", variant);
        memcpy(item, p, len);
        item[len] = '\0';
        char *eq = strchr(item, '=');
        if (!eq) return mrm_fail(err, MRM_ERR_INVALID, "variant '%s': '%s' is not key=value", variant, item);
        *eq = '\0';
        mrm_status s = mrm_model_config_set(cfg, item, eq + 1, err);
        if (s) {
            mrm_error_prefix(err, "variant '%s'", variant);
            return s;
        }
        p = e ? e + 1 : p + len;
    }
    return MRM_OK;
}

const char *mrm_model_config_key(int i, const mrm_model_config *cfg, char *buf, size_t n, const char **allowed) {
    if (i < 0 || i >= N_KEYS) return NULL;
    if (buf && n && cfg) value_of(cfg, &keys[i], buf, n);
    if (allowed) *allowed = keys[i].allowed;
    return keys[i].key;
}

const char *mrm_model_config_diff(const mrm_model_config *a, const mrm_model_config *b, int weights_only) {
    for (int i = 0; i < N_KEYS; i++) {
        const cfg_key *k = &keys[i];
        if (weights_only && !k->weights) continue;
        if (k->kind == K_REAL ? dget(a, k) != dget(b, k) : iget(a, k) != iget(b, k)) return k->key;
    }
    return NULL;
}

void mrm_model_config_describe(const mrm_model_config *cfg, char *buf, size_t n) {
    size_t u = 0;
    if (n) buf[0] = '\0';
    for (int i = 0; i < N_KEYS && u < n; i++) {
        char v[64];
        value_of(cfg, &keys[i], v, sizeof v);
        u += (size_t)snprintf(buf + u, n - u, "%s%s %s", i ? ", " : "", keys[i].key, v);
    }
}

mrm_status mrm_model_config_check(const mrm_model_config *cfg, mrm_error *err) {
    if (!cfg) return mrm_fail(err, MRM_ERR_INVALID, "model config: none given");
    for (int i = 0; i < N_KEYS; i++) {
        const cfg_key *k = &keys[i];
        if (k->kind == K_ENUM) {
            int v = iget(cfg, k), nv = 0;
            while (k->names[nv]) nv++;
            if (v < 0 || v >= nv) return mrm_fail(err, MRM_ERR_INVALID, "model config: %s: value %d is not %s", k->key, v, k->allowed);
        } else {
            double x = k->kind == K_INT ? iget(cfg, k) : dget(cfg, k);
            if (!(x >= k->lo && x <= k->hi)) {
                if (!strcmp(k->key, "temperature") && x == 0)
                    return mrm_fail(err, MRM_ERR_INVALID,
                                    "model config: temperature: 0 is not %s (start from mrm_model_config_default)", k->allowed);
                return mrm_fail(err, MRM_ERR_INVALID, "model config: %s: %g is not %s", k->key, x, k->allowed);
            }
        }
    }
    if (cfg->width % 4) return mrm_fail(err, MRM_ERR_INVALID, "model config: width: %d is not a multiple of 4", cfg->width);
    if (cfg->branches != MRM_BRANCHES_BOTH && cfg->combine != MRM_COMBINE_MUTUAL)
        return mrm_fail(err, MRM_ERR_INVALID, "model config: combine: '%s' needs both branches (branches is '%s')",
                        combine_names[cfg->combine], branches_names[cfg->branches]);
    return MRM_OK;
}

mrm_status mrm_model_config_to_meta(const mrm_model_config *cfg, mrm_meta *meta, mrm_error *err) {
    mrm_status s = mrm_meta_set(meta, "format", "mrmnet-1", err);
    for (int i = 0; !s && i < N_KEYS; i++) {
        char v[64];
        value_of(cfg, &keys[i], v, sizeof v);
        s = mrm_meta_set(meta, keys[i].key, v, err);
    }
    return s;
}

mrm_status mrm_model_config_from_meta(mrm_model_config *cfg, const mrm_meta *meta, const char *path, mrm_error *err) {
    char where[1200];
    snprintf(where, sizeof where, "%s: __metadata__", path ? path : "metadata");
    mrm_model_config_default(cfg);
    const char *fmt = mrm_meta_get(meta, "format");
    if (fmt && strcmp(fmt, "mrmnet-1") != 0)
        return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: format: '%s', expected 'mrmnet-1'", where, fmt);
    /* files written before the attention key: hi_attention 0/1 */
    const char *hi = mrm_meta_get(meta, "hi_attention");
    if (hi) {
        if (strcmp(hi, "0") && strcmp(hi, "1"))
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: hi_attention: '%s' is not 0 or 1", where, hi);
        cfg->attention = hi[0] == '1' ? MRM_ATTENTION_BOTH : MRM_ATTENTION_LOW;
    }
    for (int i = 0; i < N_KEYS; i++) {
        const char *v = mrm_meta_get(meta, keys[i].key);
        if (!v) continue;
        mrm_status s = set_key(cfg, &keys[i], v, where, err);
        if (s) return err ? (err->code = MRM_ERR_FORMAT) : MRM_ERR_FORMAT;
    }
    if (hi && mrm_meta_get(meta, "attention")) {
        int h = cfg->attention == MRM_ATTENTION_BOTH || cfg->attention == MRM_ATTENTION_HIGH;
        if (h != (hi[0] == '1'))
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: hi_attention '%s' contradicts attention '%s'", where, hi,
                            attention_names[cfg->attention]);
    }
    mrm_status s = mrm_model_config_check(cfg, err);
    if (!s) mrm_model_config_normalize(cfg);
    if (s) {
        mrm_error_prefix(err, "%s", where);
        return err ? (err->code = MRM_ERR_FORMAT) : MRM_ERR_FORMAT;
    }
    return MRM_OK;
}
