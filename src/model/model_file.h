/* The model held by a safetensors file already read (model files and training checkpoints). */
#ifndef MRM_MODEL_MODEL_FILE_H
#define MRM_MODEL_MODEL_FILE_H

#include "io/safetensors.h"
#include "mrmnet.h"

/* Creates *out from f's architecture (metadata n_classes, width, hi_attention, else the tensors'
 * shapes) and fills it: every tensor present with its dtype and shape, every value finite, BN
 * running variances >= 0, counts >= 0, and no tensor the model lacks, except a checkpoint's
 * optimizer state (adam.m, adam.v, sgd.momentum) when the metadata names an "optimizer".
 * Messages name f->path and the tensor. */
mrm_status mrm_model_from_st(mrm_model **out, const st_file *f, mrm_error *err);

#endif
