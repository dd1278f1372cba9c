/* diag.c: the one diagnostics path, in GCC's form.
 *
 *   bad.net:7:5: error: Dense needs a vector, but MaxPool (line 6) gives 10x10x105
 *       7 |     Dense(n=945)
 *         |     ^~~~~
 *         = hint: insert Flatten before it
 *
 * Source lines are shown as display text: tabs expand to stops of 8, bytes
 * that are not printable (NUL, control, invalid UTF-8) show as '?', so the
 * caret lines up under what the terminal shows. Very long lines show a
 * window around the caret. */
#include "cnnc.h"

#include <stdlib.h>
#include <string.h>

/* How much of a long line to show before and after the caret (bytes). */
enum { WINDOW_BEFORE = 60, WINDOW_AFTER = 100 };

void diag_init(Diag *d, const Source *src, FILE *out)
{
    memset(d, 0, sizeof *d);
    d->src = src;
    d->out = out;
    d->max_errors = DIAG_DEFAULT_MAX_ERRORS;
}

bool diag_full(const Diag *d)
{
    return d->stopped;
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if invalid. */
static size_t utf8_length(const unsigned char *p, size_t n)
{
    size_t len;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        len = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        len = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        len = 4;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* Appends the display form of line[from, to) to out; returns the display
 * column reached, starting from col. When mark is not NULL, records the
 * display column of the bytes at offsets mark_at[0..1] into mark[0..1]. */
static int show_bytes(FILE *out, const char *line, size_t from, size_t to, int col,
                      const size_t mark_at[2], int mark[2])
{
    const unsigned char *p = (const unsigned char *)line;
    size_t i = from;
    while (i < to) {
        for (int m = 0; m < 2; m++)
            if (mark && mark_at[m] == i)
                mark[m] = col;
        size_t step = 1;
        if (p[i] == '\t') {
            int next = (col / 8 + 1) * 8;
            for (; col < next; col++)
                fputc(' ', out);
        } else if (p[i] >= 0x20 && p[i] < 0x7f) {
            fputc(p[i], out);
            col++;
        } else if (p[i] >= 0x80 && (step = utf8_length(p + i, to - i)) > 0) {
            fwrite(p + i, 1, step, out);
            col++;
        } else {
            step = 1;
            fputc('?', out);
            col++;
        }
        i += step;
    }
    for (int m = 0; m < 2; m++)
        if (mark && mark_at[m] >= to && mark[m] < 0)
            mark[m] = col + (int)(mark_at[m] - to);
    return col;
}

/* The source line with a caret under loc's first column and '~' to its last
 * (when the range stays on the line). */
static void show_line(Diag *d, Loc loc)
{
    size_t len;
    const char *line = source_line(d->src, loc.first_line, &len);
    size_t first = loc.first_column > 0 ? (size_t)loc.first_column - 1 : 0;
    size_t last = first;
    if (loc.last_line == loc.first_line && loc.last_column >= loc.first_column)
        last = (size_t)loc.last_column - 1;
    else if (loc.last_line > loc.first_line && len > first)
        last = len - 1;
    if (first > len)
        first = len;
    if (last < first)
        last = first;

    size_t from = first > WINDOW_BEFORE ? first - WINDOW_BEFORE : 0;
    size_t to = len - first > WINDOW_AFTER ? first + WINDOW_AFTER : len;
    if (last >= to)
        last = to > first ? to - 1 : first;

    fprintf(d->out, "%5d | ", loc.first_line);
    int col = 0;
    if (from > 0) {
        fputs("...", d->out);
        col = 3;
    }
    size_t mark_at[2] = {first, last};
    int mark[2] = {-1, -1};
    show_bytes(d->out, line, from, to, col, mark_at, mark);
    if (to < len)
        fputs("...", d->out);
    fputc('\n', d->out);

    fputs("      | ", d->out);
    for (int c = 0; c < mark[0]; c++)
        fputc(' ', d->out);
    fputc('^', d->out);
    for (int c = mark[0] + 1; c <= mark[1]; c++)
        fputc('~', d->out);
    fputc('\n', d->out);
}

/* The message line, then the source line. tail ends the message line: ""
 * or, for a warning made an error, " [-Werror]" as GCC has it. */
static void report(Diag *d, Loc loc, const char *what, const char *tail, const char *fmt,
                   va_list ap)
{
    char *message = xvasprintf(fmt, ap); /* which knows fmt is not NULL */
    fprintf(d->out, "%s:%d:%d: %s: %s%s\n", d->src->name, loc.first_line, loc.first_column,
            what, message, tail);
    free(message);
    show_line(d, loc);
}

/* Whether one more error may be shown (and counts it). The first error past
 * the limit is not: instead the note that reporting stops is printed, after
 * the last error's hints and notes, and every later message is dropped.
 * As GCC's -fmax-errors, a file with exactly the limit gets no such note. */
static bool admit_error(Diag *d)
{
    d->last_shown = false;
    if (d->stopped)
        return false;
    if (d->errors >= d->max_errors) {
        fprintf(d->out, "%s: note: stopping after %d error%s\n", d->src->name, d->errors,
                d->errors == 1 ? "" : "s");
        d->stopped = true;
        return false;
    }
    d->errors++;
    return true;
}

void diag_verror(Diag *d, Loc loc, const char *fmt, va_list ap)
{
    if (!admit_error(d))
        return;
    report(d, loc, "error", "", fmt, ap);
    d->last_shown = true;
}

void diag_error(Diag *d, Loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_verror(d, loc, fmt, ap);
    va_end(ap);
}

void diag_warning(Diag *d, Loc loc, const char *fmt, ...)
{
    d->last_shown = false;
    if (d->stopped || (d->werror && !admit_error(d)))
        return;
    va_list ap;
    va_start(ap, fmt);
    if (d->werror) {
        report(d, loc, "error", " [-Werror]", fmt, ap);
    } else {
        d->warnings++;
        report(d, loc, "warning", "", fmt, ap);
    }
    va_end(ap);
    d->last_shown = true;
}

void diag_note(Diag *d, Loc loc, const char *fmt, ...)
{
    if (!d->last_shown)
        return;
    va_list ap;
    va_start(ap, fmt);
    report(d, loc, "note", "", fmt, ap);
    va_end(ap);
}

void diag_hint(Diag *d, const char *fmt, ...)
{
    if (!d->last_shown)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("      = hint: ", d->out);
    vfprintf(d->out, fmt, ap);
    fputc('\n', d->out);
    va_end(ap);
}

void diag_file_error(Diag *d, const char *fmt, ...)
{
    if (!admit_error(d))
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(d->out, "%s: error: ", d->src->name);
    vfprintf(d->out, fmt, ap);
    fputc('\n', d->out);
    va_end(ap);
    d->last_shown = true;
}
