/* Learning-rate schedules inside the training loop (the public part is in mrmnet/train.h). */
#ifndef MRM_TRAIN_SCHEDULE_H
#define MRM_TRAIN_SCHEDULE_H

#include "mrmnet/train.h"

/* The rate of epoch `epoch` (1-based) of `epochs`; PLATEAU returns plateau_lr (its current rate). */
double train_lr_of_epoch(const mrm_lr_schedule *s, double base, int epoch, int epochs, double plateau_lr);
/* PLATEAU only: after an epoch with validation metric `metric` (NaN: no change), updates the
 * best, the count of epochs without improvement and the rate, as ReduceLROnPlateau(mode 'max',
 * threshold 1e-4 'rel', cooldown 0). */
void train_plateau_update(const mrm_lr_schedule *s, double metric, double *best, int *bad, double *lr);

#endif
