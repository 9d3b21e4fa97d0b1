/* mrmnet: the status codes and the error record of every fallible call, shared by the full
 * library (mrmnet.h) and the dependency-free inference engine (mrmnet/engine.h). */
#ifndef MRMNET_STATUS_H
#define MRMNET_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mrm_status {
    MRM_OK = 0,
    MRM_ERR_IO = 1,         /* a file could not be opened, read or written */
    MRM_ERR_FORMAT = 2,     /* a file's content is malformed or inconsistent */
    MRM_ERR_NOMEM = 3,      /* an allocation failed or a size overflowed */
    MRM_ERR_INVALID = 4,    /* an argument is out of range or inconsistent */
    MRM_ERR_NOTFOUND = 5,   /* a file, record, tensor or key is missing */
    MRM_ERR_UNSUPPORTED = 6,/* valid input that this version does not handle */
    MRM_ERR_CHECK = 7       /* data read fine but failed validation (checksum, initial value) */
} mrm_status;

#define MRM_ERROR_MSG_LEN 1024

/* An error: its status and a message such as
 * "records100/00000/00001_lr.hea:3: signal 2: gain: '0' is not a positive number". */
typedef struct mrm_error {
    mrm_status code;
    char msg[MRM_ERROR_MSG_LEN];
} mrm_error;

/* The message of a status code ("I/O error", ...). */
const char *mrm_status_name(mrm_status code);

#ifdef __cplusplus
}
#endif

#endif
