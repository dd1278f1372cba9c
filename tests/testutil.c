/* testutil.c: run the front end on a string and capture what it says, and
 * the assertions and main() that the front end's Check suites share. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static TuResult run(const char *bytes, size_t len, bool check)
{
    TuResult r = {0};
    size_t size = 0;
    FILE *out = open_memstream(&r.diags, &size);
    r.src = source_from_string("t.net", bytes, len);
    Diag d;
    diag_init(&d, r.src, out);
    r.ast = parse_source(r.src, &d);
    if (check && r.ast)
        r.net = check_ast(r.ast, r.src->name, &d);
    fclose(out);
    r.errors = d.errors;
    r.warnings = d.warnings;
    return r;
}

TuResult tu_parse_bytes(const char *bytes, size_t len) { return run(bytes, len, false); }
TuResult tu_check_bytes(const char *bytes, size_t len) { return run(bytes, len, true); }
TuResult tu_parse(const char *text) { return run(text, strlen(text), false); }
TuResult tu_check(const char *text) { return run(text, strlen(text), true); }

void tu_free(TuResult *r)
{
    if (r->net)
        network_free(r->net);
    if (r->ast)
        ast_free(r->ast);
    source_free(r->src);
    free(r->diags);
    memset(r, 0, sizeof *r);
}

const Layer *tu_layer(const Network *n, const char *label)
{
    for (int i = 0; i < n->nlayers; i++)
        if (strcmp(n->layers[i].label, label) == 0)
            return &n->layers[i];
    return NULL;
}

void tu_assert_loc(Loc l, int fl, int fc, int ll, int lc)
{
    ck_assert_msg(l.first_line == fl && l.first_column == fc && l.last_line == ll &&
                      l.last_column == lc,
                  "loc %d:%d-%d:%d, expected %d:%d-%d:%d", l.first_line, l.first_column,
                  l.last_line, l.last_column, fl, fc, ll, lc);
}

bool tu_has_line(const char *diags, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = diags; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len == n && memcmp(p, line, n) == 0)
            return true;
        p = eol ? eol + 1 : NULL;
    }
    return false;
}

void tu_expect_one_error_bytes(const char *bytes, size_t len, const char *line)
{
    TuResult r = tu_parse_bytes(bytes, len);
    ck_assert_msg(r.errors == 1, "%d errors for \"%s\":\n%s", r.errors, line, r.diags);
    ck_assert_diag(r, line);
    tu_free(&r);
}

void tu_expect_one_error(const char *text, const char *line)
{
    tu_expect_one_error_bytes(text, strlen(text), line);
}

TCase *tu_tcase(const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, TU_HANG_SECONDS);
    return tc;
}

int tu_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
