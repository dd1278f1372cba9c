/* source.c: a whole input file in memory, with its lines indexed.
 *
 * The lexer scans the bytes as they are (NULs and invalid UTF-8 included);
 * the line index serves diagnostics, which print the offending line. */
#include "cnnc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A .net file is a few kilobytes; anything this large is a mistake. */
#define SOURCE_MAX_BYTES (64u << 20)

static void index_lines(Source *s)
{
    int cap = 64;
    s->line_start = xmalloc(sizeof(size_t) * (size_t)cap);
    s->nlines = 0;
    s->line_start[s->nlines++] = 0;
    for (size_t i = 0; i < s->len; i++) {
        if (s->text[i] != '\n')
            continue;
        if (s->nlines == cap) {
            cap *= 2;
            s->line_start = xrealloc(s->line_start, sizeof(size_t) * (size_t)cap);
        }
        s->line_start[s->nlines++] = i + 1;
    }
}

Source *source_from_string(const char *name, const char *text, size_t len)
{
    Source *s = xcalloc(1, sizeof *s);
    s->name = xstrdup(name);
    s->text = xmalloc(len + 1);
    memcpy(s->text, text, len);
    s->text[len] = '\0';
    s->len = len;
    index_lines(s);
    return s;
}

static bool read_stream(FILE *f, char **text, size_t *len, const char *name)
{
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n == cap) {
            if (cap >= SOURCE_MAX_BYTES) {
                fprintf(stderr, "cnnc: error: %s: larger than %u MiB; not a model\n",
                        name, SOURCE_MAX_BYTES >> 20);
                free(buf);
                return false;
            }
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        fprintf(stderr, "cnnc: error: %s: %s\n", name, strerror(errno));
        free(buf);
        return false;
    }
    *text = buf;
    *len = n;
    return true;
}

Source *source_read(const char *path)
{
    bool is_stdin = strcmp(path, "-") == 0;
    const char *name = is_stdin ? "<stdin>" : path;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cnnc: error: %s: %s\n", name, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "cnnc: error: %s: is a directory, not a model file\n", name);
        if (!is_stdin)
            fclose(f);
        return NULL;
    }
    char *text = NULL;
    size_t len = 0;
    bool ok = read_stream(f, &text, &len, name);
    if (!is_stdin)
        fclose(f);
    if (!ok)
        return NULL;
    Source *s = source_from_string(name, text, len);
    free(text);
    return s;
}

void source_free(Source *s)
{
    if (!s)
        return;
    free(s->name);
    free(s->text);
    free(s->line_start);
    free(s);
}

const char *source_line(const Source *s, int line, size_t *len)
{
    if (line < 1 || line > s->nlines) {
        *len = 0;
        return "";
    }
    size_t start = s->line_start[line - 1];
    size_t end = start;
    while (end < s->len && s->text[end] != '\n')
        end++;
    if (end > start && s->text[end - 1] == '\r')
        end--;
    *len = end - start;
    return s->text + start;
}
