/* mrmnet public API: io. Reading ECG records (WFDB, MATLAB, and the clinical formats listed at
 * mrm_record_read) and writing/reading arrays.
 * Included by mrmnet.h; see the conventions there. */
#ifndef MRMNET_IO_H
#define MRMNET_IO_H

#include "../mrmnet.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- ECG records --------------------------------------------------------------------------- */

/* One signal (lead) of a record, as its WFDB header line describes it. For a record read from a
 * CPSC2018 MATLAB v5 file or another format the fields that do not apply are zero/empty; `gain`
 * is the file's digital units per physical unit where it stores integers, else 1. */
typedef struct mrm_signal_info {
    char file[256];        /* signal file name as written in the header ("" for .mat v5) */
    int format;            /* WFDB storage format: 8, 16, 24, 32, 61, 80, 212, 310, 311, ... */
    long long byte_offset; /* the "+N" prefix of the format field (bytes to skip), else 0 */
    double gain;           /* ADC units per physical unit (200 if the header gives none or 0, as
                              WFDB reads an uncalibrated signal; a negative gain is an error) */
    int baseline;          /* the "(N)" after the gain, else adc_zero */
    char units[32];        /* physical units ("mV"), "" if not given */
    int adc_res;           /* ADC resolution in bits, 0 if not given */
    int adc_zero;          /* ADC zero, 0 if not given */
    int init_value;        /* initial value (first sample's digital value) */
    int has_init_value;
    int checksum;          /* 16-bit checksum as written in the header */
    int has_checksum;
    int block_size;
    char description[128]; /* the lead name: "I", "II", "V1", ... as the file writes it */
    int derived;           /* 1: not stored in the file; the reader computed it from other leads
                              (the limb leads III, aVR, aVL, aVF from I and II) */
} mrm_signal_info;

/* Validation outcome of one signal, filled by mrm_record_read. */
typedef struct mrm_signal_check {
    int checksum_ok;       /* 1 ok, 0 mismatch, -1 not checked (no checksum in header) */
    int computed_checksum; /* sum of the digital samples modulo 65536, as unsigned */
    int init_value_ok;     /* 1 ok, 0 mismatch, -1 not checked */
} mrm_signal_check;

/* A record: header fields and the signals as physical values. */
typedef struct mrm_record {
    char name[256];            /* record name from the header (or the .mat's base name) */
    int n_signals;
    double fs;                 /* sampling frequency, Hz */
    long long n_samples;       /* samples per signal (when the header gives none, as many whole
                                  frames as the signal files hold) */
    mrm_signal_info *signals;  /* n_signals entries */
    mrm_signal_check *checks;  /* n_signals entries */
    double *data;              /* (n_signals, n_samples), signal-major: data[s * n_samples + t];
                                  physical value = (digital - baseline) / gain; NaN where the
                                  digital value is the format's invalid-sample code */
    int n_comments;
    char **comments;           /* header comment lines without the leading '#', trimmed */
    int age;                   /* from "#Age:" or the .mat struct, -1 if unknown */
    char sex[16];              /* from "#Sex:" or the .mat struct, "" if unknown */
    char dx[256];              /* the "#Dx:" value, "" if absent */
    char base_time[32];        /* base time of the record line as written ("11:39:16"), "" if absent */
    char base_date[32];        /* base date of the record line as written, "" if absent */
    char format[16];           /* the format read: "wfdb", "matlab-v5", "hl7-aecg", "ge-muse",
                                  "philips-sierra", "scp-ecg", "dicom", "edf" */
    char acquired[32];         /* acquisition date and time as ISO 8601 ("2003-12-05T10:30:00")
                                  where the file gives it, else "" */
    int representative;        /* 1: data holds representative (median) beats, not the rhythm */
} mrm_record;

/* Flags of mrm_record_read. */
enum {
    MRM_READ_HEADER_ONLY = 1,  /* parse the header, do not read samples (data stays NULL) */
    MRM_READ_STRICT = 2,       /* a checksum or initial-value mismatch is an error (MRM_ERR_CHECK) */
    MRM_READ_REPRESENTATIVE = 4 /* read the representative (median) beats instead of the rhythm, for
                                  the formats that store them (HL7 aECG, GE MUSE, SCP-ECG); an
                                  error where the file has none */
};

/* Reads a record. `path` is a file whose content is one of the formats read from memory (see
 * mrm_record_read_mem; the content decides, not the extension), a record name without extension
 * ("dir/00001_lr": its ".hea", its ".mat", or the one file "dir/00001_lr.*" of such a format),
 * the path of a WFDB ".hea" header, or a ".mat": with a ".hea" of the same name beside it, the WFDB record of the
 * PhysioNet/CinC Challenge 2020 (MATLAB v4 signal file read as format 16+24); without one, a
 * MATLAB v5 file of the original CPSC2018 release (struct ECG with sex, age, data 12 x T in mV,
 * 500 Hz). Signal formats 8, 16, 24, 32, 61, 80, 160, 212, 310, 311; one sample per frame.
 * Errors name the file, line, signal and field ("x.hea:3: signal 2: gain: ..."); a signal file
 * shorter than the header's count is an error, never a short read. Thread-safe: readers in
 * parallel threads share nothing. On failure the record is left empty (safe to free). */
mrm_status mrm_record_read(mrm_record *rec, const char *path, int flags, mrm_error *err);
void mrm_record_free(mrm_record *rec);

/* Reads a record held whole in memory, of a format recognised by its content: HL7 aECG XML, GE
 * MUSE XML, Philips Sierra ECG XML (and the binary formats registered in src/io/formats.c).
 * `filename` names it in messages and gives the record its name. Safe on any bytes: sizes,
 * counts and offsets are checked against the buffer before use. */
mrm_status mrm_record_read_mem(mrm_record *rec, const void *buf, size_t len, const char *filename, int flags,
                               mrm_error *err);

/* A file held in memory, for mrm_wfdb_read_mem: its name as a header names it, and its bytes. */
typedef struct mrm_mem_file {
    const char *name;
    const void *data;
    size_t len;
} mrm_mem_file;

/* Reads a WFDB record held in memory: the header text (`header_name` names it in messages and,
 * without its ".hea", is not used otherwise), and the signal files it names, looked up by name
 * among files[n_files] (nothing is read from disk). Flags and checks as mrm_record_read. Safe on
 * any bytes: the header's counts and offsets are checked against the files' sizes before anything
 * is allocated for the samples. */
mrm_status mrm_wfdb_read_mem(mrm_record *rec, const void *header, size_t header_len, const char *header_name,
                             const mrm_mem_file *files, int n_files, int flags, mrm_error *err);

/* The format name of the record format that `buf` (the start of a file) holds, or NULL when it is
 * none of those mrm_record_read_mem reads. */
const char *mrm_record_sniff(const void *buf, size_t len);

/* What a file is when listing the records of a folder: "wfdb" for a ".hea", "matlab-v5" for a
 * ".mat" without a ".hea" beside it, the format name of a file whose content mrm_record_read_mem
 * reads, or NULL (a signal file of a WFDB record, anything else). */
const char *mrm_record_file_format(const char *path);

/* The path mrm_record_read takes for a record named without extension: "name.hea", "name.mat", or
 * the one file "name.*" (or "name" itself) whose content is a format mrm_record_read_mem reads.
 * Returns 0 and fills out, or -1 when there is none (or several). */
int mrm_record_resolve(const char *name, char *out, size_t outsz);

/* What a read record's checks found (a record read without MRM_READ_STRICT keeps its mismatches):
 * the signals whose checksum or initial value does not match the header, and the samples holding
 * the format's invalid-sample code (NaN in data). */
typedef struct mrm_record_integrity {
    int checksum_mismatches;      /* signals */
    int init_value_mismatches;    /* signals */
    long long invalid_samples;    /* NaN samples over every signal */
} mrm_record_integrity;

/* Fills *out; when `msg` is given, also a description of every problem ("signal 2 (II): checksum
 * mismatch (header 123, data 456); 15 invalid samples"), "" when there is none. Returns the number
 * of problems found (mismatching signals, plus one when there are invalid samples). */
int mrm_record_integrity_check(const mrm_record *rec, mrm_record_integrity *out, char *msg, size_t msgsz);

/* ---- NumPy .npy (version 1.0), float32 or int64, C order ---------------------------------- */

/* Writes a float32 array of `ndim` dimensions atomically. */
mrm_status mrm_npy_write_f32(const char *path, const float *data, int ndim, const long long *shape,
                             mrm_error *err);
/* Reads a float32 array ('<f4', C order, up to 4 dimensions). *data is malloc'ed (caller frees);
 * shape receives ndim values. */
mrm_status mrm_npy_read_f32(const char *path, float **data, int *ndim, long long shape[4], mrm_error *err);
/* The same for a file held in memory (`name` names it in messages). The shape must account for
 * the buffer's bytes exactly before anything is allocated. Safe on any bytes. */
mrm_status mrm_npy_read_f32_mem(const void *buf, size_t len, const char *name, float **data, int *ndim,
                                long long shape[4], mrm_error *err);
/* A float32 array mapped read-only from its file (mrm_npy_map_f32): the pages are read when first
 * touched and may be dropped again under memory pressure, so an array larger than memory can be
 * used record by record. `data` points at the values (count of them, in `shape`). */
typedef struct mrm_npy_map {
    const float *data;
    size_t count;
    int ndim;
    long long shape[4];
    void *base_;        /* the mapping (internal) */
    size_t len_;
    float *owned_;      /* a copy when the data do not start at a multiple of 4 bytes (internal) */
} mrm_npy_map;
/* Maps a '<f4' C-order .npy file read-only. The header is parsed as mrm_npy_read_f32 does and the
 * shape must account for the file's size exactly before anything is mapped; a truncated or
 * padded file is refused naming the file and the header field. The file must not be truncated in
 * place while mapped (mrmnet replaces its files by rename, which leaves a mapping intact). */
mrm_status mrm_npy_map_f32(const char *path, mrm_npy_map *map, mrm_error *err);
/* Tells the kernel how values first .. first+count-1 of the mapping (count 0: all of them) will be
 * read (MRM_NPY_SEQUENTIAL before one pass in order, MRM_NPY_NORMAL after it), or that their pages
 * may go (MRM_NPY_DONTNEED: they are read again from the file when touched; the pages at either
 * end may hold neighbouring values). Advice only: returns nothing. */
enum { MRM_NPY_NORMAL = 0, MRM_NPY_SEQUENTIAL = 1, MRM_NPY_DONTNEED = 2 };
void mrm_npy_map_advise(const mrm_npy_map *map, int advice, size_t first, size_t count);
void mrm_npy_unmap(mrm_npy_map *map);
/* Refuses an array holding NaN or an infinity, naming `path` and the first such element's index
 * ("X.npy: element [1, 3, 250] is nan; the values must be finite"). */
mrm_status mrm_check_finite_f32(const char *path, const float *data, int ndim, const long long *shape, mrm_error *err);

#ifdef __cplusplus
}
#endif

#endif
