/* tiles.c: the pieces every register tile of the fast tier shares. */
#include "tiles.h"

#include <inttypes.h>

Split split_even(int64_t len, int64_t most)
{
    int64_t tiles = (len + most - 1) / most;
    return (Split){tiles, len / tiles, len % tiles};
}

int64_t pow2_floor(int64_t v)
{
    int64_t p = 1;
    while (p <= v / 2)
        p *= 2;
    return p;
}

int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

void tiles_accs(Emitter *e, const char *type, int rows, int nv, AccStart start, const char *pre,
                const char *post)
{
    for (int r = 0; r < rows; r++) {
        char line[512];
        size_t len = (size_t)snprintf(line, sizeof line, "%s", type);
        for (int v = 0; v < nv; v++) {
            len += (size_t)snprintf(line + len, sizeof line - len, "%s a%d_%d", v ? "," : "", r, v);
            if (start == ACC_ZERO)
                len += (size_t)snprintf(line + len, sizeof line - len, " = {0}");
            else if (start == ACC_BY_VECTOR)
                len += (size_t)snprintf(line + len, sizeof line - len, " = %s%d", pre, v);
            else if (start == ACC_BY_ROW)
                len += (size_t)snprintf(line + len, sizeof line - len, " = %s%d%s", pre, r, post);
        }
        emit(e, "%s;", line);
    }
}

/* "TYPE w0, w1;" then "VLOAD(w0, BASE + c0); VLOAD(w1, BASE + c1);" for nv
 * vectors. */
void emit_vloads(Emitter *e, const char *type, const char *name, int nv, const char *base)
{
    char line[512];
    size_t len = (size_t)snprintf(line, sizeof line, "%s", type);
    for (int v = 0; v < nv; v++)
        len += (size_t)snprintf(line + len, sizeof line - len, "%s %s%d", v ? "," : "", name, v);
    emit(e, "%s;", line);
    for (int v = 0; v < nv; v++)
        emit(e, "VLOAD(%s%d, %s + c%d);", name, v, base, v);
}

/* a{r}_{v} += PRE{r}POST * VEC{v}: a line per tile row r, nv vectors. */
void emit_fmas(Emitter *e, int rows, int nv, const char *pre, const char *post, const char *vec)
{
    for (int r = 0; r < rows; r++) {
        char line[512];
        size_t len = 0;
        for (int v = 0; v < nv; v++)
            len += (size_t)snprintf(line + len, sizeof line - len, "%sa%d_%d += %s%d%s * %s%d;",
                                    v ? " " : "", r, v, pre, r, post, vec, v);
        emit(e, "%s", line);
    }
}

void emit_mask_type(Emitter *e, const char *type)
{
    char name[64];
    snprintf(name, sizeof name, "%s_mask", type);
    emit_local(e, name, "typedef __typeof__((%s){0} < (%s){0}) %s_mask; /* a comparison's lanes */",
               type, type, type);
}

void tiles_relu_out(Emitter *e, const char *type, int r, int v)
{
    emit(e, "a%d_%d = (%s)((%s_mask)a%d_%d & ~(a%d_%d < (%s){0}));", r, v, type, type, r, v, r,
         v, type);
}

void tiles_relu_in(Emitter *e, const char *type, int r, int v, const char *addr)
{
    emit(e, "{ %s xv; VLOAD(xv, %s); a%d_%d = (%s)((%s_mask)a%d_%d & (xv > (%s){0})); }", type,
         addr, r, v, type, type, r, v, type);
}

void tiles_emit_chan_merge(Emitter *e, const char *mean, const char *m2, int64_t lanes)
{
    emit(e, "const double all = counted + more, f = more / all, h = counted * f;");
    emit_for(e, "l", lanes);
    emit(e, "const double delta = sm[l] - %s[l];", mean);
    emit(e, "%s[l] += delta * f;", mean);
    emit(e, "%s[l] += sq[l] + delta * delta * h;", m2);
    emit(e, "}");
    emit(e, "counted = all;");
}
