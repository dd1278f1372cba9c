/* testutil.h: run the front end on a string and capture what it says, and
 * the assertions and main() that the front end's Check suites share. */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <check.h>

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

/* Fails unless l spans fl:fc to ll:lc (lines and columns from 1). */
void tu_assert_loc(Loc l, int fl, int fc, int ll, int lc);

/* True when one line of the diagnostics is exactly line. */
bool tu_has_line(const char *diags, const char *line);

/* Fails unless one line of r's diagnostics is exactly line. */
#define ck_assert_diag(r, line) \
    ck_assert_msg(tu_has_line((r).diags, line), "missing \"%s\" in:\n%s", line, (r).diags)

/* Parses text (or len bytes) and fails unless it gives exactly one error,
 * with line among the diagnostics. */
void tu_expect_one_error(const char *text, const char *line);
void tu_expect_one_error_bytes(const char *bytes, size_t len, const char *line);

/* A test case whose time limit only catches a hang (TU_HANG_SECONDS): Check's
 * default of 4 s, or any limit near a test's running time, makes the
 * verdict depend on the machine's load. */
enum { TU_HANG_SECONDS = 300 };
TCase *tu_tcase(const char *name);

/* Runs every test of s (CK_VERBOSITY picks what is printed); main()'s exit
 * status: EXIT_SUCCESS when all passed. */
int tu_run_suite(Suite *s);

#endif
