/* onnx.c: --emit=onnx, the trained network as an ONNX model (opset 13).
 *
 * The protobuf is written by hand: an ONNX model needs six messages
 * (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto,
 * ValueInfoProto with its TypeProto and TensorShapeProto) and of the wire
 * format only varints, 32-bit floats and length-delimited fields. That is a
 * hundred lines here, against a build-time dependency on protobuf-c, its
 * compiler and a copy (or a distribution's file) of onnx.proto; the field
 * numbers used are listed next to each message below, from onnx.proto.
 *
 * The graph, in PyTorch's layout: input "input" [N, C, H, W] float32 (a
 * vector network: [N, F]), N symbolic; output "output". Tensors are named
 * after the layers' labels. Weights keep the checkpoint's layouts, which
 * are PyTorch's: Conv [n, C/groups, KH, KW]; Dense [n, F] as Gemm's B with
 * transB=1, whose F is numbered channel-major after a Flatten exactly as
 * ONNX's Flatten of an NCHW map numbers it. */
#include "config.h"
#include "deploy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * The wire format
 */

typedef struct Pb {
    unsigned char *b;
    size_t len, cap;
} Pb;

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

static void pb_bytes(Pb *p, const void *data, size_t n)
{
    if (p->len + n > p->cap) {
        p->cap = (p->len + n) * 2 + 64;
        p->b = xrealloc(p->b, p->cap);
    }
    if (n)
        memcpy(p->b + p->len, data, n);
    p->len += n;
}

static void pb_varint(Pb *p, uint64_t v)
{
    unsigned char buf[10];
    int n = 0;
    do {
        buf[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v)
            buf[n] |= 0x80;
        n++;
    } while (v);
    pb_bytes(p, buf, (size_t)n);
}

static void pb_tag(Pb *p, int field, int wire)
{
    pb_varint(p, (uint64_t)field << 3 | (uint64_t)wire);
}

static void pb_int(Pb *p, int field, int64_t v)
{
    pb_tag(p, field, WIRE_VARINT);
    pb_varint(p, (uint64_t)v);
}

static void pb_float(Pb *p, int field, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                          (unsigned char)(u >> 24)};
    pb_tag(p, field, WIRE_FIXED32);
    pb_bytes(p, b, 4);
}

static void pb_data(Pb *p, int field, const void *data, size_t n)
{
    pb_tag(p, field, WIRE_LEN);
    pb_varint(p, n);
    pb_bytes(p, data, n);
}

static void pb_string(Pb *p, int field, const char *s)
{
    pb_data(p, field, s, strlen(s));
}

/* A nested message: child's bytes as a field of p; child is emptied. */
static void pb_message(Pb *p, int field, Pb *child)
{
    pb_data(p, field, child->b, child->len);
    free(child->b);
    *child = (Pb){0};
}

/* ------------------------------------------------------------------------
 * ONNX messages (field numbers from onnx.proto)
 */

enum { ONNX_FLOAT = 1, ONNX_INT64 = 7 };                /* TensorProto.DataType */
enum { ATTR_FLOAT = 1, ATTR_INT = 2, ATTR_INTS = 7 };    /* AttributeProto.type */

/* The graph being built: nodes, initializers, and a counter for the names
 * of the tensors between the nodes of one layer. */
typedef struct Graph {
    Pb body;       /* GraphProto fields: node (1), initializer (5) */
    int temps;
} Graph;

/* AttributeProto: name 1, f 2, i 3, ints 8, type 20. */
static void attr_int(Pb *node, const char *name, int64_t v)
{
    Pb a = {0};
    pb_string(&a, 1, name);
    pb_int(&a, 3, v);
    pb_int(&a, 20, ATTR_INT);
    pb_message(node, 5, &a);
}

static void attr_float(Pb *node, const char *name, double v)
{
    Pb a = {0};
    pb_string(&a, 1, name);
    pb_float(&a, 2, (float)v);
    pb_int(&a, 20, ATTR_FLOAT);
    pb_message(node, 5, &a);
}

static void attr_ints(Pb *node, const char *name, const int64_t *v, int n)
{
    Pb a = {0};
    pb_string(&a, 1, name);
    for (int i = 0; i < n; i++)
        pb_int(&a, 8, v[i]);
    pb_int(&a, 20, ATTR_INTS);
    pb_message(node, 5, &a);
}

/* TensorProto: dims 1, data_type 2, name 8, raw_data 9 (little-endian). */
static void initializer(Graph *g, const char *name, const int64_t *dims, int rank,
                        const double *v, int64_t count)
{
    Pb t = {0};
    for (int i = 0; i < rank; i++)
        pb_int(&t, 1, dims[i]);
    pb_int(&t, 2, ONNX_FLOAT);
    pb_string(&t, 8, name);
    unsigned char *raw = xcalloc((size_t)count + 1, 4);
    for (int64_t i = 0; i < count; i++) {
        float f = (float)v[i];
        uint32_t u;
        memcpy(&u, &f, 4);
        for (int k = 0; k < 4; k++)
            raw[i * 4 + k] = (unsigned char)(u >> (8 * k));
    }
    pb_data(&t, 9, raw, (size_t)count * 4);
    free(raw);
    pb_message(&g->body, 5, &t);
}

static void scalar_initializer(Graph *g, const char *name, double v)
{
    initializer(g, name, NULL, 0, &v, 1);
}

/* NodeProto: input 1, output 2, name 3, op_type 4, attribute 5. The node
 * is returned open for attributes; node_end adds it to the graph. */
static Pb node_begin(const char *op, const char *name, const char *const *ins, int nins,
                     const char *out)
{
    Pb n = {0};
    for (int i = 0; i < nins; i++)
        pb_string(&n, 1, ins[i]);
    pb_string(&n, 2, out);
    pb_string(&n, 3, name);
    pb_string(&n, 4, op);
    return n;
}

static void node_end(Graph *g, Pb *n)
{
    pb_message(&g->body, 1, n);
}

/* A node without attributes. */
static void node(Graph *g, const char *op, const char *name, const char *const *ins, int nins,
                 const char *out)
{
    Pb n = node_begin(op, name, ins, nins, out);
    node_end(g, &n);
}

/* ValueInfoProto: name 1, type 2 (TypeProto: tensor_type 1 (elem_type 1,
 * shape 2 (TensorShapeProto: dim 1 (dim_value 1, dim_param 2)))). The
 * first dimension is the batch, N. */
static void value_info(Pb *graph, int field, const char *name, const int64_t *dims, int rank)
{
    Pb shape = {0}, tensor = {0}, type = {0}, vi = {0};
    for (int i = 0; i < rank; i++) {
        Pb dim = {0};
        if (i == 0)
            pb_string(&dim, 2, "N");
        else
            pb_int(&dim, 1, dims[i]);
        pb_message(&shape, 1, &dim);
    }
    pb_int(&tensor, 1, ONNX_FLOAT);
    pb_message(&tensor, 2, &shape);
    pb_message(&type, 1, &tensor);
    pb_string(&vi, 1, name);
    pb_message(&vi, 2, &type);
    pb_message(graph, field, &vi);
}

/* ------------------------------------------------------------------------
 * The layers as nodes
 */

/* The ONNX name of tensor t: its layer's label, but for the graph's own
 * "input" and "output" (a layer labelled output, as mlp.net's last Dense,
 * gets "output/y"). */
static char *onnx_tensor(const Network *n, int t)
{
    if (t == n->nlayers)
        return xstrdup("output");
    if (t == INPUT_TENSOR)
        return xstrdup(n->norm_channels ? "input/normal" : "input");
    const char *label = n->layers[t - 1].label;
    if (strcmp(label, "input") == 0 || strcmp(label, "output") == 0)
        return xasprintf("%s/y", label);
    return xstrdup(label);
}

/* A name for a tensor inside a layer's nodes: "LABEL/tmpK". */
static char *temp_name(Graph *g, const Layer *l)
{
    return xasprintf("%s/tmp%d", l->label, g->temps++);
}

static char *param_name(const Layer *l, const char *suffix)
{
    return xasprintf("%s.%s", l->label, suffix);
}

static void add_params(Graph *g, const Layer *l, const LayerWeights *lw)
{
    for (int k = 0; k < l->nparams; k++) {
        char *name = param_name(l, l->params[k].suffix);
        initializer(g, name, l->params[k].dims, l->params[k].rank, lw->param[k],
                    l->params[k].count);
        free(name);
    }
}

static void window_attrs(Pb *nd, const Layer *l, const char *size_key)
{
    const ArgVal *k = layer_arg(l, size_key), *s = layer_arg(l, "stride"),
                 *p = layer_arg(l, "padding");
    int64_t kernel[2] = {k->u.size.h, k->u.size.w};
    int64_t strides[2] = {s->u.size.h, s->u.size.w};
    int64_t pads[4] = {p->u.pad.top, p->u.pad.left, p->u.pad.bottom, p->u.pad.right};
    attr_ints(nd, "kernel_shape", kernel, 2);
    attr_ints(nd, "strides", strides, 2);
    attr_ints(nd, "pads", pads, 4);
}

static void onnx_conv(Graph *g, const Layer *l, const LayerWeights *lw, const char *x,
                      const char *y)
{
    add_params(g, l, lw);
    char *w = param_name(l, "weight"), *b = param_name(l, "bias");
    const char *ins[3] = {x, w, b};
    Pb nd = node_begin("Conv", l->label, ins, l->nparams + 1, y);
    window_attrs(&nd, l, "kernel");
    attr_int(&nd, "group", layer_arg(l, "groups")->u.i);
    node_end(g, &nd);
    free(w);
    free(b);
}

static void onnx_dense(Graph *g, const Layer *l, const LayerWeights *lw, const char *x,
                       const char *y)
{
    add_params(g, l, lw);
    char *w = param_name(l, "weight"), *b = param_name(l, "bias");
    const char *ins[3] = {x, w, b};
    Pb nd = node_begin("Gemm", l->label, ins, l->nparams + 1, y);
    attr_int(&nd, "transB", 1);
    node_end(g, &nd);
    free(w);
    free(b);
}

static void onnx_pool(Graph *g, const Layer *l, bool max, const char *x, const char *y)
{
    const char *ins[1] = {x};
    Pb nd = node_begin(max ? "MaxPool" : "AveragePool", l->label, ins, 1, y);
    window_attrs(&nd, l, "size");
    if (!max)
        attr_int(&nd, "count_include_pad", 0);   /* the language's AvgPool */
    node_end(g, &nd);
}

/* GlobalAveragePool gives [N, C, 1, 1]; the trainer's gives a vector. */
static void onnx_globalavg(Graph *g, const Layer *l, const char *x, const char *y)
{
    char *t = temp_name(g, l);
    const char *ins[1] = {x}, *mid[1] = {t};
    node(g, "GlobalAveragePool", l->label, ins, 1, t);
    char *name = xasprintf("%s/flatten", l->label);
    Pb nd = node_begin("Flatten", name, mid, 1, y);
    attr_int(&nd, "axis", 1);
    node_end(g, &nd);
    free(name);
    free(t);
}

/* BatchNorm: BatchNormalization on a map; y = x * s + t on a vector. */
static void onnx_batchnorm(Graph *g, const Layer *l, const LayerWeights *lw, const char *x,
                           const char *y)
{
    int64_t c = l->in.c;
    double eps = layer_arg(l, "eps")->u.f;
    bool affine = layer_arg(l, "affine")->u.b;
    double *ones = xcalloc((size_t)c, sizeof(double)), *zeros = xcalloc((size_t)c, sizeof(double));
    for (int64_t j = 0; j < c; j++)
        ones[j] = 1;
    const double *gamma = affine ? lw->param[0] : ones, *beta = affine ? lw->param[1] : zeros;
    char *sn = param_name(l, "weight"), *bn = param_name(l, "bias");
    if (l->in.rank == 3) {
        char *mn = param_name(l, "running_mean"), *vn = param_name(l, "running_var");
        initializer(g, sn, &c, 1, gamma, c);
        initializer(g, bn, &c, 1, beta, c);
        initializer(g, mn, &c, 1, lw->buffer[0], c);
        initializer(g, vn, &c, 1, lw->buffer[1], c);
        const char *ins[5] = {x, sn, bn, mn, vn};
        Pb nd = node_begin("BatchNormalization", l->label, ins, 5, y);
        attr_float(&nd, "epsilon", eps);
        node_end(g, &nd);
        free(mn);
        free(vn);
    } else {
        double *s = xcalloc((size_t)c, sizeof(double)), *t = xcalloc((size_t)c, sizeof(double));
        for (int64_t j = 0; j < c; j++) {
            s[j] = gamma[j] / sqrt(lw->buffer[1][j] + eps);
            t[j] = beta[j] - lw->buffer[0][j] * s[j];
        }
        initializer(g, sn, &c, 1, s, c);
        initializer(g, bn, &c, 1, t, c);
        char *mid = temp_name(g, l), *addn = xasprintf("%s/shift", l->label);
        const char *mul_in[2] = {x, sn}, *add_in[2] = {mid, bn};
        node(g, "Mul", l->label, mul_in, 2, mid);
        node(g, "Add", addn, add_in, 2, y);
        free(mid);
        free(addn);
        free(s);
        free(t);
    }
    free(sn);
    free(bn);
    free(ones);
    free(zeros);
}

/* SiLU as x * Sigmoid(x); GELU as x/2 (1 + Erf(x / sqrt 2)). */
static void onnx_silu(Graph *g, const Layer *l, const char *x, const char *y)
{
    char *s = temp_name(g, l), *mul = xasprintf("%s/mul", l->label);
    const char *ins[1] = {x}, *prod[2] = {x, s};
    node(g, "Sigmoid", l->label, ins, 1, s);
    node(g, "Mul", mul, prod, 2, y);
    free(s);
    free(mul);
}

static void onnx_gelu(Graph *g, const Layer *l, const char *x, const char *y)
{
    char *c_r = xasprintf("%s/inv_sqrt2", l->label), *c_h = xasprintf("%s/half", l->label),
         *c_1 = xasprintf("%s/one", l->label);
    scalar_initializer(g, c_r, 0.70710678118654752440);
    scalar_initializer(g, c_h, 0.5);
    scalar_initializer(g, c_1, 1.0);
    char *t[4];
    for (int k = 0; k < 4; k++)
        t[k] = temp_name(g, l);
    const char *a[2] = {x, c_r}, *b[1] = {t[0]}, *c[2] = {t[1], c_1}, *d[2] = {x, c_h},
               *e[2] = {t[3], t[2]};
    char *names[5];
    for (int k = 0; k < 5; k++)
        names[k] = k == 0 ? xstrdup(l->label) : xasprintf("%s/%d", l->label, k);
    node(g, "Mul", names[0], a, 2, t[0]);     /* x / sqrt 2 */
    node(g, "Erf", names[1], b, 1, t[1]);
    node(g, "Add", names[2], c, 2, t[2]);     /* 1 + erf */
    node(g, "Mul", names[3], d, 2, t[3]);     /* x / 2 */
    node(g, "Mul", names[4], e, 2, y);
    for (int k = 0; k < 5; k++)
        free(names[k]);
    for (int k = 0; k < 4; k++)
        free(t[k]);
    free(c_r);
    free(c_h);
    free(c_1);
}

static void onnx_layer(Graph *g, const Network *n, const Layer *l, const LayerWeights *lw)
{
    char *ins[CNNC_MAX_INPUTS];
    for (int k = 0; k < l->ninputs; k++)
        ins[k] = onnx_tensor(n, l->inputs[k]);
    char *y = onnx_tensor(n, layer_output(l));
    const char *x = ins[0];
    const char *const *all = (const char *const *)ins;
    const LayerKind *k = l->kind;
    if (k == &layer_conv) {
        onnx_conv(g, l, lw, x, y);
    } else if (k == &layer_dense) {
        onnx_dense(g, l, lw, x, y);
    } else if (k == &layer_maxpool || k == &layer_avgpool) {
        onnx_pool(g, l, k == &layer_maxpool, x, y);
    } else if (k == &layer_globalavgpool) {
        onnx_globalavg(g, l, x, y);
    } else if (k == &layer_batchnorm) {
        onnx_batchnorm(g, l, lw, x, y);
    } else if (k == &layer_flatten || k == &layer_softmax || k == &layer_concat) {
        Pb nd = node_begin(k == &layer_flatten ? "Flatten" : k == &layer_softmax ? "Softmax"
                                                                                : "Concat",
                           l->label, all, l->ninputs, y);
        attr_int(&nd, "axis", 1);
        node_end(g, &nd);
    } else if (k == &layer_add) {
        node(g, l->ninputs == 2 ? "Add" : "Sum", l->label, all, l->ninputs, y);
    } else if (k == &layer_dropout) {
        node(g, "Identity", l->label, all, 1, y);
    } else if (k == &layer_leakyrelu) {
        Pb nd = node_begin("LeakyRelu", l->label, all, 1, y);
        attr_float(&nd, "alpha", layer_arg(l, "alpha")->u.f);
        node_end(g, &nd);
    } else if (k == &layer_silu) {
        onnx_silu(g, l, x, y);
    } else if (k == &layer_gelu) {
        onnx_gelu(g, l, x, y);
    } else {
        const char *op = k == &layer_relu ? "Relu" : k == &layer_sigmoid ? "Sigmoid" : "Tanh";
        node(g, op, l->label, all, 1, y);
    }
    for (int j = 0; j < l->ninputs; j++)
        free(ins[j]);
    free(y);
}

/* [N, C, H, W] or [N, F] of a shape. */
static int nchw(Shape s, int64_t dims[4])
{
    dims[0] = 0;
    if (s.rank == 1) {
        dims[1] = s.c;
        return 2;
    }
    dims[1] = s.c;
    dims[2] = s.h;
    dims[3] = s.w;
    return 4;
}

/* Input(mean=, std=): "input/normal" = Sub then Div of the input by float
 * constants [1, C, 1, 1] (one number for all: [1]), as the trainer computes
 * (x - mean[c]) / std[c] in float: the same two correctly rounded float
 * operations, so the same values. */
static void onnx_normalise(Graph *g, const Network *n)
{
    int64_t dims[4] = {1, n->norm_channels, 1, 1};
    int rank = n->input.rank == 3 && n->norm_channels > 1 ? 4 : 1;
    initializer(g, "input/mean", dims, rank, n->input_mean, n->norm_channels);
    initializer(g, "input/std", dims, rank, n->input_std, n->norm_channels);
    const char *sub[2] = {"input", "input/mean"}, *div[2] = {"input/centred", "input/std"};
    node(g, "Sub", "input/sub", sub, 2, "input/centred");
    node(g, "Div", "input/div", div, 2, "input/normal");
}

bool emit_onnx(FILE *out, const Network *n, const Weights *w)
{
    Graph g = {0};
    if (n->norm_channels)
        onnx_normalise(&g, n);
    for (int i = 0; i < n->nlayers; i++)
        onnx_layer(&g, n, &n->layers[i], &w->at[i]);
    /* GraphProto: name 2, input 11, output 12 */
    pb_string(&g.body, 2, n->name);
    int64_t dims[4];
    int rank = nchw(n->input, dims);
    value_info(&g.body, 11, "input", dims, rank);
    rank = nchw(n->tensors[n->nlayers].shape, dims);
    value_info(&g.body, 12, "output", dims, rank);
    /* ModelProto: ir_version 1, producer_name 2, producer_version 3,
     * graph 7, opset_import 8 (domain 1, version 2) */
    Pb model = {0}, opset = {0};
    pb_int(&model, 1, 7);
    pb_string(&model, 2, "cnnc");
    pb_string(&model, 3, PACKAGE_VERSION);
    pb_message(&model, 7, &g.body);
    pb_string(&opset, 1, "");
    pb_int(&opset, 2, 13);
    pb_message(&model, 8, &opset);
    fwrite(model.b, 1, model.len, out);
    free(model.b);
    return !ferror(out);
}
