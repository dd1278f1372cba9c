/* deploy.h: a trained network out of the compiler: its weights read from a
 * checkpoint (weights.c), the inference C (infer.c) and ONNX (onnx.c).
 *
 * Kept apart from cnnc.h: these are the only parts of the compiler that
 * read a trainer's checkpoint, and weights.c links the runtime's reader
 * (runtime/ckpt.c) rather than a copy of it. */
#ifndef CNNC_DEPLOY_H
#define CNNC_DEPLOY_H

#include "cnnc.h"

/* A layer's trained values, in double (exactly the checkpoint's floats),
 * in the layouts of its Param and Buffer (PyTorch's). */
typedef struct LayerWeights {
    double *param[2];    /* as l->params; NULL past l->nparams */
    double *buffer[3];   /* as l->buffers: the checkpoint's when it holds
                            them, else their starting values */
} LayerWeights;

typedef struct Weights {
    LayerWeights *at;    /* [nlayers] */
    int nlayers;
} Weights;

/* Reads the checkpoint at path for n, with every check of the trainer's
 * loader: a tensor the network lacks, a missing or mis-shaped one, a
 * corrupt file. On failure prints "cnnc: error: ..." and returns NULL.
 * src: the network's source, whose hash a checkpoint of a different
 * network is told by (a warning, as the trainer gives). */
Weights *weights_load(const Network *n, const Source *src, const char *path);
void weights_free(Weights *w);

/* Where a layer's argument of this key is in l->args (the kinds keep their
 * argument enums to themselves; the deploy emitters look them up by name). */
const ArgVal *layer_arg(const Layer *l, const char *key);

typedef struct InferOptions {
    const char *prefix;   /* NAME of NAME_predict */
    const char *source;   /* the .net file's name, for the header comment */
    const char *weights_path;
    const char *calibrate;  /* --calibrate's file (int8) */
} InferOptions;

/* The network as one self-contained C99 file of float inference. False on
 * a write error. */
bool emit_inference(FILE *out, const Network *n, const Weights *w, const InferOptions *o);

/* --quantize=int8: the network's steps, checked to be ones int8 covers,
 * and its activation scales calibrated on the samples of the file
 * calibrate (printed to stderr per layer as the file is written). NULL
 * with a message on an error. */
typedef struct Quantized Quantized;
Quantized *quant_prepare(const Network *n, const Weights *w, const char *calibrate);
void quant_free(Quantized *q);
bool emit_quantized(FILE *out, const Quantized *q, const InferOptions *o);

/* The network as an ONNX model (opset 13). False on a write error. */
bool emit_onnx(FILE *out, const Network *n, const Weights *w);

#endif /* CNNC_DEPLOY_H */
