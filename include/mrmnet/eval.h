/* mrmnet public API: eval. Included by mrmnet.h; see the conventions there. */
#ifndef MRMNET_EVAL_H
#define MRMNET_EVAL_H

#include "../mrmnet.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif

#endif
