/* ast.c: the syntax tree's nodes. The parser (parser.y) builds them; the
 * checker reads them; ast_free gives them all back. */
#include "cnnc.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

Stmt *stmt_new(void)
{
    return xcalloc(1, sizeof(Stmt));
}

Arg *arg_new(void)
{
    return xcalloc(1, sizeof(Arg));
}

/* Only a name owns memory. */
void value_free(Value *v)
{
    if (v->kind == VAL_NAME) {
        free(v->u.name);
        v->u.name = NULL;
    }
}

void arg_free_list(Arg *a)
{
    while (a) {
        Arg *next = a->next;
        free(a->key);
        value_free(&a->value);
        free(a);
        a = next;
    }
}

/* One statement; s->next is left alone (ast_free walks the list). */
void stmt_free(Stmt *s)
{
    if (!s)
        return;
    free(s->label);
    free(s->word);
    arg_free_list(s->args);
    if (s->has_annotation)
        value_free(&s->annotation);
    free(s);
}

void ast_free(Ast *a)
{
    if (!a)
        return;
    Stmt *s = a->first;
    while (s) {
        Stmt *next = s->next;
        stmt_free(s);
        s = next;
    }
    free(a);
}

/* The shortest "%.*g" that reads back as f, so 0.01 prints as 0.01 and not
 * 0.010000000000000000208; a '.' is added when that looks like an integer,
 * so a float stays recognisable ("2." prints as 2.0). */
static void print_float(FILE *f, double x)
{
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    fputs(buf, f);
    if (strspn(buf, "-0123456789") == strlen(buf))
        fputs(".0", f);
}

void value_print(FILE *f, const Value *v)
{
    switch (v->kind) {
    case VAL_INT:
        fprintf(f, "%" PRId64, v->u.i);
        break;
    case VAL_FLOAT:
        print_float(f, v->u.f);
        break;
    case VAL_BOOL:
        fputs(v->u.b ? "true" : "false", f);
        break;
    case VAL_NAME:
        fputs(v->u.name ? v->u.name : "", f);
        break;
    case VAL_DIMS:
        for (int i = 0; i < v->u.dims.n && i < 3; i++)
            fprintf(f, i ? "x%" PRId64 : "%" PRId64, v->u.dims.d[i]);
        break;
    case VAL_LIST:
        fputc('[', f);
        for (int i = 0; i < v->u.list.n && i < CNNC_MAX_LIST; i++) {
            if (i)
                fputs(", ", f);
            print_float(f, v->u.list.v[i]);
        }
        fputc(']', f);
        break;
    }
}
