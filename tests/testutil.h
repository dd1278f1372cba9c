/* testutil.h: run the front end on a string and capture what it says. */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include "cnnc.h"

/* What one run of the front end produced. Sources are named "t.net". */
typedef struct TuResult {
    Source *src;
    Ast *ast;          /* NULL when parsing produced nothing */
    Network *net;      /* tu_check only: NULL when the model has errors */
    char *diags;       /* everything printed to the diagnostics stream */
    int errors, warnings;
} TuResult;

/* Lex and parse only. */
TuResult tu_parse(const char *text);
TuResult tu_parse_bytes(const char *bytes, size_t len);
/* Parse and check, as `cnnc --check` does. */
TuResult tu_check(const char *text);
TuResult tu_check_bytes(const char *bytes, size_t len);
void tu_free(TuResult *r);

/* The layer labelled (or automatically named) label, or NULL. */
const Layer *tu_layer(const Network *n, const char *label);

#endif
