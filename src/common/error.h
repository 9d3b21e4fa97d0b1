/* Errors: filling an mrm_error with a formatted message. */
#ifndef MRM_COMMON_ERROR_H
#define MRM_COMMON_ERROR_H

#include "mrmnet.h"

/* Sets err->code and err->msg (printf-style) and returns code; err may be NULL. */
mrm_status mrm_fail(mrm_error *err, mrm_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes err->msg with "prefix: " (for adding the file or record name on the way up). */
void mrm_error_prefix(mrm_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clears err (code MRM_OK, empty message). */
void mrm_error_clear(mrm_error *err);

#endif
