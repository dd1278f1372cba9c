/* shape.c: per-sample tensor shapes, HxWxC maps and vectors. */
#include "cnnc.h"

#include <inttypes.h>

Shape shape_map(int64_t h, int64_t w, int64_t c)
{
    return (Shape){.rank = 3, .h = h, .w = w, .c = c};
}

Shape shape_vector(int64_t n)
{
    return (Shape){.rank = 1, .h = 1, .w = 1, .c = n};
}

int64_t shape_elems(Shape s)
{
    return s.h * s.w * s.c;
}

bool shape_equal(Shape a, Shape b)
{
    return a.rank == b.rank && a.h == b.h && a.w == b.w && a.c == b.c;
}

char *shape_str(Shape s, char *buf, size_t size)
{
    if (s.rank == 1)
        snprintf(buf, size, "%" PRId64, s.c);
    else
        snprintf(buf, size, "%" PRId64 "x%" PRId64 "x%" PRId64, s.h, s.w, s.c);
    return buf;
}
