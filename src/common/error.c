#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *mrm_status_name(mrm_status code) {
    switch (code) {
    case MRM_OK: return "ok";
    case MRM_ERR_IO: return "I/O error";
    case MRM_ERR_FORMAT: return "format error";
    case MRM_ERR_NOMEM: return "out of memory";
    case MRM_ERR_INVALID: return "invalid argument";
    case MRM_ERR_NOTFOUND: return "not found";
    case MRM_ERR_UNSUPPORTED: return "unsupported";
    case MRM_ERR_CHECK: return "validation failed";
    }
    return "unknown error";
}

mrm_status mrm_fail(mrm_error *err, mrm_status code, const char *fmt, ...) {
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void mrm_error_prefix(mrm_error *err, const char *fmt, ...) {
    if (!err) return;
    char prefix[MRM_ERROR_MSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[MRM_ERROR_MSG_LEN];
    memcpy(old, err->msg, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof err->msg - 3) n = sizeof err->msg - 3;
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    size_t room = sizeof err->msg - n - 3, m = strlen(old);
    if (m > room) m = room;
    memcpy(err->msg + n + 2, old, m);
    err->msg[n + 2 + m] = '\0';
}

void mrm_error_clear(mrm_error *err) {
    if (!err) return;
    err->code = MRM_OK;
    err->msg[0] = '\0';
}
