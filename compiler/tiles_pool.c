/* tiles_pool.c: the fast tier of MaxPool and AvgPool (pool.c holds the
 * kinds: their shape rule and their reference loops).
 *
 * Maps are NHWC, so one window position is a run of taps, each a contiguous
 * row of C channels: the innermost loop runs over channels. An output pixel
 * whose window lies wholly inside the input (every pixel of a valid pool) is
 * "inside"; only with padding are there pixels whose window is clipped, and
 * only those pay for the clipping. Padding never takes part: MaxPool's
 * padding never wins (it is -inf), AvgPool's never counts into the mean.
 */
#include "tiles.h"

#include <inttypes.h>
#include <string.h>

int64_t pool_in_elems(const PoolGeom *g)
{
    return g->h * g->w * g->c;
}

int64_t pool_out_elems(const PoolGeom *g)
{
    return g->oh * g->ow * g->c;
}

static bool pool_unrolled(const PoolGeom *g)
{
    return g->kh * g->kw <= EMIT_UNROLL_TAPS;
}

/* "x[n][H][W][C]" into buf. */
const char *pool_dims4(char *buf, size_t size, const char *name, int64_t h, int64_t w,
                       int64_t c)
{
    snprintf(buf, size, "%s[n][%" PRId64 "][%" PRId64 "][%" PRId64 "]", name, h, w, c);
    return buf;
}

/* Opens the loop over samples (emit_loop_end closes it) with the
 * sample's rows: xi and yi forward, dyi and dxi backward. */
static void pool_emit_pixels(Emitter *e, const LayerCode *c, const PoolGeom *g, bool dx_side)
{
    emit_loop(e, c, "i", "n", 1);
    if (dx_side) {
        emit(e, "const real *restrict dyi = dy + (size_t)i * %" PRId64 ";", pool_out_elems(g));
        emit(e, "real *restrict dxi = dx + (size_t)i * %" PRId64 ";", pool_in_elems(g));
    } else {
        emit(e, "const real *restrict xi = x + (size_t)i * %" PRId64 ";", pool_in_elems(g));
        emit(e, "real *restrict yi = y + (size_t)i * %" PRId64 ";", pool_out_elems(g));
    }
}

/* "o * s - p" into buf, without a stride or padding of 1 or 0. */
const char *pool_window_start(char *buf, size_t size, const char *o, int64_t s, int64_t p)
{
    int len = snprintf(buf, size, "%s", o);
    if (s != 1)
        len += snprintf(buf + len, size - (size_t)len, " * %" PRId64, s);
    if (p != 0)
        snprintf(buf + len, size - (size_t)len, " - %" PRId64, p);
    return buf;
}

/* Opens the loops over output pixels (two levels to close) with p, the
 * pixel's index, and iy0, ix0, its window's first row and column (negative
 * in the padding). */
static void pool_emit_pixel_loops(Emitter *e, const PoolGeom *g)
{
    char iy0[64], ix0[64];
    emit_for(e, "oy", g->oh);
    emit_for(e, "ox", g->ow);
    emit(e, "const int p = oy * %" PRId64 " + ox;", g->ow);
    emit(e, "const int iy0 = %s, ix0 = %s;", pool_window_start(iy0, sizeof iy0, "oy", g->sh, g->pt),
         pool_window_start(ix0, sizeof ix0, "ox", g->sw, g->pl));
}

/* The test that the window at (iy0, ix0) lies wholly inside the input. */
static void pool_emit_inside_test(Emitter *e, const PoolGeom *g)
{
    emit(e, "if (iy0 >= 0 && iy0 + %" PRId64 " <= %" PRId64 " && ix0 >= 0 && ix0 + %" PRId64
            " <= %" PRId64 ") {", g->kh, g->h, g->kw, g->w);
}

/* Opens the loops over the window's taps inside the input (two levels to
 * close), rows ky0..ky1-1 and columns kx0..kx1-1, with at, the tap's first
 * element within the sample; count, when wanted, is how many taps there are. */
static void pool_emit_clipped_taps(Emitter *e, const PoolGeom *g, bool want_count)
{
    if (g->padded) {
        emit(e, "const int ky0 = iy0 < 0 ? -iy0 : 0, ky1 = iy0 + %" PRId64 " > %" PRId64
                " ? %" PRId64 " - iy0 : %" PRId64 ";", g->kh, g->h, g->h, g->kh);
        emit(e, "const int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = ix0 + %" PRId64 " > %" PRId64
                " ? %" PRId64 " - ix0 : %" PRId64 ";", g->kw, g->w, g->w, g->kw);
        if (want_count)
            emit(e, "const real count = (real)((ky1 - ky0) * (kx1 - kx0));");
        emit(e, "for (int ky = ky0; ky < ky1; ky++) {");
        emit(e, "for (int kx = kx0; kx < kx1; kx++) {");
    } else {
        if (want_count)
            emit(e, "const real count = %" PRId64 ";", g->kh * g->kw);
        emit_for(e, "ky", g->kh);
        emit_for(e, "kx", g->kw);
    }
    emit(e, "const int at = ((iy0 + ky) * %" PRId64 " + ix0 + kx) * %" PRId64 ";", g->w, g->c);
}

/* The first tap inside the window: where MaxPool's running max starts. */
static void pool_emit_first_tap(Emitter *e, const PoolGeom *g)
{
    if (g->padded)
        emit(e, "const int first = ((iy0 + (iy0 < 0 ? -iy0 : 0)) * %" PRId64
                " + ix0 + (ix0 < 0 ? -ix0 : 0)) * %" PRId64 ";", g->w, g->c);
    else
        emit(e, "const int first = (iy0 * %" PRId64 " + ix0) * %" PRId64 ";", g->w, g->c);
}

/* Opens the loop over channels of an inside window (one level to close)
 * with at, the channel's element in the window's first tap. */
static void pool_emit_unrolled_channels(Emitter *e, const PoolGeom *g)
{
    emit(e, "const int base = (iy0 * %" PRId64 " + ix0) * %" PRId64 ";", g->w, g->c);
    emit_for(e, "c", g->c);
    emit(e, "const int at = base + c;");
}

/* How far tap t (row-major, 0 the first) of an inside window lies from the
 * first, in elements. */
static int64_t pool_tap_offset(const PoolGeom *g, int64_t t)
{
    return (t / g->kw * g->w + t % g->kw) * g->c;
}

/* A pool's forward: the comment, "y[n][OH][OW][C] = the WHAT of each KHxKW
 * window of x[n][H][W][C] at stride SHxSW" and more, and the signature. */
static void pool_emit_forward_begin(Emitter *e, const LayerCode *c, const PoolGeom *g,
                                    const char *what, const char *more)
{
    char in[96], out[96];
    emit(e, "/* %s = the %s of each %" PRId64 "x%" PRId64 " window of %s at stride %" PRId64
            "x%" PRId64 "%s */",
         pool_dims4(out, sizeof out, "y", g->oh, g->ow, g->c), what, g->kh, g->kw,
         pool_dims4(in, sizeof in, "x", g->h, g->w, g->c), g->sh, g->sw, more);
    emit_forward_begin(e, c);
}

/* A pool's backward that computes dx: the comment, "dx[n][H][W][C]: each of
 * dy[n][OH][OW][C]" and how it goes back, and the signature. */
static void pool_emit_backward_begin(Emitter *e, const LayerCode *c, const PoolGeom *g,
                                     const char *how)
{
    char in[96], out[96];
    emit(e, "/* %s: each of %s %s */", pool_dims4(in, sizeof in, "dx", g->h, g->w, g->c),
         pool_dims4(out, sizeof out, "dy", g->oh, g->ow, g->c), how);
    emit_backward_begin(e, c);
}

/* One kind's code for the channels of one output pixel: from an inside
 * window, unrolled, or from any window, in loops over its taps. */
typedef void PoolWindowEmitter(Emitter *e, const PoolGeom *g);

/* The body of a forward's pixel loops: unrolled when the window is small
 * (behind the inside test when some windows are clipped), else in loops; then
 * closes the pixel loops. */
static void pool_emit_forward_windows(Emitter *e, const PoolGeom *g,
                                      PoolWindowEmitter *unrolled, PoolWindowEmitter *loops)
{
    if (pool_unrolled(g) && g->padded) {
        pool_emit_inside_test(e, g);
        unrolled(e, g);
        emit(e, "} else {");
        loops(e, g);
        emit(e, "}");
    } else if (pool_unrolled(g)) {
        unrolled(e, g);
    } else {
        loops(e, g);
    }
    emit(e, "}");
    emit(e, "}");
}

/* An inside window, unrolled: per channel, the running max over the taps
 * in row-major order, the first of equal values winning. */
static void maxpool_emit_unrolled(Emitter *e, const PoolGeom *g)
{
    pool_emit_unrolled_channels(e, g);
    emit(e, "real best = xi[at];");
    emit(e, "int arg = at;");
    for (int64_t t = 1; t < g->kh * g->kw; t++) {
        int64_t off = pool_tap_offset(g, t);
        emit(e, "if (xi[at + %" PRId64 "] > best) { best = xi[at + %" PRId64 "]; arg = at + %"
                PRId64 "; }", off, off, off);
    }
    emit(e, "yo[c] = best;");
    emit(e, "ao[c] = arg;");
    emit(e, "}");
}

/* Any window, in loops over its taps inside the input. */
static void maxpool_emit_loops(Emitter *e, const PoolGeom *g)
{
    pool_emit_first_tap(e, g);
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) {", g->c);
    emit(e, "yo[c] = xi[first + c];");
    emit(e, "ao[c] = first + c;");
    emit(e, "}");
    pool_emit_clipped_taps(e, g, false);
    emit_comment(e, "strict >: the first tap (compared again here) and earlier ties keep it");
    emit_for(e, "c", g->c);
    emit(e, "const real v = xi[at + c];");
    emit(e, "if (v > yo[c]) { yo[c] = v; ao[c] = at + c; }");
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
}

/* MaxPool forward a sample at a time, on the calling thread: sample i of
 * the call from xi to yi, and its argmax. The layer before can stream into
 * it (plan.c), its map then made and taken a sample at a time; otherwise
 * the samples go among the threads. */
void tiles_maxpool_forward(Emitter *e, const LayerCode *c, const PoolGeom *g)
{
    emit(e, "/* yi[%" PRId64 "][%" PRId64 "][%" PRId64 "] = the max of each %" PRId64 "x%" PRId64
            " window of xi[%" PRId64 "][%" PRId64 "][%" PRId64 "] at stride %" PRId64 "x%" PRId64
            ", sample i of the call; its argmax (int32: the input element within the sample) "
            "in scratch at sample i */",
         g->oh, g->ow, g->c, g->kh, g->kw, g->h, g->w, g->c, g->sh, g->sw);
    emit_function_begin(e, c, "forward_sample", SIG_SAMPLE, false);
    emit(e, "int32_t *restrict ai = (int32_t *)work(ln, %s_SCRATCH) + (size_t)i * %" PRId64 ";",
         c->name, pool_out_elems(g));
    pool_emit_pixel_loops(e, g);
    emit(e, "real *restrict yo = yi + p * %" PRId64 ";", g->c);
    emit(e, "int32_t *restrict ao = ai + p * %" PRId64 ";", g->c);
    pool_emit_forward_windows(e, g, maxpool_emit_unrolled, maxpool_emit_loops);
    emit_function_end(e);
    if (c->streamed_into)
        return; /* the layer before calls forward_sample itself */
    emit_blank(e);
    char in[96], out[96];
    emit(e, "/* %s = the max of each window of %s, the samples among the threads */",
         pool_dims4(out, sizeof out, "y", g->oh, g->ow, g->c), pool_dims4(in, sizeof in, "x", g->h, g->w, g->c));
    emit_forward_begin(e, c);
    emit_parallel(e, "i", "n", 1);
    emit(e, "%s_forward_sample(ln, i, x + (size_t)i * %" PRId64 ", y + (size_t)i * %" PRId64
            ");", c->name, pool_in_elems(g), pool_out_elems(g));
    emit_parallel_end(e);
    emit_function_end(e);
}

/* dx clearing a row ahead of the windows, so that each row is cleared while
 * it is in cache for their sums: before output row oy, the input rows up to
 * its windows' last. Opens the loop over output rows (one level to close). */
static void pool_emit_rows_cleared(Emitter *e, const PoolGeom *g)
{
    const int64_t row = g->w * g->c;
    emit(e, "int cleared = 0; /* rows of dxi zeroed */");
    emit_for(e, "oy", g->oh);
    emit(e, "const int rows = oy * %" PRId64 " + %" PRId64 ";", g->sh, g->kh);
    emit(e, "memset(dxi + (size_t)cleared * %" PRId64 ", 0, sizeof(real) * %" PRId64
            " * (size_t)(rows - cleared));", row, row);
    emit(e, "cleared = rows;");
}

/* The vector form of an inside window's backward, for C of at least a
 * vector: per vector of channels and per tap, the lanes whose winner the tap
 * is add their dy; the last vector, which overlaps the one before it, leaves
 * the lanes that one covers. Sums go in the order of the scalar form (by
 * output pixel), so the two agree bitwise. */
static void maxpool_emit_backward_vectors(Emitter *e, const LayerCode *c, const PoolGeom *g)
{
    emit_local(e, "vr", "typedef real vr __attribute__((vector_size(CNNC_VEC_BYTES)));");
    emit_mask_type(e, "vr");
    emit_local(e, "vi", "typedef int32_t vi __attribute__((vector_size(CNNC_VL * 4)));");
    emit_local(e, "nv", "const int nv = (%" PRId64 " + CNNC_VL - 1) / CNNC_VL;", g->c);
    emit_local(e, "lane", "vi lane;\nfor (int l = 0; l < CNNC_VL; l++) lane[l] = l;");
    emit(e, "/* lanes of the last vector that the one before it covers */");
    emit_local(e, "covered", "const int covered = (nv - 1) * CNNC_VL - VEC_AT(nv - 1, CNNC_VL, %"
               PRId64 ");", g->c);
    pool_emit_pixels(e, c, g, true);
    emit(e, "const int32_t *restrict ai = argmax + (size_t)i * %" PRId64 ";", pool_out_elems(g));
    if (c->relu_in)
        emit(e, "const real *restrict yi = y + (size_t)i * %" PRId64 ";", pool_out_elems(g));
    pool_emit_rows_cleared(e, g);
    emit_for(e, "ox", g->ow);
    emit(e, "const int p = oy * %" PRId64 " + ox;", g->ow);
    emit(e, "const int base = (oy * %" PRId64 " * %" PRId64 " + ox * %" PRId64 ") * %" PRId64
            ";", g->sh, g->w, g->sw, g->c);
    emit(e, "for (int j = 0; j < nv; j++) {");
    emit(e, "const int c = VEC_AT(j, CNNC_VL, %" PRId64 ");", g->c);
    emit(e, "vi a;");
    emit(e, "vr d;");
    emit(e, "VLOAD(a, ai + p * %" PRId64 " + c);", g->c);
    emit(e, "VLOAD(d, dyi + p * %" PRId64 " + c);", g->c);
    emit(e, "vr_mask keep = __builtin_convertvector(lane >= (j == nv - 1 ? covered : 0), "
            "vr_mask);");
    if (c->relu_in) {
        emit(e, "vr v;");
        emit(e, "VLOAD(v, yi + p * %" PRId64 " + c);", g->c);
        emit(e, "keep &= v > 0;");
    }
    emit(e, "const vr_mask dm = (vr_mask)d & keep;");
    emit(e, "a -= base + c + lane; /* the winning tap's offset */");
    emit(e, "real *restrict dxo = dxi + base + c;");
    for (int64_t t = 0; t < g->kh * g->kw; t++) {
        int64_t off = pool_tap_offset(g, t);
        emit(e, "{");
        emit(e, "const vr_mask m = __builtin_convertvector(a == %" PRId64 ", vr_mask);", off);
        emit(e, "vr s;");
        emit(e, "VLOAD(s, dxo + %" PRId64 ");", off);
        emit(e, "const vr_mask sm = (vr_mask)s;");
        emit(e, "s = (vr)(((vr_mask)(s + (vr)dm) & m) | (sm & ~m));");
        emit(e, "VSTORE(dxo + %" PRId64 ", s);", off);
        emit(e, "}");
    }
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    emit(e, "memset(dxi + (size_t)cleared * %" PRId64 ", 0, sizeof(real) * %" PRId64
            " * (size_t)(%" PRId64 " - cleared));", g->w * g->c, g->w * g->c, g->h);
    emit_loop_end(e, c);
}

void tiles_maxpool_backward(Emitter *e, const LayerCode *c, const PoolGeom *g)
{
    pool_emit_backward_begin(e, c, g, c->relu_in ? "to the input element that won (windows may "
                                                  "overlap), where it is > 0 (the ReLU before)"
                                                : "to the input element that won (windows may "
                                                  "overlap)");
    emit(e, "(void)x;");
    if (!c->relu_in)
        emit(e, "(void)y;");
    emit_local(e, "argmax", "const int32_t *restrict argmax = work(ln, %s_SCRATCH);", c->name);
    bool vectors = !g->padded && pool_unrolled(g) && !c->dx_add[0];
    if (vectors) {
        /* Per vector of channels, a pass over every tap: it pays when the
         * window has fewer taps than a vector lanes (3x3 on AVX-512, not
         * 4x4; measured by bench/profile.sh on seed's pools). */
        emit(e, "#if CNNC_VL <= %" PRId64 " && %" PRId64 " < CNNC_VL", g->c, g->kh * g->kw);
        maxpool_emit_backward_vectors(e, c, g);
        emit(e, "#else");
    }
    pool_emit_pixels(e, c, g, true);
    emit(e, "const int32_t *restrict ai = argmax + (size_t)i * %" PRId64 ";", pool_out_elems(g));
    if (!c->dx_add[0])
        emit(e, "for (int j = 0; j < %" PRId64 "; j++) dxi[j] = 0;", pool_in_elems(g));
    if (c->relu_in) {
        /* x is the ReLU's output: x[ai[j]] = y[j], and > 0 where it passed */
        emit(e, "const real *restrict yi = y + (size_t)i * %" PRId64 ";", pool_out_elems(g));
        emit(e, "for (int j = 0; j < %" PRId64 "; j++) dxi[ai[j]] += yi[j] > 0 ? dyi[j] : 0;",
             pool_out_elems(g));
    } else {
        emit(e, "for (int j = 0; j < %" PRId64 "; j++) dxi[ai[j]] += dyi[j];",
             pool_out_elems(g));
    }
    emit_loop_end(e, c);
    if (vectors)
        emit(e, "#endif");
    emit_function_end(e);
}

/* An inside window, unrolled: per channel, the sum over the taps in
 * row-major order, over their number. */
static void avgpool_emit_unrolled(Emitter *e, const PoolGeom *g)
{
    pool_emit_unrolled_channels(e, g);
    emit(e, "real sum = xi[at];");
    for (int64_t t = 1; t < g->kh * g->kw; t++)
        emit(e, "sum += xi[at + %" PRId64 "];", pool_tap_offset(g, t));
    emit(e, "yo[c] = sum / %" PRId64 ";", g->kh * g->kw);
    emit(e, "}");
}

/* Any window, in loops over its taps inside the input. */
static void avgpool_emit_loops(Emitter *e, const PoolGeom *g)
{
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) yo[c] = 0;", g->c);
    pool_emit_clipped_taps(e, g, true);
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) yo[c] += xi[at + c];", g->c);
    emit(e, "}");
    emit(e, "}");
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) yo[c] /= count;", g->c);
}

void tiles_avgpool_forward(Emitter *e, const LayerCode *c, const PoolGeom *g)
{
    pool_emit_forward_begin(e, c, g, "mean",
                            g->padded ? ", over its elements inside the input" : "");
    emit(e, "(void)ln;");
    pool_emit_pixels(e, c, g, false);
    pool_emit_pixel_loops(e, g);
    emit(e, "real *restrict yo = yi + p * %" PRId64 ";", g->c);
    pool_emit_forward_windows(e, g, avgpool_emit_unrolled, avgpool_emit_loops);
    emit_loop_end(e, c);
    emit_function_end(e);
}

void tiles_avgpool_backward(Emitter *e, const LayerCode *c, const PoolGeom *g)
{
    pool_emit_backward_begin(e, c, g, "spread evenly over its window's elements");
    emit(e, "(void)ln;");
    emit(e, "(void)x;");
    emit(e, "(void)y;");
    pool_emit_pixels(e, c, g, true);
    if (!c->dx_add[0])
        emit(e, "for (int j = 0; j < %" PRId64 "; j++) dxi[j] = 0;", pool_in_elems(g));
    pool_emit_pixel_loops(e, g);
    emit(e, "const real *restrict dyo = dyi + p * %" PRId64 ";", g->c);
    pool_emit_clipped_taps(e, g, true);
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) dxi[at + c] += dyo[c] / count;", g->c);
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    emit_loop_end(e, c);
    emit_function_end(e);
}

