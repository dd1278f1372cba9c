/* emitter.h: the Emitter's insides, shared by the files that write C
 * (emitter.c, emit.c); layer kinds see only cnnc.h's functions. */
#ifndef CNNC_EMITTER_H
#define CNNC_EMITTER_H

#include "cnnc.h"

/* A memory stream and its text. */
typedef struct Buf {
    char *text;
    size_t len;
    FILE *f;
} Buf;

/* An open #if inside a function: its branches' conditions so far (NULL for
 * #else) and the current branch's number. */
#define EMIT_MAX_PP 8
#define EMIT_MAX_BRANCHES 16
typedef struct PpLevel {
    char *conds[EMIT_MAX_BRANCHES];
    int n;
    int branch;
} PpLevel;

/* A declaration a parallel loop may need (emit_local): its name, its text,
 * the block depth and #if branch it is in scope for, and its entry in the
 * function's list. */
typedef struct Local {
    char *name;
    char *text;
    int depth;
    int branch;
    int fn_index;
} Local;

/* Every local of the function being written: its marker stands in the
 * function's text at byte `at` until the function's end, where the
 * declaration replaces it if the code up to `end` (where it went out of
 * scope) uses it. */
typedef struct FnLocal {
    char *name;
    char *text;
    int indent;
    size_t at, end;
} FnLocal;

/* The byte that starts a local's marker line in a function's text. */
#define LOCAL_MARK '\001'

/* An argument of the function being written: its declaration, its name,
 * and where a loop function finds it ("a->x"). */
typedef struct FnParam {
    char *decl;
    char *name;
    char *from;
} FnParam;

struct Emitter {
    FILE *out;             /* where lines go now */
    int indent;            /* in levels of four spaces */
    const Network *net;
    int64_t real_size;     /* 4: float, 8: double */
    /* The function being written (emit_function_begin .. _end). */
    FILE *file;            /* the output outside it */
    Buf fn;                /* its text */
    Buf parts;             /* its loop functions, which go before it */
    const LayerCode *code;
    char *fn_name;
    FnParam params[2 * CNNC_MAX_INPUTS + 6];
    int nparams;
    Local *locals;         /* in scope now */
    int nlocals;
    FnLocal *fn_locals;    /* all of the function's */
    int nfn_locals;
    PpLevel pp[EMIT_MAX_PP];
    int npp;
    int branches;          /* branch numbers handed out */
    int nloops;
    /* The parallel loop being written (emit_parallel .. _end). */
    Buf part;
    char *loop_var, *loop_count;
    int64_t loop_grain;
    int loop_indent;
};

/* Frees what the Emitter holds (not its streams). */
void emitter_free(Emitter *e);

#endif /* CNNC_EMITTER_H */
