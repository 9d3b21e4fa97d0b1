/* ECG file formats other than WFDB (internal): each reader is registered in one table
 * (src/io/formats.c) with a test of the file's content and an in-memory entry point.
 *
 * mrm_record_read and mrm_record_read_mem pick the reader by content: magic bytes for binary
 * formats, the root element and its namespace for XML. A reader fills the same mrm_record as the
 * WFDB reader: one entry of `signals` per lead (description = the lead's name as the file gives
 * it, units, gain = units per physical unit as stored, `derived` for leads the reader computed),
 * `checks` all -1 (not checked) unless the format has checksums, `data` in physical units, NaN for
 * a missing sample, and what the file says of the patient and the acquisition. */
#ifndef MRM_IO_FORMATS_H
#define MRM_IO_FORMATS_H

#include <stddef.h>
#include <stdint.h>

#include "mrmnet.h"

/* The largest file a reader takes into memory. */
#define MRM_FORMAT_MAX_BYTES ((size_t)512 << 20)
/* How much of a file the content tests see (a test must decide on this much or less). */
#define MRM_FORMAT_SNIFF_BYTES ((size_t)64 << 10)

typedef struct mrm_format {
    const char *name;  /* short name, stored in mrm_record.format: "hl7-aecg" */
    const char *title; /* for messages: "HL7 aECG XML" */
    /* 1 if the first `len` bytes (len <= MRM_FORMAT_SNIFF_BYTES, maybe the whole file) are this
     * format's; must be safe on any bytes. */
    int (*sniff)(const uint8_t *buf, size_t len);
    /* Reads a whole file held in memory. `filename` names it in messages. On failure rec is left
     * empty (mrm_record_free-safe). Safe on any bytes: the entry point for fuzzing. */
    mrm_status (*read)(mrm_record *rec, const uint8_t *buf, size_t len, const char *filename, int flags, mrm_error *err);
    /* Optional: reads the file through its path instead of loading it whole (EDF, through EDFlib);
     * NULL: mrm_record_read loads the file and calls `read`. */
    mrm_status (*read_path)(mrm_record *rec, const char *path, int flags, mrm_error *err);
} mrm_format;

/* The registered formats, ended by an entry whose name is NULL. */
extern const mrm_format mrm_formats[];

/* The format whose content test accepts buf, or NULL. */
const mrm_format *mrm_format_sniff(const uint8_t *buf, size_t len);

/* ---- helpers for readers -------------------------------------------------------------------- */

/* Allocates rec's signals, checks (all -1: not checked) and data (n_signals x n_samples, NaN) and
 * sets n_signals, n_samples, fs, format and name (the file's base name without extension). Refuses
 * counts whose product exceeds `max_values` or that overflow. */
mrm_status mrm_record_alloc(mrm_record *rec, int n_signals, long long n_samples, double fs, const char *format,
                            const char *filename, mrm_error *err);

/* Appends a comment line (copied) to rec->comments. */
mrm_status mrm_record_add_comment(mrm_record *rec, const char *text, mrm_error *err);

/* The root element of an XML document held in memory, without parsing it: skips a byte-order
 * mark, the XML declaration, processing instructions, comments and a DOCTYPE, then reads the
 * first start tag's local name and the namespace its prefix (or the default namespace) is bound
 * to in that tag. Returns 0 and fills local/ns ("" when none), or -1 when the bytes do not start
 * like an XML document. */
int mrm_xml_root(const uint8_t *buf, size_t len, char *local, size_t localsz, char *ns, size_t nssz);

/* ---- the readers ---------------------------------------------------------------------------- */

/* HL7 aECG XML (src/io/aecg.c). */
int mrm_aecg_sniff(const uint8_t *buf, size_t len);
mrm_status mrm_aecg_read(mrm_record *rec, const uint8_t *buf, size_t len, const char *filename, int flags, mrm_error *err);
/* GE MUSE XML (src/io/muse.c). */
int mrm_muse_sniff(const uint8_t *buf, size_t len);
mrm_status mrm_muse_read(mrm_record *rec, const uint8_t *buf, size_t len, const char *filename, int flags, mrm_error *err);
/* Philips Sierra ECG XML (src/io/sierra.c). */
int mrm_sierra_sniff(const uint8_t *buf, size_t len);
mrm_status mrm_sierra_read(mrm_record *rec, const uint8_t *buf, size_t len, const char *filename, int flags, mrm_error *err);

/* SCP-ECG, DICOM ECG waveforms, EDF/EDF+ (src/io/scp.c, dicom.c, edf.c; declared in io/binfmt.h). */

#endif
