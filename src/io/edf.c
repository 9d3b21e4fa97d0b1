/* EDF and EDF+ (continuous) recordings: the ECG channels, picked by label.
 *
 * The header is parsed and checked here against the file's size before anything else looks at
 * the file: header size = 256 x (signals + 1), data records x record size = the rest of the file,
 * digital and physical ranges, samples per record, a positive (possibly non-integer) record
 * duration. A file read through its path is then handed to EDFlib (Debian libedf-dev), which
 * reads and scales the samples; its header is cross-checked with ours. The in-memory entry point
 * decodes the data records itself (little-endian int16, scaled as the header states), since
 * EDFlib reads only from a path. EDFlib keeps its open files in a global table, so calls into it
 * are serialised by a mutex.
 *
 * Channels: those whose label names an ECG ("ECG", "EKG", or a lead name such as "II" or "V5",
 * with an "ECG "/"EKG " prefix removed from the lead name); when no label does, the channels
 * whose physical dimension is a voltage. Channels at a rate other than the first picked one's are
 * left out and listed in the record's comments. Values are in the physical units the header
 * states, scaled from the digital range to the physical range as EDF defines. */
#include <ctype.h>
#include <edflib.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "io/binfmt.h"

#define EDF_MAX_SIGNALS 640 /* EDFlib's limit */

typedef struct {
    char label[17], transducer[81], dim[9];
    double pmin, pmax;
    int dmin, dmax;
    long long spr;           /* samples per data record */
    size_t offset;           /* byte offset of the signal within a data record */
    int annotations;         /* an "EDF Annotations" signal */
} edf_signal;

typedef struct {
    int plus;                /* EDF+ (continuous) */
    int ns;
    long long n_records;
    double duration;         /* of a data record, s */
    size_t header_bytes, record_bytes;
    char patient[81], recording[81], startdate[81], starttime[81];
    edf_signal *sig;
} edf_header;

/* Copies a fixed-width ASCII field, trimming spaces; refuses non-printable bytes. */
static int field(const uint8_t *p, size_t n, char *out) {
    size_t b = 0, e = n;
    for (size_t i = 0; i < n; i++)
        if (p[i] < 32 || p[i] > 126) return -1;
    while (b < e && p[b] == ' ') b++;
    while (e > b && p[e - 1] == ' ') e--;
    memcpy(out, p + b, e - b);
    out[e - b] = '\0';
    return 0;
}

static int parse_double(const char *s, double *v) {
    if (!*s) return -1;
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return *end || errno || !isfinite(*v) ? -1 : 0;
}

static int parse_ll(const char *s, long long *v) {
    if (!*s) return -1;
    char *end;
    errno = 0;
    *v = strtoll(s, &end, 10);
    return *end || errno ? -1 : 0;
}

/* Parses and checks the header in p[0..avail) against a file of file_size bytes. */
static mrm_status parse_header(edf_header *h, const uint8_t *p, size_t avail, unsigned long long file_size,
                               const char *name, mrm_error *err) {
    memset(h, 0, sizeof *h);
    if (avail < 256)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: %zu bytes is shorter than an EDF header (256 bytes)", name, avail);
    if (p[0] == 0xFF && !memcmp(p + 1, "BIOSEMI", 7))
        return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: a BDF (24-bit) file; EDF (16-bit) is read", name);
    if (memcmp(p, "0       ", 8))
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: version field is not \"0\": not an EDF file", name);
    static const struct {
        size_t off, len;
        const char *what;
    } fixed[] = {{8, 80, "patient"}, {88, 80, "recording"}, {168, 8, "start date"}, {176, 8, "start time"},
                 {184, 8, "header size"}, {192, 44, "reserved"}, {236, 8, "number of data records"},
                 {244, 8, "data record duration"}, {252, 4, "number of signals"}};
    char val[9][81];
    for (size_t i = 0; i < 9; i++)
        if (field(p + fixed[i].off, fixed[i].len, val[i]))
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: header field '%s' (bytes %zu..%zu) holds non-ASCII bytes", name,
                            fixed[i].what, fixed[i].off + 1, fixed[i].off + fixed[i].len);
    snprintf(h->patient, sizeof h->patient, "%s", val[0]);
    snprintf(h->recording, sizeof h->recording, "%s", val[1]);
    snprintf(h->startdate, sizeof h->startdate, "%s", val[2]);
    snprintf(h->starttime, sizeof h->starttime, "%s", val[3]);
    if (!strncmp(val[5], "EDF+D", 5))
        return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: EDF+D (discontinuous) recording; only continuous ones are read", name);
    h->plus = !strncmp(val[5], "EDF+C", 5);
    long long hb, ns;
    if (parse_ll(val[8], &ns) || ns < 1 || ns > EDF_MAX_SIGNALS)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: number of signals '%s' (1..%d)", name, val[8], EDF_MAX_SIGNALS);
    h->ns = (int)ns;
    if (parse_ll(val[4], &hb) || hb != 256 * (ns + 1))
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: header size '%s', %lld signals need %lld bytes", name, val[4], ns,
                        256 * (ns + 1));
    h->header_bytes = (size_t)hb;
    if ((unsigned long long)hb > file_size)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: the header needs %lld bytes, the file has %llu", name, hb, file_size);
    if (avail < (size_t)hb)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: the header needs %lld bytes, %zu were read", name, hb, avail);
    if (parse_double(val[7], &h->duration) || h->duration < 0)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: data record duration '%s'", name, val[7]);
    if (parse_ll(val[6], &h->n_records) || h->n_records < 0)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: number of data records '%s'%s", name, val[6],
                        !strcmp(val[6], "-1") ? " (-1: the recording was not closed)" : "");
    h->sig = calloc((size_t)ns, sizeof *h->sig);
    if (!h->sig) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", name);
    const uint8_t *q = p + 256;
    size_t off = 0;
    for (int s = 0; s < h->ns; s++) {
        edf_signal *g = &h->sig[s];
        char pmin[9], pmax[9], dmin[9], dmax[9], spr[9];
        size_t N = (size_t)ns;
        if (field(q + 16 * s, 16, g->label) || field(q + 16 * N + 80 * s, 80, g->transducer) ||
            field(q + 96 * N + 8 * s, 8, g->dim) || field(q + 104 * N + 8 * s, 8, pmin) ||
            field(q + 112 * N + 8 * s, 8, pmax) || field(q + 120 * N + 8 * s, 8, dmin) ||
            field(q + 128 * N + 8 * s, 8, dmax) || field(q + 216 * N + 8 * s, 8, spr))
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: signal %d: header fields hold non-ASCII bytes", name, s + 1);
        long long dn, dx;
        g->annotations = !strcmp(g->label, "EDF Annotations");
        if (parse_ll(spr, &g->spr) || g->spr < 1 || g->spr > (1 << 24))
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: signal %d (%s): samples per data record '%s'", name, s + 1, g->label,
                            spr);
        if (parse_ll(dmin, &dn) || parse_ll(dmax, &dx) || dn < -32768 || dx > 32767 || dn >= dx)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: signal %d (%s): digital range '%s'..'%s'", name, s + 1, g->label,
                            dmin, dmax);
        g->dmin = (int)dn;
        g->dmax = (int)dx;
        if (parse_double(pmin, &g->pmin) || parse_double(pmax, &g->pmax) || g->pmin == g->pmax)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: signal %d (%s): physical range '%s'..'%s'", name, s + 1, g->label,
                            pmin, pmax);
        g->offset = off;
        off += 2 * (size_t)g->spr;
    }
    h->record_bytes = off;
    if (h->duration <= 0)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: data record duration '%s' s (a positive number of seconds)", name, val[7]);
    unsigned long long data = file_size - (unsigned long long)hb;
    if ((unsigned long long)h->n_records > data / h->record_bytes || data != (unsigned long long)h->n_records * h->record_bytes)
        return mrm_fail(err, MRM_ERR_FORMAT,
                        "%s: %lld data records of %zu bytes need %llu bytes after the header, the file has %llu%s", name,
                        h->n_records, h->record_bytes, (unsigned long long)h->n_records * h->record_bytes, data,
                        data < (unsigned long long)h->n_records * h->record_bytes ? " (truncated)" : "");
    if (h->n_records == 0) return mrm_fail(err, MRM_ERR_FORMAT, "%s: no data records", name);
    return MRM_OK;
}

static const char *strip_ecg_prefix(const char *label) {
    if (!strncasecmp(label, "ECG", 3) || !strncasecmp(label, "EKG", 3)) {
        const char *r = label + 3;
        while (*r == ' ' || *r == '-' || *r == '_' || *r == ':') r++;
        if (*r) return r;
    }
    return label;
}

static int is_lead_name(const char *s) {
    static const char *const leads[] = {"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
                                        "Lead I", "Lead II", "Lead III", "Lead aVR", "Lead aVL", "Lead aVF", "Lead V1",
                                        "Lead V2", "Lead V3", "Lead V4", "Lead V5", "Lead V6", "MLII", "MLI", "MLIII"};
    for (size_t i = 0; i < sizeof leads / sizeof *leads; i++)
        if (!strcasecmp(s, leads[i])) return 1;
    return 0;
}

static int is_ecg_label(const char *label) {
    if (strcasestr(label, "ECG") || strcasestr(label, "EKG")) return 1;
    return is_lead_name(label);
}

/* Picks the channels; fills idx[] and returns their number (0: none). */
static int pick_channels(const edf_header *h, int *idx) {
    int n = 0;
    for (int s = 0; s < h->ns; s++)
        if (!h->sig[s].annotations && is_ecg_label(h->sig[s].label)) idx[n++] = s;
    if (n) return n;
    for (int s = 0; s < h->ns; s++)
        if (!h->sig[s].annotations && mrm_binfmt_unit_to_mv(h->sig[s].dim) > 0) idx[n++] = s;
    return n;
}

static void set_metadata(mrm_record *rec, const edf_header *h) {
    int d, m, y;
    if (sscanf(h->startdate, "%2d.%2d.%2d", &d, &m, &y) == 3) {
        y += y >= 85 ? 1900 : 2000;
        char mon[4];
        int y4;
        /* EDF+: "Startdate dd-MMM-yyyy" in the recording field gives the 4-digit year */
        if (h->plus && sscanf(h->recording, "Startdate %2d-%3[A-Za-z]-%4d", &d, mon, &y4) == 3) y = y4;
        if (d >= 1 && d <= 31 && m >= 1 && m <= 12 && y >= 1900 && y <= 9999)
            snprintf(rec->base_date, sizeof rec->base_date, "%02u/%02u/%04u", (unsigned)d % 100u, (unsigned)m % 100u,
                     (unsigned)y % 10000u);
    }
    int hh, mm, ss;
    if (sscanf(h->starttime, "%2d.%2d.%2d", &hh, &mm, &ss) == 3 && hh >= 0 && hh < 24 && mm >= 0 && mm < 60 &&
        ss >= 0 && ss < 61)
        snprintf(rec->base_time, sizeof rec->base_time, "%02u:%02u:%02u", (unsigned)hh % 100u, (unsigned)mm % 100u,
                 (unsigned)ss % 100u);
    if (!h->plus) return;
    /* EDF+ patient field: code sex birthdate name ... */
    char code[81], sex[81], birth[81];
    if (sscanf(h->patient, "%80s %80s %80s", code, sex, birth) >= 2) {
        if (!strcmp(sex, "M")) snprintf(rec->sex, sizeof rec->sex, "Male");
        else if (!strcmp(sex, "F")) snprintf(rec->sex, sizeof rec->sex, "Female");
        static const char *const months[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                             "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
        int bd, by;
        char bm[4];
        if (rec->base_date[0] && sscanf(birth, "%2d-%3[A-Za-z]-%4d", &bd, bm, &by) == 3) {
            int bmon = 0;
            for (int i = 0; i < 12; i++)
                if (!strcasecmp(bm, months[i])) bmon = i + 1;
            int ad, am, ay;
            if (bmon && sscanf(rec->base_date, "%d/%d/%d", &ad, &am, &ay) == 3 && ay >= by) {
                int age = ay - by - (am < bmon || (am == bmon && ad < bd));
                if (age >= 0 && age < 150) rec->age = age;
            }
        }
    }
}

/* Sets up the record's signals from the header; fills pick[] with the file's signal numbers. */
static mrm_status setup_record(mrm_record *rec, const edf_header *h, int header_only, int *pick, int *n_pick,
                               const char *name, mrm_error *err) {
    int idx[EDF_MAX_SIGNALS];
    int n = pick_channels(h, idx);
    if (n == 0) {
        char list[512] = "";
        size_t used = 0;
        for (int s = 0; s < h->ns && used < sizeof list - 40; s++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s'%s' (%s)", s ? ", " : "", h->sig[s].label,
                                     h->sig[s].dim);
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: no ECG channel: no label names an ECG lead and none is in volts; channels: %s",
                        name, list);
    }
    long long spr = h->sig[idx[0]].spr;
    int kept = 0, dropped = 0;
    for (int k = 0; k < n; k++) {
        if (h->sig[idx[k]].spr == spr) pick[kept++] = idx[k];
        else dropped++;
    }
    *n_pick = kept;
    if (h->n_records > (long long)(((unsigned long long)1 << 40) / (unsigned long long)spr))
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: %lld records of %lld samples", name, h->n_records, spr);
    mrm_status st = mrm_binfmt_record_alloc(rec, kept, h->n_records * spr, header_only, name, err);
    if (st) return st;
    rec->fs = (double)spr / h->duration;
    for (int k = 0; k < kept; k++) {
        const edf_signal *g = &h->sig[pick[k]];
        mrm_signal_info *si = &rec->signals[k];
        snprintf(si->description, sizeof si->description, "%s", strip_ecg_prefix(g->label));
        si->gain = (g->dmax - g->dmin) / (g->pmax - g->pmin); /* digital units per physical unit */
        snprintf(si->units, sizeof si->units, "%s", g->dim);
        si->adc_res = 16;
        si->format = 16;
        double base = g->dmin - g->pmin * (g->dmax - g->dmin) / (g->pmax - g->pmin);
        si->baseline = si->adc_zero = (int)lrint(fmax(fmin(base, 1e9), -1e9));
    }
    if (dropped) {
        rec->comments = calloc((size_t)dropped, sizeof *rec->comments);
        if (!rec->comments) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", name);
        for (int k = 0; k < n; k++) {
            const edf_signal *g = &h->sig[idx[k]];
            if (g->spr == spr) continue;
            char line[256];
            snprintf(line, sizeof line, "channel '%s' left out: %.6g Hz, the first ECG channel has %.6g Hz", g->label,
                     g->spr / h->duration, rec->fs);
            rec->comments[rec->n_comments] = strdup(line);
            if (!rec->comments[rec->n_comments]) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", name);
            rec->n_comments++;
        }
    }
    set_metadata(rec, h);
    return MRM_OK;
}

/* Physical value of digital sample d. */
static double scale(const edf_signal *g, int d) {
    double bit = (g->pmax - g->pmin) / (g->dmax - g->dmin);
    return (d - g->dmin) * bit + g->pmin;
}

int mrm_edf_sniff(const uint8_t *buf, size_t len) {
    const uint8_t *p = buf;
    if (len < 256 || memcmp(p, "0       ", 8)) return 0;
    for (int i = 184; i < 192; i++)
        if (!(isdigit(p[i]) || p[i] == ' ')) return 0;
    return 1;
}

mrm_status mrm_edf_read_mem(mrm_record *rec, const uint8_t *buf, size_t len, const char *name, int flags, mrm_error *err) {
    memset(rec, 0, sizeof *rec);
    rec->age = -1;
    name = name ? name : "(memory)";
    if (flags & MRM_READ_REPRESENTATIVE)
        return mrm_fail(err, MRM_ERR_NOTFOUND, "%s: EDF holds no representative beats", name);
    edf_header h;
    const uint8_t *p = buf;
    int pick[EDF_MAX_SIGNALS], n_pick = 0;
    mrm_status st = parse_header(&h, p, len, len, name, err);
    if (!st) st = setup_record(rec, &h, flags & MRM_READ_HEADER_ONLY, pick, &n_pick, name, err);
    if (!st && !(flags & MRM_READ_HEADER_ONLY)) {
        for (int k = 0; k < n_pick; k++) {
            const edf_signal *g = &h.sig[pick[k]];
            double *out = rec->data + (size_t)k * rec->n_samples;
            for (long long r = 0; r < h.n_records; r++) {
                const uint8_t *src = p + h.header_bytes + (size_t)r * h.record_bytes + g->offset;
                for (long long i = 0; i < g->spr; i++)
                    out[r * g->spr + i] = scale(g, (int16_t)binfmt_le16(src + 2 * i));
            }
        }
    }
    free(h.sig);
    if (st) {
        mrm_record_free(rec);
        return st;
    }
    mrm_binfmt_record_name(rec, name);
    mrm_binfmt_finish(rec, "edf");
    return MRM_OK;
}

static pthread_mutex_t edflib_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *edflib_error(int code) {
    switch (code) {
    case EDFLIB_MALLOC_ERROR: return "out of memory";
    case EDFLIB_NO_SUCH_FILE_OR_DIRECTORY: return "cannot open the file";
    case EDFLIB_FILE_CONTAINS_FORMAT_ERRORS: return "the file does not follow the EDF/EDF+ specification";
    case EDFLIB_MAXFILES_REACHED: return "too many files open";
    case EDFLIB_FILE_READ_ERROR: return "read error";
    case EDFLIB_FILE_ALREADY_OPENED: return "the file is already open";
    case EDFLIB_FILETYPE_ERROR: return "not an EDF file";
    case EDFLIB_FILE_IS_DISCONTINUOUS: return "discontinuous EDF+D file";
    }
    return "unknown EDFlib error";
}

/* Reads the picked channels through EDFlib, checking its view of the file against ours. */
static mrm_status read_edflib(mrm_record *rec, const edf_header *h, const int *pick, int n_pick, const char *path,
                              mrm_error *err) {
    struct edf_hdr_struct *eh = calloc(1, sizeof *eh);
    if (!eh) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", path);
    mrm_status st = MRM_OK;
    pthread_mutex_lock(&edflib_lock);
    int rc = edfopen_file_readonly(path, eh, EDFLIB_DO_NOT_READ_ANNOTATIONS);
    if (rc < 0) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s: EDFlib: %s", path, edflib_error(eh->filetype));
        goto out;
    }
    /* EDFlib numbers signals without the annotation signals */
    int map[EDF_MAX_SIGNALS], k = 0;
    for (int s = 0; s < h->ns; s++) map[s] = h->sig[s].annotations ? -1 : k++;
    if (eh->edfsignals != k || eh->datarecords_in_file != h->n_records) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s: EDFlib sees %d signals and %lld data records, the header %d and %lld", path,
                      eh->edfsignals, eh->datarecords_in_file, k, h->n_records);
        goto close;
    }
    for (int c = 0; c < n_pick && !st; c++) {
        int es = map[pick[c]];
        const edf_signal *g = &h->sig[pick[c]];
        if (eh->signalparam[es].smp_in_file != rec->n_samples || eh->signalparam[es].dig_min != g->dmin ||
            eh->signalparam[es].dig_max != g->dmax) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s: signal %d (%s): EDFlib's view of the header differs from ours", path,
                          pick[c] + 1, g->label);
            break;
        }
        double *out = rec->data + (size_t)c * rec->n_samples;
        if (edfseek(eh->handle, es, 0, EDFSEEK_SET) != 0) {
            st = mrm_fail(err, MRM_ERR_IO, "%s: signal %d (%s): EDFlib cannot seek", path, pick[c] + 1, g->label);
            break;
        }
        long long done = 0;
        while (done < rec->n_samples) {
            long long chunk = rec->n_samples - done;
            if (chunk > (1 << 20)) chunk = 1 << 20;
            int got = edfread_physical_samples(eh->handle, es, (int)chunk, out + done);
            if (got != (int)chunk) {
                st = mrm_fail(err, MRM_ERR_IO, "%s: signal %d (%s): EDFlib read %d of %lld samples at sample %lld", path,
                              pick[c] + 1, g->label, got, chunk, done);
                break;
            }
            done += chunk;
        }
    }
close:
    edfclose_file(eh->handle);
out:
    pthread_mutex_unlock(&edflib_lock);
    free(eh);
    return st;
}

mrm_status mrm_edf_read_file(mrm_record *rec, const char *path, int flags, mrm_error *err) {
    memset(rec, 0, sizeof *rec);
    rec->age = -1;
    if (flags & MRM_READ_REPRESENTATIVE)
        return mrm_fail(err, MRM_ERR_NOTFOUND, "%s: EDF holds no representative beats", path);
    FILE *f = fopen(path, "rb");
    if (!f) return mrm_fail(err, errno == ENOENT ? MRM_ERR_NOTFOUND : MRM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return mrm_fail(err, MRM_ERR_IO, "%s: not a regular file", path);
    }
    size_t cap = 256 * (EDF_MAX_SIGNALS + 1);
    uint8_t *head = malloc(cap);
    if (!head) {
        fclose(f);
        return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t got = fread(head, 1, cap, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(head);
        return mrm_fail(err, MRM_ERR_IO, "%s: read error", path);
    }
    edf_header h;
    int pick[EDF_MAX_SIGNALS], n_pick = 0;
    mrm_status st = parse_header(&h, head, got, (unsigned long long)sb.st_size, path, err);
    free(head);
    if (!st) st = setup_record(rec, &h, flags & MRM_READ_HEADER_ONLY, pick, &n_pick, path, err);
    if (!st && !(flags & MRM_READ_HEADER_ONLY)) st = read_edflib(rec, &h, pick, n_pick, path, err);
    free(h.sig);
    if (st) {
        mrm_record_free(rec);
        return st;
    }
    mrm_binfmt_record_name(rec, path);
    mrm_binfmt_finish(rec, "edf");
    return MRM_OK;
}
