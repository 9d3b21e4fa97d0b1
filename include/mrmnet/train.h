/* mrmnet public API: train. Included by mrmnet.h; see the conventions there. */
#ifndef MRMNET_TRAIN_H
#define MRMNET_TRAIN_H

#include "../mrmnet.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif

#endif
