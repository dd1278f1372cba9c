/* emitter.c: writing C: lines, functions, and loops shared among threads.
 *
 * Kinds write their code a line at a time with emit(); the Emitter indents
 * it. A layer function is buffered until its end, because its parallel
 * loops become functions of their own that must come before it:
 *
 *   static void conv1_forward(const cnnrt_lane *ln, int n, const real *x, real *y)
 *   {
 *       const real *w = param(ln) + conv1_weight;     <- emit_local
 *       ...
 *       PARALLEL over it < COUNT: BODY                 <- emit_parallel .. _end
 *   }
 *
 * becomes
 *
 *   static void conv1_forward_p0(void *arg, int lo, int hi)
 *   {
 *       const cnnc_args *a = arg;
 *       const real *restrict x = a->x;                 <- the arguments and
 *       const real *w = param(ln) + conv1_weight;         locals BODY names
 *       for (int it = lo; it < hi; it++) { BODY }
 *   }
 *   static void conv1_forward(...)
 *   {
 *       const real *w = ...;
 *       cnnrt_parallel(ln->home, COUNT, GRAIN, conv1_forward_p0,
 *                      &(cnnc_args){.ln = ln, .n = n, .x = x, .out = y});
 *   }
 *
 * so that a kind writes a parallel loop as it would write any loop. A loop
 * inside #if of the function (the per-target tiles) is defined under the
 * same condition. */
#include "emitter.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Memory streams
 */

static void buf_open(Buf *b)
{
    b->text = NULL;
    b->len = 0;
    b->f = open_memstream(&b->text, &b->len);
    if (!b->f) {
        fputs("cnnc: error: out of memory\n", stderr);
        exit(2);
    }
}

/* Closes b and returns its text (the caller frees it). */
static char *buf_close(Buf *b)
{
    fclose(b->f);
    b->f = NULL;
    char *t = b->text ? b->text : xstrdup("");
    b->text = NULL;
    return t;
}

/* ------------------------------------------------------------------------
 * Lines
 */

/* Whether a line ends in '{', before any trailing comment. */
static bool opens_block(const char *line)
{
    size_t len = strlen(line);
    const char *comment = strstr(line, "/*");
    if (comment && strstr(comment, "*/") == line + len - 2)
        len = (size_t)(comment - line);
    while (len > 0 && line[len - 1] == ' ')
        len--;
    return len > 0 && line[len - 1] == '{';
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void forget_locals(Emitter *e, int depth, int branch);
static void track_preprocessor(Emitter *e, const char *line);

static void put_line(Emitter *e, const char *line)
{
    if (line[0] == '}' && e->indent > 0) {
        e->indent--;
        if (!e->part.f)
            forget_locals(e, e->indent, -1);
    }
    if (line[0] == '#' && e->fn.f && !e->part.f)
        track_preprocessor(e, line);
    if (line[0] != '\0' && line[0] != '#')
        for (int i = 0; i < e->indent; i++)
            fputs("    ", e->out);
    fputs(line, e->out);
    fputc('\n', e->out);
    if (opens_block(line))
        e->indent++;
}

void emit(Emitter *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *line = xvasprintf(fmt, ap);
    va_end(ap);
    put_line(e, line);
    free(line);
}

void emit_blank(Emitter *e)
{
    fputc('\n', e->out);
}

void emit_comment(Emitter *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = xvasprintf(fmt, ap);
    va_end(ap);
    emit(e, "/* %s */", text);
    free(text);
}

void emit_for(Emitter *e, const char *var, int64_t limit)
{
    emit(e, "for (int %s = 0; %s < %" PRId64 "; %s++) {", var, var, limit, var);
}

int64_t emit_real_size(const Emitter *e)
{
    return e->real_size;
}

/* Each line of text (lines split at '\n') through emit. */
static void emit_lines(Emitter *e, const char *text)
{
    const char *p = text;
    while (*p) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char *line = xstrndup(p, len);
        put_line(e, line);
        free(line);
        p += len + (end != NULL);
    }
}

/* ------------------------------------------------------------------------
 * The preprocessor's branches inside a function
 *
 * A level per open #if: the conditions of its branches so far. The
 * condition of where we are is the conjunction over the levels of "this
 * branch's condition and none of the earlier ones".
 */

static void track_preprocessor(Emitter *e, const char *line)
{
    const char *p = line + 1;
    while (*p == ' ')
        p++;
    PpLevel *top = e->npp ? &e->pp[e->npp - 1] : NULL;
    if (starts_with(p, "if")) {
        if (e->npp == EMIT_MAX_PP) {
            fputs("cnnc: internal error: #if nested too deep\n", stderr);
            exit(2);
        }
        top = &e->pp[e->npp++];
        *top = (PpLevel){0};
        const char *cond = p + 2;
        if (starts_with(p, "ifdef "))
            top->conds[0] = xasprintf("defined(%s)", p + 6);
        else if (starts_with(p, "ifndef "))
            top->conds[0] = xasprintf("!defined(%s)", p + 7);
        else
            top->conds[0] = xstrdup(cond[0] == ' ' ? cond + 1 : cond);
        top->n = 1;
        top->branch = ++e->branches;
    } else if (top && (starts_with(p, "elif") || starts_with(p, "else"))) {
        forget_locals(e, -1, top->branch);
        top->conds[top->n++] = starts_with(p, "elif") ? xstrdup(p + 5) : NULL;
        top->branch = ++e->branches;
    } else if (top && starts_with(p, "endif")) {
        forget_locals(e, -1, top->branch);
        for (int i = 0; i < top->n; i++)
            free(top->conds[i]);
        e->npp--;
    }
}

/* "#if (A) && !(B) && (C)": where the function's text is now; NULL when
 * outside any #if. */
static char *where_now(const Emitter *e)
{
    if (!e->npp)
        return NULL;
    Buf b;
    buf_open(&b);
    fputs("#if ", b.f);
    bool first = true;
    for (int l = 0; l < e->npp; l++) {
        const PpLevel *lv = &e->pp[l];
        for (int i = 0; i < lv->n; i++) {
            bool current = i == lv->n - 1;
            if (current && !lv->conds[i])
                continue; /* #else: only the negations */
            fprintf(b.f, "%s%s(%s)", first ? "" : " && ", current ? "" : "!", lv->conds[i]);
            first = false;
        }
    }
    if (first)
        fputs("1", b.f);
    return buf_close(&b);
}

/* ------------------------------------------------------------------------
 * Locals: what a function's parallel loops may need from it
 */

static bool ident_char(char ch)
{
    return isalnum((unsigned char)ch) || ch == '_';
}

/* Whether text names the identifier name (a whole word). */
static bool names_one(const char *text, const char *name, size_t len)
{
    for (const char *p = strstr(text, name); p; p = strstr(p + 1, name))
        if ((p == text || !ident_char(p[-1])) && strncmp(p, name, len) == 0 &&
            !ident_char(p[len]))
            return true;
    return false;
}

/* Whether text names any of NAMES, identifiers separated by spaces. */
static bool names(const char *text, const char *names_list)
{
    char name[128];
    for (const char *p = names_list; *p;) {
        size_t len = strcspn(p, " ");
        if (len > 0 && len < sizeof name) {
            memcpy(name, p, len);
            name[len] = '\0';
            if (names_one(text, name, len))
                return true;
        }
        p += len;
        p += strspn(p, " ");
    }
    return false;
}

/* A copy of C text with its comments, strings and character constants
 * (and the function's local markers) blanked out, offsets kept: what names
 * in it are code. */
static char *code_only(const char *text)
{
    char *c = xstrdup(text);
    for (char *p = c; *p; p++) {
        if (p[0] == '/' && p[1] == '*') {
            char *end = strstr(p + 2, "*/");
            char *stop = end ? end + 2 : p + strlen(p);
            for (; p < stop; p++)
                if (*p != '\n')
                    *p = ' ';
            p--;
        } else if (*p == '"' || *p == '\'' || *p == LOCAL_MARK) {
            char close = *p == LOCAL_MARK ? '\n' : *p;
            for (*p++ = ' '; *p && *p != close; p++) {
                if (*p == '\\' && p[1])
                    *p++ = ' ';
                *p = ' ';
            }
            if (!*p)
                break;
            if (close != '\n')
                *p = ' ';
        }
    }
    return c;
}

/* Whether the code of text names any of NAMES. */
static bool code_names(const char *text, const char *names_list)
{
    char *code = code_only(text);
    bool found = names(code, names_list);
    free(code);
    return found;
}

/* The function's buffer so far, in bytes. */
static size_t fn_offset(Emitter *e)
{
    fflush(e->fn.f);
    return e->fn.len;
}

static void add_local(Emitter *e, const char *name, const char *text)
{
    e->locals = xrealloc(e->locals, (size_t)(e->nlocals + 1) * sizeof *e->locals);
    int branch = e->npp ? e->pp[e->npp - 1].branch : 0;
    e->locals[e->nlocals++] = (Local){xstrdup(name), xstrdup(text), e->indent, branch,
                                      e->nfn_locals};
    e->fn_locals = xrealloc(e->fn_locals, (size_t)(e->nfn_locals + 1) * sizeof *e->fn_locals);
    e->fn_locals[e->nfn_locals++] = (FnLocal){xstrdup(name), xstrdup(text), e->indent,
                                              fn_offset(e), (size_t)-1};
    fprintf(e->fn.f, "%c%d\n", LOCAL_MARK, e->nfn_locals - 1);
}

/* Forgets the locals of blocks deeper than depth (-1: none) and of the
 * preprocessor branch given (-1: none): they went out of scope. */
static void forget_locals(Emitter *e, int depth, int branch)
{
    int kept = 0;
    for (int i = 0; i < e->nlocals; i++) {
        Local *l = &e->locals[i];
        if ((depth >= 0 && l->depth > depth) || (branch >= 0 && l->branch == branch)) {
            if (e->fn.f)
                e->fn_locals[l->fn_index].end = fn_offset(e);
            free(l->name);
            free(l->text);
        } else {
            e->locals[kept++] = *l;
        }
    }
    e->nlocals = kept;
}

void emit_local(Emitter *e, const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = xvasprintf(fmt, ap);
    va_end(ap);
    if (e->fn.f && !e->part.f)
        add_local(e, name, text);   /* written at the function's end, if it uses it */
    else
        emit_lines(e, text);
    free(text);
}

/* ------------------------------------------------------------------------
 * Functions
 */

static void add_param(Emitter *e, const char *decl, const char *name, const char *from)
{
    e->params[e->nparams++] = (FnParam){xstrdup(decl), xstrdup(name), xstrdup(from)};
}

/* The argument list of the function being written. */
static void set_params(Emitter *e, const LayerCode *c, Signature sig)
{
    e->nparams = 0;
    add_param(e, "const cnnrt_lane *ln", "ln", "a->ln");
    if (sig == SIG_SAMPLE) {
        add_param(e, "int i", "i", "a->n");
        add_param(e, "const real *restrict xi", "xi", "a->x");
        add_param(e, "real *restrict yi", "yi", "a->out");
        return;
    }
    add_param(e, "int n", "n", "a->n");
    if (sig == SIG_STATS) {
        add_param(e, "const real *restrict x", "x", "a->x");
        return;
    }
    bool merge = c->ninputs > 1;
    for (int k = 0; k < c->ninputs; k++) {
        char decl[64], name[16], from[32];
        snprintf(name, sizeof name, merge ? "x%d" : "x", k);
        snprintf(decl, sizeof decl, "const real *%s%s", c->in_place && sig == SIG_FORWARD
                 ? "" : "restrict ", name);
        snprintf(from, sizeof from, "a->xs[%d]", k);
        add_param(e, decl, name, merge ? from : "a->x");
    }
    if (sig == SIG_FORWARD) {
        add_param(e, c->in_place ? "real *y" : "real *restrict y", "y", "a->out");
        return;
    }
    if (sig == SIG_BACKWARD)
        add_param(e, "const real *restrict y", "y", "a->y");
    add_param(e, "const real *restrict dy", "dy", "a->dy");
    if (sig == SIG_WEIGHTS)
        return;
    for (int k = 0; k < c->ninputs; k++) {
        char name[16], decl[48], from[32];
        snprintf(name, sizeof name, merge ? "dx%d" : "dx", k);
        snprintf(decl, sizeof decl, "real *restrict %s", name);
        snprintf(from, sizeof from, "a->dxs[%d]", k);
        add_param(e, decl, name, merge ? from : "a->dx");
    }
}

void emit_function_begin(Emitter *e, const LayerCode *c, const char *phase, Signature sig,
                         bool noinline)
{
    if (e->fn.f) {
        fputs("cnnc: internal error: a function inside a function\n", stderr);
        exit(2);
    }
    e->file = e->out;
    e->code = c;
    e->fn_name = xasprintf("%s_%s", c->name, phase);
    e->nloops = 0;
    set_params(e, c, sig);
    buf_open(&e->parts);
    buf_open(&e->fn);
    e->out = e->fn.f;
    Buf b;
    buf_open(&b);
    fprintf(b.f, "static %svoid %s(", noinline ? "NOINLINE " : "", e->fn_name);
    for (int i = 0; i < e->nparams; i++)
        fprintf(b.f, "%s%s", i ? ", " : "", e->params[i].decl);
    fputs(")", b.f);
    char *head = buf_close(&b);
    emit(e, "%s", head);
    free(head);
    emit(e, "{");
}

/* Which of the function's locals it uses itself: named in the code where
 * the local is in scope, or by a used local declared there. */
static bool *locals_used(const Emitter *e, const char *fn)
{
    char *code = code_only(fn);
    int n = e->nfn_locals;
    bool *used = xcalloc((size_t)n + 1, sizeof *used);
    for (int k = n - 1; k >= 0; k--) {
        const FnLocal *l = &e->fn_locals[k];
        char saved = code[l->end];
        code[l->end] = '\0';
        used[k] = names(code + l->at, l->name);
        code[l->end] = saved;
        for (int j = k + 1; !used[k] && j < n; j++)
            used[k] = used[j] && e->fn_locals[j].at < l->end &&
                      code_names(e->fn_locals[j].text, l->name);
    }
    free(code);
    return used;
}

/* The function's text with each local's marker replaced by its declaration,
 * or by nothing when the function does not use it. */
static void write_function(Emitter *e, const char *fn)
{
    bool *used = locals_used(e, fn);
    for (const char *p = fn; *p;) {
        const char *mark = strchr(p, LOCAL_MARK);
        if (!mark) {
            fputs(p, e->out);
            break;
        }
        fwrite(p, 1, (size_t)(mark - p), e->out);
        int k = atoi(mark + 1);
        p = strchr(mark, '\n') + 1;
        if (!used[k])
            continue;
        int indent = e->indent;
        e->indent = e->fn_locals[k].indent;
        emit_lines(e, e->fn_locals[k].text);
        e->indent = indent;
    }
    free(used);
}

void emit_function_end(Emitter *e)
{
    emit(e, "}");
    forget_locals(e, 0, -1);
    char *parts = buf_close(&e->parts);
    char *fn = buf_close(&e->fn);
    e->out = e->file;
    fputs(parts, e->out);
    write_function(e, fn);
    free(parts);
    free(fn);
    for (int k = 0; k < e->nfn_locals; k++) {
        free(e->fn_locals[k].name);
        free(e->fn_locals[k].text);
    }
    e->nfn_locals = 0;
    for (int i = 0; i < e->nparams; i++) {
        free(e->params[i].decl);
        free(e->params[i].name);
        free(e->params[i].from);
    }
    e->nparams = 0;
    free(e->fn_name);
    e->fn_name = NULL;
    e->code = NULL;
}

void emit_forward_begin(Emitter *e, const LayerCode *c)
{
    emit_function_begin(e, c, "forward", SIG_FORWARD, false);
}

void emit_backward_begin(Emitter *e, const LayerCode *c)
{
    emit_function_begin(e, c, "backward", SIG_BACKWARD, false);
}

/* ------------------------------------------------------------------------
 * Parallel loops
 */

void emit_parallel(Emitter *e, const char *var, const char *count, int64_t grain)
{
    if (!e->fn.f || e->part.f) {
        fputs("cnnc: internal error: a parallel loop outside a function or inside another\n",
              stderr);
        exit(2);
    }
    e->loop_var = xstrdup(var);
    e->loop_count = xstrdup(count);
    e->loop_grain = grain;
    e->loop_indent = e->indent;
    e->indent = 2;   /* inside the loop function's for */
    buf_open(&e->part);
    e->out = e->part.f;
}

/* The loop function's prologue: the arguments and locals its body names,
 * and the ones those name in turn, in the order of the function. */
static void write_prologue(Emitter *e, FILE *f, const char *body)
{
    int n = e->nparams + e->nlocals;
    bool *used = xcalloc((size_t)n + 1, sizeof *used);
    for (int i = n - 1; i >= 0; i--) {
        const char *name = i < e->nparams ? e->params[i].name : e->locals[i - e->nparams].name;
        bool u = code_names(body, name);
        for (int j = i + 1; !u && j < n; j++)
            u = used[j] && j >= e->nparams && code_names(e->locals[j - e->nparams].text, name);
        used[i] = u;
    }
    for (int i = 0; i < n; i++) {
        if (!used[i])
            continue;
        if (i < e->nparams) {
            fprintf(f, "    %s = %s;\n", e->params[i].decl, e->params[i].from);
            continue;
        }
        const char *text = e->locals[i - e->nparams].text;
        while (*text) {
            const char *end = strchr(text, '\n');
            size_t len = end ? (size_t)(end - text) : strlen(text);
            fprintf(f, "    %.*s\n", (int)len, text);
            text += len + (end != NULL);
        }
    }
    free(used);
}

/* ".ln = ln, .n = n, .x = x, ..": the function's arguments for cnnc_args. */
static void write_args(Emitter *e, FILE *f)
{
    const LayerCode *c = e->code;
    bool merge = c->ninputs > 1;
    for (int i = 0; i < e->nparams; i++) {
        const FnParam *p = &e->params[i];
        if (merge && starts_with(p->from, "a->xs[")) {
            if (strcmp(p->from, "a->xs[0]") == 0) {
                fputs(", .xs = (const real *const[]){", f);
                for (int k = 0; k < c->ninputs; k++)
                    fprintf(f, "%sx%d", k ? ", " : "", k);
                fputs("}", f);
            }
        } else if (merge && starts_with(p->from, "a->dxs[")) {
            if (strcmp(p->from, "a->dxs[0]") == 0) {
                fputs(", .dxs = (real *const[]){", f);
                for (int k = 0; k < c->ninputs; k++)
                    fprintf(f, "%sdx%d", k ? ", " : "", k);
                fputs("}", f);
            }
        } else {
            fprintf(f, "%s.%s = %s", i ? ", " : "", p->from + 3, p->name);
        }
    }
}

void emit_parallel_end(Emitter *e)
{
    char *body = buf_close(&e->part);
    e->out = e->fn.f;
    e->indent = e->loop_indent;
    char *name = xasprintf("%s_p%d", e->fn_name, e->nloops++);
    char *where = where_now(e);
    FILE *f = e->parts.f;
    if (where)
        fprintf(f, "%s\n", where);
    fprintf(f, "static void %s(void *arg, int lo, int hi)\n{\n", name);
    fputs("    const cnnc_args *a = arg;\n", f);
    write_prologue(e, f, body);
    fprintf(f, "    for (int %s = lo; %s < hi; %s++) {\n", e->loop_var, e->loop_var,
            e->loop_var);
    fputs(body, f);
    fputs("    }\n}\n", f);
    if (where)
        fputs("#endif\n", f);
    fputc('\n', f);
    Buf call;
    buf_open(&call);
    fprintf(call.f, "cnnrt_parallel(ln->home, %s, %" PRId64 ", %s, &(cnnc_args){", e->loop_count,
            e->loop_grain, name);
    write_args(e, call.f);
    fputs("});", call.f);
    char *text = buf_close(&call);
    emit(e, "%s", text);
    free(text);
    free(where);
    free(body);
    free(name);
    free(e->loop_var);
    free(e->loop_count);
    e->loop_var = e->loop_count = NULL;
}

void emit_loop(Emitter *e, const LayerCode *c, const char *var, const char *count,
               int64_t grain)
{
    if (c->kernels == KERNELS_FAST)
        emit_parallel(e, var, count, grain);
    else
        emit(e, "for (int %s = 0; %s < %s; %s++) {", var, var, count, var);
}

void emit_loop_end(Emitter *e, const LayerCode *c)
{
    if (c->kernels == KERNELS_FAST)
        emit_parallel_end(e);
    else
        emit(e, "}");
}

void emit_dx_clear(Emitter *e, const LayerCode *c)
{
    for (int k = 0; k < c->ninputs; k++) {
        if (!c->need_dx[k] || c->dx_add[k])
            continue;
        char name[16];
        snprintf(name, sizeof name, c->ninputs > 1 ? "dx%d" : "dx", k);
        emit(e, "memset(%s, 0, sizeof(real) * (size_t)n * %" PRId64 "); /* the first gradient "
                "sent back: from zero */", name, shape_elems(c->l->ins[k]));
    }
}

void emitter_free(Emitter *e)
{
    forget_locals(e, 0, -1);
    free(e->locals);
    free(e->fn_locals);
    e->locals = NULL;
    e->fn_locals = NULL;
}
