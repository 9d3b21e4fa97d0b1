/* mrmnet public API: data. Included by mrmnet.h; see the conventions there. */
#ifndef MRMNET_DATA_H
#define MRMNET_DATA_H

#include "../mrmnet.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif

#endif
