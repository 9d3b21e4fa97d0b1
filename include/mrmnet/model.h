/* mrmnet public API: model. Included by mrmnet.h; see the conventions there. */
#ifndef MRMNET_MODEL_H
#define MRMNET_MODEL_H

#include "../mrmnet.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif

#endif
