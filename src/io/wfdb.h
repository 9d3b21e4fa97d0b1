/* WFDB records (internal): header parsing, signal-file decoding, MATLAB files.
 *
 * A WFDB record is a text header (".hea") naming one or more signal files. Signals that name
 * the same file on consecutive header lines share it: their samples are interleaved frame by
 * frame (sample-major). The header grammar, as PhysioNet's WFDB library reads it:
 *
 *   record line: name[/segments] [n_signals [fs[/counter_fs[(base_counter)]] [n_samples
 *                [base_time [base_date]]]]]
 *   signal line: file format[xN][:skew][+offset] [gain[(baseline)][/units] [adc_res [adc_zero
 *                [init_value [checksum [block_size [description ...]]]]]]]
 *   comment:     #text  (anywhere)
 */
#ifndef MRM_IO_WFDB_H
#define MRM_IO_WFDB_H

#include <stddef.h>
#include <stdint.h>

#include "mrmnet.h"

/* What the header says beyond mrm_record. */
typedef struct wfdb_header_extra {
    int n_samples_given; /* 0 when the record line gives no sample count (or 0, as WFDB reads it) */
    int *signal_line;    /* n_signals entries: the header line (1-based) of each signal */
} wfdb_header_extra;

/* Parses a header held in memory (text need not be NUL-terminated). `filename` names it in
 * messages ("dir/00001_lr.hea:3: signal 2: gain: ..."). Fills rec's header fields (signals,
 * comments, age, sex, dx; data and checks stay NULL) and extra. On failure rec and extra are left
 * empty. Safe on any bytes: this is the entry point for fuzzing. */
mrm_status wfdb_header_parse(const char *text, size_t len, const char *filename, mrm_record *rec,
                             wfdb_header_extra *extra, mrm_error *err);
void wfdb_header_extra_free(wfdb_header_extra *extra);

/* 1 if this version decodes the storage format. */
int wfdb_format_supported(int format);

/* Bytes that n_values consecutive values of a format occupy (packed formats round up as WFDB
 * writes them); -1 on overflow. */
long long wfdb_format_bytes(int format, long long n_values);

/* Values held in n_bytes of a format (the inverse of wfdb_format_bytes, rounding down). */
long long wfdb_format_values(int format, long long n_bytes);

/* The digital value that marks an invalid (missing) sample in a format; 0 and *has = 0 for
 * format 8, which has none. */
int32_t wfdb_invalid_code(int format, int *has);

/* Decodes n_frames frames of n_interleaved signals from `bytes` into digital[n_frames *
 * n_interleaved] (frame-major, as stored). `bytes` must hold wfdb_format_bytes(format,
 * n_frames * n_interleaved) bytes plus 4 readable padding bytes. init_values[n_interleaved]: the
 * start of the running sums of format 8 (first differences); unused by other formats. */
void wfdb_decode(int format, const uint8_t *bytes, int n_interleaved, long long n_frames,
                 const int *init_values, int32_t *digital);

/* Reads the samples of the record whose header `header_path` was parsed into rec/extra; signal
 * files are looked up in `dir`. Fills rec->data and rec->checks (or, with MRM_READ_HEADER_ONLY,
 * only derives n_samples when the header gives none). */
mrm_status wfdb_read_signals(mrm_record *rec, const wfdb_header_extra *extra, const char *dir,
                             const char *header_path, int flags, mrm_error *err);
/* The same with the signal files held in memory: each file the header names is looked up by
 * name among files[n_files] (never on disk). */
mrm_status wfdb_read_signals_mem(mrm_record *rec, const wfdb_header_extra *extra, const mrm_mem_file *files,
                                 int n_files, const char *header_name, int flags, mrm_error *err);

/* Reads a MATLAB v5 file of the original CPSC2018 release (struct ECG: sex, age, data 12 x T
 * double in mV, 500 Hz) into rec: from a path, or held in memory (`filename` names it in messages
 * and gives the record its name; safe on any bytes: the entry point for fuzzing). */
mrm_status mat_read_cpsc_v5(mrm_record *rec, const char *path, mrm_error *err);
/* 1 if buf starts with a MATLAB v5 header (the text "MATLAB", version 0x0100, 'IM' or 'MI'). */
int mat_cpsc_v5_sniff(const uint8_t *buf, size_t len);
mrm_status mat_read_cpsc_v5_mem(mrm_record *rec, const uint8_t *buf, size_t len, const char *filename, int flags,
                                mrm_error *err);

/* Checks a MATLAB v4 signal file's matrix header against the WFDB header that reads it as format
 * 16 after `byte_offset` bytes (Challenge 2020 style: 'val', n_interleaved x n_samples int16).
 * Files whose first bytes are not a v4 header are left alone (returns MRM_OK). */
mrm_status mat_check_v4_header(const char *path, const uint8_t *head, size_t head_len,
                               long long byte_offset, int n_interleaved, long long n_samples,
                               long long file_size, mrm_error *err);

#endif
