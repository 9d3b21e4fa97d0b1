/* Shared pieces of the binary clinical-format readers (SCP-ECG, DICOM waveforms, EDF/EDF+):
 * little-endian loads, record allocation, and the in-memory / file entry points of each. */
#ifndef MRM_IO_BINFMT_H
#define MRM_IO_BINFMT_H

#include <stddef.h>
#include <stdint.h>

#include "mrmnet.h"

/* Largest file a binary-format reader loads whole (an EDF read through its path is not loaded). */
#define BINFMT_MAX_FILE_BYTES ((size_t)1 << 30)

static inline uint16_t binfmt_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t binfmt_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Allocates rec->signals and rec->checks for n_signals (checks marked "not checked") and, unless
 * header_only, rec->data for n_signals x n_samples doubles set to NaN. The caller has checked the
 * counts against the file. */
mrm_status mrm_binfmt_record_alloc(mrm_record *rec, int n_signals, long long n_samples, int header_only,
                               const char *name, mrm_error *err);

/* Sets rec->name to the base name of path without its extension. */
void mrm_binfmt_record_name(mrm_record *rec, const char *path);

/* Sets rec->format, and rec->acquired (ISO 8601) from base_date ("dd/mm/yyyy") and base_time. */
void mrm_binfmt_finish(mrm_record *rec, const char *format);

/* Converts a voltage unit to its factor to millivolts (1e-3 for "uV", 1 for "mV", 1e3 for "V");
 * 0 when the unit is not a voltage the readers know. */
double mrm_binfmt_unit_to_mv(const char *unit);

/* The lead named by an SCP-ECG lead identifier (EN 1064 table; the MDC_ECG_LEAD codes of
 * ISO/IEEE 11073 number the leads the same way): "I", "V1", "aVR", ...; NULL if unknown. */
const char *mrm_binfmt_scp_lead_name(int id);

/* The readers. `name` names the data in messages (the file's path for the file entry points).
 * flags: MRM_READ_HEADER_ONLY, MRM_READ_REPRESENTATIVE. Values are in the physical units the
 * file states (signals[i].units; SCP-ECG: uV), gain in stored units per physical unit. On failure
 * rec is left empty. */
mrm_status mrm_scp_read_mem(mrm_record *rec, const uint8_t *buf, size_t len, const char *name, int flags,
                            mrm_error *err);
mrm_status mrm_scp_read_file(mrm_record *rec, const char *path, int flags, mrm_error *err);
mrm_status mrm_dicom_read_mem(mrm_record *rec, const uint8_t *buf, size_t len, const char *name, int flags,
                              mrm_error *err);
mrm_status mrm_dicom_read_file(mrm_record *rec, const char *path, int flags, mrm_error *err);
mrm_status mrm_edf_read_mem(mrm_record *rec, const uint8_t *buf, size_t len, const char *name, int flags,
                            mrm_error *err);
mrm_status mrm_edf_read_file(mrm_record *rec, const char *path, int flags, mrm_error *err);

/* Content sniffing: 1 when buf (the first len bytes of a file) looks like the format. */
int mrm_scp_sniff(const uint8_t *buf, size_t len);
int mrm_dicom_sniff(const uint8_t *buf, size_t len);
int mrm_edf_sniff(const uint8_t *buf, size_t len);

#endif
