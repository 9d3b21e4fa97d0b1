/* mrmnet: MRM-Net (multi-resolution mutual-learning network) for multi-label 12-lead ECG
 * classification, in C. The public API.
 *
 * Conventions, everywhere in the library:
 *  - Functions that can fail return an mrm_status (0 = MRM_OK) and fill the caller's mrm_error
 *    with a message naming the file, the field and the line at fault. `err` may be NULL.
 *  - The library never prints and never exits; it reports progress and log lines only through
 *    callbacks the caller passes in.
 *  - The library keeps no mutable global state: everything lives in objects the caller owns.
 *  - Arrays are float32, C order. A batch of ECGs is (B, 12, 1000): 12 leads x 1000 samples.
 */
#ifndef MRMNET_H
#define MRMNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MRMNET_VERSION "0.1.0"

#include "mrmnet/status.h" /* mrm_status, mrm_error, mrm_status_name */

/* Log and progress callbacks. `user` is passed back unchanged. */
typedef enum mrm_log_level { MRM_LOG_DEBUG, MRM_LOG_INFO, MRM_LOG_WARN, MRM_LOG_ERROR } mrm_log_level;
typedef void (*mrm_log_fn)(void *user, mrm_log_level level, const char *msg);
typedef void (*mrm_progress_fn)(void *user, const char *what, size_t done, size_t total);

#ifdef __cplusplus
}
#endif

/* The areas of the API. */
#include "mrmnet/io.h"     /* WFDB records, MATLAB files, CSV, NumPy .npy, safetensors */
#include "mrmnet/data.h"   /* PTB-XL, CPSC2018 and users' datasets; preprocessing; prepare */
#include "mrmnet/model.h"  /* MRM-Net: create, initialise, load, save, forward, backward */
#include "mrmnet/eval.h"   /* metrics: AUC, F1, Fmax, bootstrap */
#include "mrmnet/train.h"  /* optimizers, checkpoints, the training loop, prediction */
#include "mrmnet/engine_build.h" /* the embeddable engine (mrmnet/engine.h) compiled from a model */

#endif
