/* testutil.c: run the front end on a string and capture what it says. */
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
