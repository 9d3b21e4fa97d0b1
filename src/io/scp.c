/* SCP-ECG (EN 1064, versions 1.x and 2.x): the pointer section (0), patient and acquisition tags
 * (1), Huffman tables (2, the standard's default table or the file's own), lead definitions (3),
 * QRS locations (4), reference beats (5) and rhythm data (6). Every count, length and offset is
 * checked against the file before it is used; the file CRC and every section's CRC (CRC-CCITT,
 * polynomial 0x1021, initial value 0xFFFF) must match. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "io/binfmt.h"

#define SCP_MAX_SECTIONS 1024  /* section identifiers the pointer table may name */
#define SCP_MAX_TABLES 256
#define SCP_MAX_CODES 1024

typedef struct {
    size_t off, len; /* byte offset of the section header in the file, length including it */
    int present;
} scp_section;

typedef struct {
    uint8_t prefix_bits, total_bits, mode;
    int16_t base;
    uint32_t code; /* the prefix as it appears in the bit stream, first bit most significant */
} scp_code;

typedef struct {
    int n;
    scp_code *codes;
} scp_table;

typedef struct {
    const uint8_t *p;
    size_t len;       /* bytes of the file that count (the file-length field) */
    const char *name; /* for messages */
    int version;      /* protocol version of section 0 (10, 11, 13, 20, ...) */
    scp_section sec[12];
    /* section 2 */
    int huffman;      /* 0: samples stored as int16 (no section 2) */
    int n_tables;
    scp_table *tables;
} scp_file;

static uint16_t crc_ccitt(const uint8_t *p, size_t n) {
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++) crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

static uint32_t reverse_bits(uint32_t v, int n) {
    uint32_t r = 0;
    for (int i = 0; i < n; i++) r |= ((v >> i) & 1u) << (n - 1 - i);
    return r;
}

/* The default table of EN 1064 (annex C): 0, +-1 .. +-8 by prefix codes of 1 to 10 bits, then
 * 8-bit and 16-bit originals after the 10-bit prefixes 1111111110 and 1111111111. Codes are given
 * here as they appear in the stream. */
static const scp_code default_codes[19] = {
    {1, 1, 1, 0, 0x0},     {3, 3, 1, 1, 0x4},     {3, 3, 1, -1, 0x5},    {4, 4, 1, 2, 0xc},
    {4, 4, 1, -2, 0xd},    {5, 5, 1, 3, 0x1c},    {5, 5, 1, -3, 0x1d},   {6, 6, 1, 4, 0x3c},
    {6, 6, 1, -4, 0x3d},   {7, 7, 1, 5, 0x7c},    {7, 7, 1, -5, 0x7d},   {8, 8, 1, 6, 0xfc},
    {8, 8, 1, -6, 0xfd},   {9, 9, 1, 7, 0x1fc},   {9, 9, 1, -7, 0x1fd},  {10, 10, 1, 8, 0x3fc},
    {10, 10, 1, -8, 0x3fd}, {10, 18, 1, 0, 0x3fe}, {10, 26, 1, 0, 0x3ff},
};

static const char *const scp_lead_names[] = {
    "unspecified", "I", "II", "V1", "V2", "V3", "V4", "V5", "V6", "V7", "V2R", "V3R", "V4R", "V5R", "V6R", "V7R",
    "X", "Y", "Z", "CC5", "CM5", "LA", "RA", "LL", "fI", "fE", "fC", "fA", "fM", "fF", "fH", "dI", "dII", "dV1",
    "dV2", "dV3", "dV4", "dV5", "dV6", "dV7", "dV2R", "dV3R", "dV4R", "dV5R", "dV6R", "dV7R", "dX", "dY", "dZ",
    "dCC5", "dCM5", "dLA", "dRA", "dLL", "dfI", "dfE", "dfC", "dfA", "dfM", "dfF", "dfH", "III", "aVR", "aVL",
    "aVF", "-aVR", "V8", "V9", "V8R", "V9R", "D", "A", "J", "Defib", "Extern", "A1", "A2", "A3", "A4", "dV8",
    "dV9", "dV8R", "dV9R", "dD", "dA", "dJ"};

const char *mrm_binfmt_scp_lead_name(int id) {
    if (id >= 0 && id < (int)(sizeof scp_lead_names / sizeof *scp_lead_names)) return scp_lead_names[id];
    return NULL;
}

static const char *sec_name(int id) {
    static const char *const n[] = {"section 0 (pointers)", "section 1 (header)", "section 2 (Huffman tables)",
                                    "section 3 (lead definitions)", "section 4 (QRS locations)",
                                    "section 5 (reference beats)", "section 6 (rhythm data)"};
    return id >= 0 && id <= 6 ? n[id] : "section";
}

/* ---- sections 0 and CRCs -------------------------------------------------------------------- */

static mrm_status check_section_header(const scp_file *f, size_t off, size_t len, int id, mrm_error *err) {
    if (len < 16)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: section %d: length %zu is shorter than its 16-byte header", f->name,
                        id, len);
    if (off > f->len || len > f->len - off)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: section %d: bytes %zu..%zu lie past the end of the file (%zu bytes)",
                        f->name, id, off + 1, off + len, f->len);
    const uint8_t *h = f->p + off;
    int hid = binfmt_le16(h + 2);
    uint32_t hlen = binfmt_le32(h + 4);
    if (hid != id)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: the pointer to section %d leads to byte %zu, where section %d begins",
                        f->name, id, off + 1, hid);
    if (hlen != len)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: section %d: its header says %u bytes, the pointer section %zu", f->name,
                        id, hlen, len);
    uint16_t want = binfmt_le16(h), got = crc_ccitt(h + 2, len - 2);
    if (want != got)
        return mrm_fail(err, MRM_ERR_CHECK, "%s: section %d: CRC mismatch (stored 0x%04X, computed 0x%04X)", f->name,
                        id, want, got);
    return MRM_OK;
}

static mrm_status parse_pointers(scp_file *f, mrm_error *err) {
    if (f->len < 6 + 16)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: %zu bytes is too short for an SCP-ECG file", f->name, f->len);
    size_t len0 = binfmt_le32(f->p + 6 + 4);
    mrm_status st = check_section_header(f, 6, len0, 0, err);
    if (st) return st;
    f->version = f->p[6 + 9];
    if ((len0 - 16) % 10 != 0)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: section 0: %zu bytes of pointers is not a whole number of 10-byte entries",
                        f->name, len0 - 16);
    size_t n = (len0 - 16) / 10;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *e = f->p + 6 + 16 + 10 * i;
        int id = binfmt_le16(e);
        size_t len = binfmt_le32(e + 2), index = binfmt_le32(e + 6);
        if (len == 0) continue;
        if (id >= SCP_MAX_SECTIONS)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: section 0: pointer %zu names section %d", f->name, i + 1, id);
        if (index == 0)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: section 0: section %d has %zu bytes at index 0 (indices start at 1)",
                            f->name, id, len);
        st = check_section_header(f, index - 1, len, id, err);
        if (st) return st;
        if (id < 12) {
            if (f->sec[id].present)
                return mrm_fail(err, MRM_ERR_FORMAT, "%s: section 0: section %d is listed twice", f->name, id);
            f->sec[id] = (scp_section){index - 1, len, 1};
        }
    }
    if (!f->sec[0].present) f->sec[0] = (scp_section){6, len0, 1};
    return MRM_OK;
}

/* ---- section 1: patient and acquisition tags ------------------------------------------------ */

static void parse_header(const scp_file *f, mrm_record *rec) {
    if (!f->sec[1].present) return;
    const uint8_t *p = f->p + f->sec[1].off + 16, *end = f->p + f->sec[1].off + f->sec[1].len;
    int age = -1, birth_y = 0, acq_y = 0, acq_m = 0, acq_d = 0, birth_m = 0, birth_d = 0;
    while (end - p >= 3) {
        int tag = p[0];
        size_t n = binfmt_le16(p + 1);
        const uint8_t *v = p + 3;
        if (tag == 255 || n > (size_t)(end - v)) break;
        if (tag == 4 && n >= 3) {
            int value = binfmt_le16(v), unit = v[2];
            if (unit == 0 || unit == 1) age = value;
            else if (unit == 2) age = value / 12;
            else if (unit == 3) age = value / 52;
            else if (unit == 4) age = value / 365;
            else if (unit == 5) age = 0;
            if (value == 0 && unit == 0) age = -1;
        } else if (tag == 5 && n >= 4) {
            birth_y = binfmt_le16(v);
            birth_m = v[2];
            birth_d = v[3];
        } else if (tag == 8 && n >= 1) {
            snprintf(rec->sex, sizeof rec->sex, "%s", v[0] == 1 ? "Male" : v[0] == 2 ? "Female" : "");
        } else if (tag == 25 && n >= 4) {
            acq_y = binfmt_le16(v);
            acq_m = v[2];
            acq_d = v[3];
            if (acq_y > 0 && acq_m >= 1 && acq_m <= 12 && acq_d >= 1 && acq_d <= 31)
                snprintf(rec->base_date, sizeof rec->base_date, "%02d/%02d/%04d", acq_d, acq_m, acq_y);
        } else if (tag == 26 && n >= 3) {
            if (v[0] < 24 && v[1] < 60 && v[2] < 61)
                snprintf(rec->base_time, sizeof rec->base_time, "%02d:%02d:%02d", v[0], v[1], v[2]);
        }
        p = v + n;
    }
    if (age < 0 && birth_y > 0 && acq_y >= birth_y && rec->base_date[0]) {
        age = acq_y - birth_y;
        if (acq_m < birth_m || (acq_m == birth_m && acq_d < birth_d)) age--;
    }
    if (age >= 0 && age < 150) rec->age = age;
}

/* ---- section 2: Huffman tables -------------------------------------------------------------- */

static void free_tables(scp_file *f) {
    for (int i = 0; i < f->n_tables; i++)
        if (f->tables[i].codes != default_codes) free(f->tables[i].codes);
    free(f->tables);
    f->tables = NULL;
    f->n_tables = 0;
}

static mrm_status parse_tables(scp_file *f, mrm_error *err) {
    if (!f->sec[2].present) {
        f->huffman = 0;
        return MRM_OK;
    }
    f->huffman = 1;
    const uint8_t *p = f->p + f->sec[2].off + 16;
    size_t room = f->sec[2].len - 16;
    if (room < 2) return mrm_fail(err, MRM_ERR_FORMAT, "%s: section 2: no table count", f->name);
    int n = binfmt_le16(p);
    p += 2;
    room -= 2;
    if (n == 19999) {
        f->tables = calloc(1, sizeof *f->tables);
        if (!f->tables) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", f->name);
        f->n_tables = 1;
        f->tables[0].n = 19;
        f->tables[0].codes = (scp_code *)default_codes;
        return MRM_OK;
    }
    if (n < 1 || n > SCP_MAX_TABLES)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: section 2: %d Huffman tables (1..%d, or 19999 for the default)",
                        f->name, n, SCP_MAX_TABLES);
    f->tables = calloc((size_t)n, sizeof *f->tables);
    if (!f->tables) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", f->name);
    f->n_tables = n;
    for (int t = 0; t < n; t++) {
        if (room < 2) return mrm_fail(err, MRM_ERR_FORMAT, "%s: section 2: table %d: truncated", f->name, t + 1);
        int nc = binfmt_le16(p);
        p += 2;
        room -= 2;
        if (nc < 1 || nc > SCP_MAX_CODES || (size_t)nc * 9 > room)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: section 2: table %d: %d code structures do not fit in %zu bytes",
                            f->name, t + 1, nc, room);
        scp_code *c = calloc((size_t)nc, sizeof *c);
        if (!c) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", f->name);
        f->tables[t].codes = c;
        f->tables[t].n = nc;
        for (int i = 0; i < nc; i++, p += 9, room -= 9) {
            c[i].prefix_bits = p[0];
            c[i].total_bits = p[1];
            c[i].mode = p[2];
            c[i].base = (int16_t)binfmt_le16(p + 3);
            uint32_t stored = binfmt_le32(p + 5);
            if (c[i].prefix_bits < 1 || c[i].prefix_bits > 32 || c[i].total_bits < c[i].prefix_bits ||
                c[i].total_bits - c[i].prefix_bits > 32)
                return mrm_fail(err, MRM_ERR_FORMAT, "%s: section 2: table %d code %d: %d prefix bits, %d bits in all",
                                f->name, t + 1, i + 1, c[i].prefix_bits, c[i].total_bits);
            if (c[i].prefix_bits < 32 && (stored >> c[i].prefix_bits) != 0)
                return mrm_fail(err, MRM_ERR_FORMAT, "%s: section 2: table %d code %d: code 0x%X has more than %d bits",
                                f->name, t + 1, i + 1, stored, c[i].prefix_bits);
            if (c[i].mode == 0 && (c[i].base < 1 || c[i].base > n))
                return mrm_fail(err, MRM_ERR_FORMAT, "%s: section 2: table %d code %d: switches to table %d of %d",
                                f->name, t + 1, i + 1, c[i].base, n);
            c[i].code = reverse_bits(stored, c[i].prefix_bits);
        }
    }
    return MRM_OK;
}

/* Decodes `want` values of one lead from `len` bytes. */
static mrm_status decode_lead(const scp_file *f, const uint8_t *src, size_t len, long long want, int32_t *out,
                              const char *what, mrm_error *err) {
    if (!f->huffman) {
        if ((unsigned long long)want * 2 > len)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: %s: %lld int16 samples need %lld bytes, there are %zu", f->name, what,
                            want, want * 2, len);
        for (long long i = 0; i < want; i++) out[i] = (int16_t)binfmt_le16(src + 2 * i);
        return MRM_OK;
    }
    unsigned long long nbits = (unsigned long long)len * 8, pos = 0;
    const scp_table *tab = &f->tables[0];
    long long got = 0;
    while (got < want) {
        uint32_t code = 0;
        int bits = 0, found = -1;
        while (found < 0) {
            if (pos >= nbits || bits >= 32)
                return mrm_fail(err, MRM_ERR_FORMAT,
                                "%s: %s: broken Huffman stream: %s at bit %llu after %lld of %lld samples", f->name, what,
                                pos >= nbits ? "the data end inside a code" : "no code matches", pos, got, want);
            code = code << 1 | ((src[pos >> 3] >> (7 - (pos & 7))) & 1u);
            pos++;
            bits++;
            for (int i = 0; i < tab->n; i++)
                if (tab->codes[i].prefix_bits == bits && tab->codes[i].code == code) {
                    found = i;
                    break;
                }
        }
        const scp_code *c = &tab->codes[found];
        if (c->mode == 0) {
            tab = &f->tables[c->base - 1];
            continue;
        }
        int extra = c->total_bits - c->prefix_bits;
        if (extra == 0) {
            out[got++] = c->base;
            continue;
        }
        if (nbits - pos < (unsigned long long)extra)
            return mrm_fail(err, MRM_ERR_FORMAT,
                            "%s: %s: broken Huffman stream: a %d-bit value runs past the end of the data after %lld of %lld samples",
                            f->name, what, extra, got, want);
        uint64_t v = 0;
        for (int b = 0; b < extra; b++, pos++) v = v << 1 | ((src[pos >> 3] >> (7 - (pos & 7))) & 1u);
        int64_t sv = (v & ((uint64_t)1 << (extra - 1))) ? (int64_t)v - ((int64_t)1 << extra) : (int64_t)v;
        if (sv < INT32_MIN || sv > INT32_MAX)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: %s: value %lld out of range", f->name, what, (long long)sv);
        out[got++] = (int32_t)sv;
    }
    return MRM_OK;
}

/* Undoes first or second difference encoding, in 64-bit arithmetic; refuses values that leave
 * the int32 range (no real ECG gets there; a corrupt stream does). */
static mrm_status undifference(int32_t *x, long long n, int order, const char *name, const char *what, mrm_error *err) {
    if (order == 0) return MRM_OK;
    int64_t prev = 0, prev2 = 0;
    for (long long i = 0; i < n; i++) {
        int64_t v;
        if (order == 1) v = i == 0 ? x[i] : x[i] + prev;
        else v = i < 2 ? x[i] : x[i] + 2 * prev - prev2;
        if (v < INT32_MIN || v > INT32_MAX)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: %s: sample %lld leaves the 32-bit range after difference decoding",
                            name, what, i + 1);
        x[i] = (int32_t)v;
        prev2 = prev;
        prev = v;
    }
    return MRM_OK;
}

/* Sections 5 and 6 share a layout: AVM (nV), sample interval (us), difference order, a flag
 * byte, one 16-bit byte count per lead, then the leads' data. */
typedef struct {
    int avm, interval_us, diff, flag;
    const uint8_t *data[256];
    size_t bytes[256];
} scp_signal_section;

static mrm_status parse_signal_section(const scp_file *f, int id, int n_leads, scp_signal_section *s, mrm_error *err) {
    const uint8_t *p = f->p + f->sec[id].off + 16;
    size_t room = f->sec[id].len - 16;
    if (room < 6 + 2 * (size_t)n_leads)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: %s: %zu bytes cannot hold the header and %d lead lengths", f->name,
                        sec_name(id), room, n_leads);
    s->avm = binfmt_le16(p);
    s->interval_us = binfmt_le16(p + 2);
    s->diff = p[4];
    s->flag = p[5];
    if (s->avm == 0) return mrm_fail(err, MRM_ERR_FORMAT, "%s: %s: amplitude value multiplier is 0", f->name, sec_name(id));
    if (s->interval_us == 0) return mrm_fail(err, MRM_ERR_FORMAT, "%s: %s: sample interval is 0", f->name, sec_name(id));
    if (s->diff > 2)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: %s: difference encoding %d (0, 1 or 2)", f->name, sec_name(id), s->diff);
    size_t off = 6 + 2 * (size_t)n_leads;
    for (int l = 0; l < n_leads; l++) {
        size_t b = binfmt_le16(p + 6 + 2 * l);
        if (b > room - off)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: %s: lead %d: %zu bytes of data lie past the section's end", f->name,
                            sec_name(id), l + 1, b);
        s->data[l] = p + off;
        s->bytes[l] = b;
        off += b;
    }
    return MRM_OK;
}

/* Most samples `bytes` of encoded data can hold (Huffman codes are at least one bit). */
static long long max_samples(const scp_file *f, size_t bytes) {
    return f->huffman ? (long long)bytes * 8 : (long long)bytes / 2;
}

static mrm_status read_scp(mrm_record *rec, scp_file *f, int flags, mrm_error *err) {
    const char *name = f->name;
    if (f->len < 6) return mrm_fail(err, MRM_ERR_FORMAT, "%s: %zu bytes is too short for an SCP-ECG file", name, f->len);
    size_t stated = binfmt_le32(f->p + 2);
    if (stated > f->len || stated < 6 + 16)
        return mrm_fail(err, MRM_ERR_FORMAT,
                        "%s: file length field says %zu bytes, the file has %zu: not a standard SCP-ECG file (truncated, or a "
                        "non-conforming writer)",
                        name, stated, f->len);
    f->len = stated;
    uint16_t want = binfmt_le16(f->p), got = crc_ccitt(f->p + 2, f->len - 2);
    if (want != got)
        return mrm_fail(err, MRM_ERR_CHECK, "%s: file CRC mismatch (stored 0x%04X, computed 0x%04X): corrupt, or not a standard SCP-ECG file",
                        name, want, got);
    mrm_status st = parse_pointers(f, err);
    if (st) return st;
    if (f->version != 10 && f->version != 11 && f->version != 12 && f->version != 13 && f->version != 20)
        return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: section 0: protocol version %d.%d (1.x and 2.0 are read)", name,
                        f->version / 10, f->version % 10);
    if (!f->sec[3].present) return mrm_fail(err, MRM_ERR_FORMAT, "%s: no section 3 (lead definitions)", name);
    if (!f->sec[6].present) return mrm_fail(err, MRM_ERR_FORMAT, "%s: no section 6 (rhythm data)", name);
    st = parse_tables(f, err);
    if (st) return st;

    /* section 3 */
    const uint8_t *s3 = f->p + f->sec[3].off + 16;
    size_t room3 = f->sec[3].len - 16;
    if (room3 < 2) return mrm_fail(err, MRM_ERR_FORMAT, "%s: section 3: no lead count", name);
    int n_leads = s3[0], flags3 = s3[1];
    if (n_leads == 0) return mrm_fail(err, MRM_ERR_FORMAT, "%s: section 3: 0 leads", name);
    if (2 + 9 * (size_t)n_leads > room3)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: section 3: %d lead definitions need %d bytes, the section has %zu", name,
                        n_leads, 2 + 9 * n_leads, room3);
    int refsub = flags3 & 1;
    long long n_samples = 0;
    uint32_t starts[256], ends[256];
    for (int l = 0; l < n_leads; l++) {
        starts[l] = binfmt_le32(s3 + 2 + 9 * l);
        ends[l] = binfmt_le32(s3 + 2 + 9 * l + 4);
        if (starts[l] < 1 || ends[l] < starts[l])
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: section 3: lead %d: samples %u..%u", name, l + 1, starts[l], ends[l]);
        if (ends[l] > n_samples) n_samples = ends[l];
    }
    if (n_samples > max_samples(f, f->sec[6].len))
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: section 3: samples up to %lld, section 6's %zu bytes hold at most %lld",
                        name, n_samples, f->sec[6].len, max_samples(f, f->sec[6].len));

    scp_signal_section s6, s5;
    st = parse_signal_section(f, 6, n_leads, &s6, err);
    if (st) return st;
    if (s6.flag)
        return mrm_fail(err, MRM_ERR_UNSUPPORTED,
                        "%s: section 6: bimodal compression (decimation outside the QRS complexes) is not supported", name);
    for (int l = 0; l < n_leads; l++) {
        long long n = (long long)ends[l] - starts[l] + 1;
        if (n > max_samples(f, s6.bytes[l]))
            return mrm_fail(err, MRM_ERR_FORMAT,
                            "%s: section 3: lead %d has %lld samples, section 6 holds %zu bytes for it (at most %lld samples)",
                            name, l + 1, n, s6.bytes[l], max_samples(f, s6.bytes[l]));
    }

    /* reference beat subtraction: sections 4 and 5 */
    int n_qrs = 0, fiducial = 0;
    long long ref_len = 0;
    const uint8_t *qrs = NULL;
    int rep = (flags & MRM_READ_REPRESENTATIVE) != 0;
    if (refsub || rep) {
        if (!f->sec[4].present || !f->sec[5].present)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: %s, but section %d is missing", name,
                            refsub ? "section 3 says reference beats were subtracted" : "representative beats were asked for",
                            f->sec[4].present ? 5 : 4);
        const uint8_t *s4 = f->p + f->sec[4].off + 16;
        size_t room4 = f->sec[4].len - 16;
        if (room4 < 6) return mrm_fail(err, MRM_ERR_FORMAT, "%s: section 4: truncated header", name);
        int ref_ms = binfmt_le16(s4);
        fiducial = binfmt_le16(s4 + 2);
        n_qrs = binfmt_le16(s4 + 4);
        if (6 + 14 * (size_t)n_qrs > room4)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: section 4: %d QRS complexes need %d bytes, the section has %zu", name,
                            n_qrs, 6 + 14 * n_qrs, room4);
        qrs = s4 + 6;
        st = parse_signal_section(f, 5, n_leads, &s5, err);
        if (st) return st;
        if (refsub && s5.interval_us != s6.interval_us)
            return mrm_fail(err, MRM_ERR_UNSUPPORTED,
                            "%s: section 5: reference beats sampled every %d us, rhythm every %d us (only equal rates are supported)",
                            name, s5.interval_us, s6.interval_us);
        ref_len = (long long)ref_ms * 1000 / s5.interval_us;
        for (int l = 0; l < n_leads; l++)
            if (ref_len > max_samples(f, s5.bytes[l]))
                return mrm_fail(err, MRM_ERR_FORMAT,
                                "%s: section 5: lead %d: a %d ms reference beat has %lld samples, %zu bytes hold at most %lld",
                                name, l + 1, ref_ms, ref_len, s5.bytes[l], max_samples(f, s5.bytes[l]));
    }

    const scp_signal_section *src = rep ? &s5 : &s6;
    st = mrm_binfmt_record_alloc(rec, n_leads, rep ? ref_len : n_samples, flags & MRM_READ_HEADER_ONLY, name, err);
    if (st) return st;
    rec->fs = 1e6 / src->interval_us;
    rec->representative = rep;
    for (int l = 0; l < n_leads; l++) {
        mrm_signal_info *si = &rec->signals[l];
        int id = s3[2 + 9 * l + 8];
        if (mrm_binfmt_scp_lead_name(id))
            snprintf(si->description, sizeof si->description, "%s", mrm_binfmt_scp_lead_name(id));
        else
            snprintf(si->description, sizeof si->description, "SCP lead %d", id);
        si->gain = 1e3 / src->avm; /* units per uV: one unit is avm nV */
        si->format = 0;
        snprintf(si->units, sizeof si->units, "uV");
    }
    parse_header(f, rec);
    if (flags & MRM_READ_HEADER_ONLY) return MRM_OK;
    if (rep) { /* the reference beats of section 5 */
        int32_t *beat = malloc(((size_t)ref_len + 1) * sizeof *beat);
        if (!beat) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", name);
        for (int l = 0; l < n_leads && !st; l++) {
            char what[192];
            snprintf(what, sizeof what, "section 5: lead %d (%s)", l + 1, rec->signals[l].description);
            st = decode_lead(f, s5.data[l], s5.bytes[l], ref_len, beat, what, err);
            if (!st) st = undifference(beat, ref_len, s5.diff, name, what, err);
            for (long long i = 0; !st && i < ref_len; i++) rec->data[(size_t)l * ref_len + i] = beat[i] * s5.avm * 1e-3;
        }
        free(beat);
        return st;
    }

    int32_t *buf = malloc(((size_t)n_samples + 1) * sizeof *buf);
    int32_t *ref = malloc(((size_t)ref_len + 1) * sizeof *ref);
    if (!buf || !ref) {
        free(buf);
        free(ref);
        return mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate %lld samples", name, n_samples);
    }
    for (int l = 0; l < n_leads && !st; l++) {
        long long n = (long long)ends[l] - starts[l] + 1;
        char what[192];
        snprintf(what, sizeof what, "section 6: lead %d (%s)", l + 1, rec->signals[l].description);
        st = decode_lead(f, s6.data[l], s6.bytes[l], n, buf, what, err);
        if (!st) st = undifference(buf, n, s6.diff, name, what, err);
        if (st) break;
        double *out = rec->data + (size_t)l * n_samples + (starts[l] - 1);
        double scale = s6.avm * 1e-3; /* uV per unit */
        for (long long i = 0; i < n; i++) out[i] = buf[i] * scale;
        if (!refsub) continue;
        snprintf(what, sizeof what, "section 5: lead %d (%s)", l + 1, rec->signals[l].description);
        st = decode_lead(f, s5.data[l], s5.bytes[l], ref_len, ref, what, err);
        if (!st) st = undifference(ref, ref_len, s5.diff, name, what, err);
        if (st) break;
        double rscale = s5.avm * 1e-3;
        for (int q = 0; q < n_qrs; q++) {
            const uint8_t *e = qrs + 14 * q;
            int type = binfmt_le16(e);
            long long sb = binfmt_le32(e + 2), fc = binfmt_le32(e + 6), se = binfmt_le32(e + 10);
            if (type != 0 || sb == 0) continue;
            if (sb > se || se > n_samples || fc < sb || fc > se) {
                st = mrm_fail(err, MRM_ERR_FORMAT, "%s: section 4: QRS %d: subtraction zone %lld..%lld around %lld is outside "
                                                   "the %lld samples",
                              name, q + 1, sb, se, fc, n_samples);
                break;
            }
            double *x = rec->data + (size_t)l * n_samples;
            for (long long i = sb; i <= se; i++) {
                long long j = i - fc + fiducial; /* 1-based index into the reference beat */
                if (j >= 1 && j <= ref_len && i >= starts[l] && i <= ends[l]) x[i - 1] += ref[j - 1] * rscale;
            }
        }
    }
    free(buf);
    free(ref);
    return st;
}

int mrm_scp_sniff(const uint8_t *buf, size_t len) {
    const uint8_t *p = buf;
    if (len < 6 + 16) return 0;
    /* section 0 begins at byte 7 with ID 0 and (in version 2) the reserved bytes "SCPECG" */
    if (binfmt_le16(p + 6 + 2) != 0) return 0;
    if (!memcmp(p + 6 + 10, "SCPECG", 6)) return 1;
    uint32_t len0 = binfmt_le32(p + 6 + 4);
    return len0 >= 16 + 10 && (len0 - 16) % 10 == 0 && binfmt_le32(p + 2) >= len0;
}

mrm_status mrm_scp_read_mem(mrm_record *rec, const uint8_t *buf, size_t len, const char *name, int flags, mrm_error *err) {
    memset(rec, 0, sizeof *rec);
    rec->age = -1;
    scp_file f;
    memset(&f, 0, sizeof f);
    f.p = buf;
    f.len = len;
    f.name = name ? name : "(memory)";
    mrm_status st = read_scp(rec, &f, flags, err);
    free_tables(&f);
    if (st) {
        mrm_record_free(rec);
        return st;
    }
    mrm_binfmt_record_name(rec, f.name);
    mrm_binfmt_finish(rec, "scp-ecg");
    return MRM_OK;
}

mrm_status mrm_scp_read_file(mrm_record *rec, const char *path, int flags, mrm_error *err) {
    memset(rec, 0, sizeof *rec);
    rec->age = -1;
    char *data = NULL;
    size_t len = 0;
    mrm_status st = mrm_read_file(path, BINFMT_MAX_FILE_BYTES, &data, &len, err);
    if (st) return st;
    st = mrm_scp_read_mem(rec, (const uint8_t *)data, len, path, flags, err);
    free(data);
    return st;
}
