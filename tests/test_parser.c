/* test_parser.c: the grammar (compiler/parser.y): statements, arguments,
 * annotations, the messages of syntax errors and recovery from them. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ------------------------------------------------------------------------
 * Helpers
 */

static const Stmt *nth_stmt(const Ast *ast, int n)
{
    ck_assert_ptr_nonnull(ast);
    const Stmt *s = ast->first;
    for (int i = 0; i < n && s; i++)
        s = s->next;
    ck_assert_msg(s != NULL, "no statement %d", n);
    return s;
}

static const Arg *nth_arg(const Stmt *s, int n)
{
    const Arg *a = s->args;
    for (int i = 0; i < n && a; i++)
        a = a->next;
    ck_assert_msg(a != NULL, "no argument %d in %s", n, s->word);
    return a;
}

static int count_args(const Stmt *s)
{
    int n = 0;
    for (const Arg *a = s->args; a; a = a->next)
        n++;
    return n;
}

/* The words of all statements, space separated: "Input Conv ReLU"; a
 * statement lost to a syntax error (its word "") shows as "<lost>". */
static char *words(const Ast *ast)
{
    char *s = xstrdup("");
    for (const Stmt *st = ast->first; st; st = st->next) {
        char *t = xasprintf("%s%s%s", s, *s ? " " : "", *st->word ? st->word : "<lost>");
        free(s);
        s = t;
    }
    return s;
}

#define ck_assert_words(r, want)                 \
    do {                                         \
        char *w_ = words((r).ast);               \
        ck_assert_str_eq(w_, want);              \
        free(w_);                                \
    } while (0)

static char *printed(const Value *v)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    value_print(f, v);
    fclose(f);
    return buf;
}

/* The seed network, as the language spec gives it. */
static const char seed[] =
    "# seed.net: the network of the seed question (batch 128 of 96x96 RGB, 8 classes)\n"
    "Input(96x96x3)\n"
    "\n"
    "C1: Conv(kernel=4x4, n=40, stride=2)     -> 47x47x40\n"
    "    ReLU\n"
    "    MaxPool(size=3x3, stride=2)          -> 23x23x40\n"
    "C2: Conv(kernel=2x2, n=105)\n"
    "    ReLU\n"
    "    MaxPool(size=4x4, stride=2)          -> 10x10x105\n"
    "C3: Conv(kernel=2x2, n=158)\n"
    "    ReLU\n"
    "C4: Conv(kernel=2x2, n=158)\n"
    "    ReLU\n"
    "C5: Conv(kernel=2x2, n=105)\n"
    "    ReLU\n"
    "    MaxPool(size=3x3, stride=2)          -> 3x3x105\n"
    "    Flatten                              -> 945\n"
    "D1: Dense(n=945)\n"
    "    ReLU\n"
    "D2: Dense(n=475)\n"
    "    ReLU\n"
    "D3: Dense(n=8)\n"
    "    Softmax\n"
    "\n"
    "Train(batch=128, loss=cross_entropy, optimizer=momentum, lr=0.01, momentum=0.9,\n"
    "      init=he_normal, seed=1, epochs=10)\n";

/* ------------------------------------------------------------------------
 * What parses, into what
 */

START_TEST(test_seed_statements)
{
    TuResult r = tu_parse(seed);
    ck_assert_msg(r.errors == 0, "%s", r.diags);
    ck_assert_int_eq(r.ast->nstmts, 22);
    ck_assert_words(r, "Input Conv ReLU MaxPool Conv ReLU MaxPool Conv ReLU Conv ReLU Conv "
                       "ReLU MaxPool Flatten Dense ReLU Dense ReLU Dense Softmax Train");
    const char *labels[] = {"C1", "C2", "C3", "C4", "C5", "D1", "D2", "D3"};
    int nlabels = 0;
    for (const Stmt *s = r.ast->first; s; s = s->next)
        if (s->label)
            ck_assert_str_eq(s->label, labels[nlabels++]);
    ck_assert_int_eq(nlabels, 8);
    tu_free(&r);
}
END_TEST

START_TEST(test_seed_details)
{
    TuResult r = tu_parse(seed);
    const Stmt *input = nth_stmt(r.ast, 0);
    ck_assert(input->has_parens);
    ck_assert_ptr_null(input->label);
    ck_assert_ptr_null(input->args->key);
    ck_assert_int_eq(input->args->value.kind, VAL_DIMS);
    ck_assert_int_eq(input->args->value.u.dims.d[2], 3);

    const Stmt *c1 = nth_stmt(r.ast, 1);
    tu_assert_loc(c1->label_loc, 4, 1, 4, 2);
    tu_assert_loc(c1->word_loc, 4, 5, 4, 8);
    tu_assert_loc(c1->loc, 4, 1, 4, 52);
    ck_assert_int_eq(count_args(c1), 3);
    ck_assert_str_eq(nth_arg(c1, 0)->key, "kernel");
    ck_assert_str_eq(nth_arg(c1, 1)->key, "n");
    ck_assert_int_eq(nth_arg(c1, 1)->value.u.i, 40);
    ck_assert_str_eq(nth_arg(c1, 2)->key, "stride");
    ck_assert(c1->has_annotation);
    ck_assert_int_eq(c1->annotation.kind, VAL_DIMS);
    ck_assert_int_eq(c1->annotation.u.dims.d[0], 47);
    ck_assert_int_eq(c1->annotation.u.dims.d[2], 40);

    const Stmt *relu = nth_stmt(r.ast, 2);
    ck_assert(!relu->has_parens);
    ck_assert(!relu->has_annotation);
    ck_assert_ptr_null(relu->args);

    const Stmt *flatten = nth_stmt(r.ast, 14);
    ck_assert_str_eq(flatten->word, "Flatten");
    ck_assert_int_eq(flatten->annotation.kind, VAL_INT);
    ck_assert_int_eq(flatten->annotation.u.i, 945);

    /* Train spans two lines. */
    const Stmt *train = nth_stmt(r.ast, 21);
    ck_assert_int_eq(count_args(train), 8);
    ck_assert_str_eq(nth_arg(train, 1)->value.u.name, "cross_entropy");
    ck_assert_int_eq(nth_arg(train, 3)->value.kind, VAL_FLOAT);
    ck_assert_double_eq(nth_arg(train, 3)->value.u.f, 0.01);
    ck_assert_str_eq(nth_arg(train, 5)->key, "init");
    tu_assert_loc(nth_arg(train, 5)->loc, 26, 7, 26, 20);
    tu_assert_loc(train->loc, 25, 1, 26, 40);
    tu_free(&r);
}
END_TEST

START_TEST(test_positional_args)
{
    TuResult r = tu_parse("MaxPool(3x3, stride=2)\nConv(4x4, 40, valid, true, 0.5)");
    ck_assert_int_eq(r.errors, 0);
    const Stmt *s = nth_stmt(r.ast, 0);
    ck_assert_ptr_null(nth_arg(s, 0)->key);
    ck_assert_int_eq(nth_arg(s, 0)->value.kind, VAL_DIMS);
    ck_assert_str_eq(nth_arg(s, 1)->key, "stride");
    s = nth_stmt(r.ast, 1);
    const ValueKind kinds[] = {VAL_DIMS, VAL_INT, VAL_NAME, VAL_BOOL, VAL_FLOAT};
    for (int i = 0; i < 5; i++) {
        ck_assert_ptr_null(nth_arg(s, i)->key);
        ck_assert_int_eq(nth_arg(s, i)->value.kind, kinds[i]);
    }
    /* A positional argument's range is its value's. */
    tu_assert_loc(nth_arg(s, 2)->loc, 2, 15, 2, 19);
    tu_free(&r);
}
END_TEST

START_TEST(test_key_locations)
{
    TuResult r = tu_parse("Dense(n=10, bias=false)");
    const Arg *a = nth_arg(nth_stmt(r.ast, 0), 1);
    tu_assert_loc(a->key_loc, 1, 13, 1, 16);
    tu_assert_loc(a->value.loc, 1, 18, 1, 22);
    tu_assert_loc(a->loc, 1, 13, 1, 22);
    tu_free(&r);
}
END_TEST

START_TEST(test_empty_parens)
{
    TuResult r = tu_parse("ReLU() ReLU Flatten ( ) -> 10");
    ck_assert_int_eq(r.errors, 0);
    ck_assert_int_eq(r.ast->nstmts, 3);
    ck_assert(nth_stmt(r.ast, 0)->has_parens);
    ck_assert_ptr_null(nth_stmt(r.ast, 0)->args);
    tu_assert_loc(nth_stmt(r.ast, 0)->loc, 1, 1, 1, 6);
    ck_assert(!nth_stmt(r.ast, 1)->has_parens);
    ck_assert(nth_stmt(r.ast, 2)->has_parens);
    ck_assert(nth_stmt(r.ast, 2)->has_annotation);
    tu_free(&r);
}
END_TEST

/* As in Python, a trailing comma is fine; two are not. */
START_TEST(test_trailing_comma)
{
    TuResult r = tu_parse("Train(batch=1,\n      epochs=2,\n)");
    ck_assert_int_eq(r.errors, 0);
    ck_assert_int_eq(count_args(nth_stmt(r.ast, 0)), 2);
    tu_free(&r);
    tu_expect_one_error("Train(batch=1,,)", "t.net:1:15: error: expected an argument before ','");
}
END_TEST

/* Statements need no separator; a name before '(' is a call however far the
 * '(' is, comments included. */
START_TEST(test_statement_layout)
{
    TuResult r = tu_parse("Input(4) ReLU Dense(n=3) Softmax\n"
                          "Conv # the kernel next\n  (n=1)\n"
                          "A: ReLU -> 4 B:Flatten");
    ck_assert_msg(r.errors == 0, "%s", r.diags);
    ck_assert_words(r, "Input ReLU Dense Softmax Conv ReLU Flatten");
    const Stmt *conv = nth_stmt(r.ast, 4);
    ck_assert(conv->has_parens);
    tu_assert_loc(conv->loc, 2, 1, 3, 7);
    const Stmt *a = nth_stmt(r.ast, 5);
    ck_assert_str_eq(a->label, "A");
    ck_assert(!a->has_parens);
    ck_assert_int_eq(a->annotation.u.i, 4);
    tu_assert_loc(a->loc, 4, 1, 4, 12);
    ck_assert_str_eq(nth_stmt(r.ast, 6)->label, "B");
    tu_free(&r);
}
END_TEST

/* Arguments keep their order, and many of them parse in linear time. */
START_TEST(test_many_args)
{
    enum { N = 20000 };
    size_t cap = (size_t)N * 16 + 16, len = 0;
    char *text = xmalloc(cap);
    len += (size_t)snprintf(text, cap, "T(");
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(text + len, cap - len, "k%d=%d,", i, i);
    snprintf(text + len, cap - len, ")");
    TuResult r = tu_parse(text);
    ck_assert_int_eq(r.errors, 0);
    int i = 0;
    for (const Arg *a = r.ast->first->args; a; a = a->next, i++) {
        ck_assert_int_eq(a->value.u.i, i);
        ck_assert_int_eq(atoi(a->key + 1), i);
    }
    ck_assert_int_eq(i, N);
    tu_free(&r);
    free(text);
}
END_TEST

START_TEST(test_many_statements)
{
    enum { N = 50000 };
    size_t cap = (size_t)N * 24 + 1, len = 0;
    char *text = xmalloc(cap);
    text[0] = '\0';
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(text + len, cap - len, "L%d: Dense(n=%d)\n", i, i + 1);
    TuResult r = tu_parse(text);
    ck_assert_int_eq(r.errors, 0);
    ck_assert_int_eq(r.ast->nstmts, N);
    const Stmt *last = nth_stmt(r.ast, N - 1);
    ck_assert_str_eq(last->label, "L49999");
    tu_assert_loc(last->loc, N, 1, N, 22);
    tu_free(&r);
    free(text);
}
END_TEST

START_TEST(test_value_print)
{
    TuResult r = tu_parse("T(40, -3, 0.01, 1e-3, .5, 2., 1e300, true, false, valid, 4x4, 96x96x3)");
    const char *want[] = {"40",   "-3",    "0.01",  "0.001", "0.5", "2.0",
                          "1e+300", "true", "false", "valid", "4x4", "96x96x3"};
    int i = 0;
    for (const Arg *a = r.ast->first->args; a; a = a->next, i++) {
        char *got = printed(&a->value);
        ck_assert_str_eq(got, want[i]);
        free(got);
    }
    ck_assert_int_eq(i, 12);
    tu_free(&r);
}
END_TEST

/* The parser takes any dims or integer after '->'; the checker judges it. */
START_TEST(test_annotation_forms)
{
    TuResult r = tu_parse("A -> 47x47 B -> -5 C -> 0");
    ck_assert_int_eq(r.errors, 0);
    ck_assert_int_eq(nth_stmt(r.ast, 0)->annotation.u.dims.n, 2);
    ck_assert_int_eq(nth_stmt(r.ast, 1)->annotation.kind, VAL_INT);
    ck_assert_int_eq(nth_stmt(r.ast, 1)->annotation.u.i, -5);
    tu_assert_loc(nth_stmt(r.ast, 1)->annotation.loc, 1, 17, 1, 18);
    ck_assert_int_eq(nth_stmt(r.ast, 2)->annotation.u.i, 0);
    tu_free(&r);
}
END_TEST

/* ------------------------------------------------------------------------
 * Syntax errors: one message each, in GCC's words, at the right place
 */

START_TEST(test_missing_paren)
{
    TuResult r = tu_parse("C1: Conv(kernel=4x4, n=40\n"
                          "C2: Conv(kernel=2x2, n=105)\n");
    ck_assert_int_eq(r.errors, 1);
    /* Shown where the ')' belongs: at the end of line 1, not on line 2. */
    ck_assert_diag(r, "t.net:1:26: error: expected ')' before 'C2'");
    ck_assert_diag(r, "    1 | C1: Conv(kernel=4x4, n=40");
    ck_assert_diag(r, "      |                          ^");
    /* Recovery: the broken statement is lost, the next one parsed. */
    ck_assert_words(r, "<lost> Conv");
    ck_assert_str_eq(r.ast->first->next->label, "C2");
    tu_free(&r);

    tu_expect_one_error("Conv(n=4 ReLU()", "t.net:1:10: error: expected ')' before 'ReLU'");
    tu_expect_one_error("Conv(n=4 -> 3", "t.net:1:10: error: expected ')' before '->'");
    tu_expect_one_error("Conv(n=4", "t.net:1:9: error: expected ')' at end of input");
    tu_expect_one_error("Conv(", "t.net:1:6: error: expected ')' at end of input");
}
END_TEST

START_TEST(test_missing_comma)
{
    tu_expect_one_error("Conv(kernel=4x4 n=40)", "t.net:1:17: error: expected ',' before 'n'");
    tu_expect_one_error("MaxPool(3x3 2)", "t.net:1:13: error: expected ',' before '2'");
    tu_expect_one_error("Conv(4x4 same)", "t.net:1:10: error: expected ',' or ')' before 'same'");
}
END_TEST

START_TEST(test_missing_value)
{
    tu_expect_one_error("Conv(n=)", "t.net:1:8: error: expected a value after '='");
    tu_expect_one_error("Conv(n=, k=3)", "t.net:1:8: error: expected a value after '='");
    /* At the end of a line, the message points there. */
    tu_expect_one_error("Train(lr=\n  seed=1)", "t.net:1:10: error: expected a value after '='");
}
END_TEST

START_TEST(test_missing_shape)
{
    tu_expect_one_error("Flatten -> ReLU", "t.net:1:12: error: expected a shape after '->'");
    tu_expect_one_error("Dense(n=3) ->", "t.net:1:14: error: expected a shape after '->'");
    tu_expect_one_error("Dense(n=3) -> 0.5", "t.net:1:15: error: expected a shape after '->'");
}
END_TEST

START_TEST(test_label_errors)
{
    tu_expect_one_error("C1: -> 3", "t.net:1:5: error: expected a layer name after ':'");
    tu_expect_one_error("C1: 42", "t.net:1:5: error: expected a layer name after ':'");
    tu_expect_one_error(": Conv(n=1)", "t.net:1:1: error: expected a layer name before ':'");
}
END_TEST

START_TEST(test_word_errors)
{
    tu_expect_one_error("Dense n=10", "t.net:1:7: error: expected '(' before 'n'");
    tu_expect_one_error("Dense 10", "t.net:1:7: error: expected '(' or '->' before '10'");
    tu_expect_one_error("Conv(n=1) 47x47x40", "t.net:1:11: error: expected '->' before '47x47x40'");
    tu_expect_one_error("ReLU)", "t.net:1:5: error: unmatched ')'");
    tu_expect_one_error("Conv(n=1))", "t.net:1:10: error: unmatched ')'");
    tu_expect_one_error("42", "t.net:1:1: error: expected a layer name before '42'");
    tu_expect_one_error("n=3", "t.net:1:1: error: expected a layer name before 'n'");
}
END_TEST

START_TEST(test_argument_errors)
{
    tu_expect_one_error("Conv(,n=3)", "t.net:1:6: error: expected an argument before ','");
    tu_expect_one_error("Conv(=3)", "t.net:1:6: error: expected an argument before '='");
    tu_expect_one_error("Conv(kernel: 3x3)", "t.net:1:12: error: expected '=' before ':'");
    tu_expect_one_error("Conv(n=3, k: 3)", "t.net:1:12: error: expected '=' before ':'");
    tu_expect_one_error("Conv(n=3 == 4)", "t.net:1:10: error: expected ',' or ')' before '='");
}
END_TEST

/* A long token is cut short in the message. */
START_TEST(test_long_token_in_message)
{
    char text[200] = "Dense ";
    memset(text + 6, 'q', 100);
    strcpy(text + 106, "=1");
    tu_expect_one_error(text, "t.net:1:7: error: expected '(' before "
                              "'qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq...'");
}
END_TEST

/* ------------------------------------------------------------------------
 * Recovery: every broken statement of a file gets its message
 */

START_TEST(test_several_errors)
{
    TuResult r = tu_parse("Input(8x8x1)\n"
                          "C1: Conv(kernel=3x3 n=4)\n"     /* missing ',' */
                          "    ReLU\n"
                          "C2: Conv(kernel=3x3, n=)\n"     /* missing value */
                          "    MaxPool(size=2x2 -> 3x3x4\n" /* missing ')' */
                          "    Flatten -> 36\n"
                          "D1: Dense(n=10)\n"
                          "    Softmax\n");
    ck_assert_int_eq(r.errors, 3);
    ck_assert_diag(r, "t.net:2:21: error: expected ',' before 'n'");
    ck_assert_diag(r, "t.net:4:24: error: expected a value after '='");
    ck_assert_diag(r, "t.net:5:22: error: expected ')' before '->'");
    /* The good statements around them are there; ReLU and Flatten come
     * right after a broken statement and are skipped with it. Each broken
     * statement leaves a lost one in its place. */
    ck_assert_words(r, "Input <lost> <lost> <lost> Dense Softmax");
    tu_free(&r);
}
END_TEST

/* After an error, reporting starts again at once at the next statement. */
START_TEST(test_errors_back_to_back)
{
    TuResult r = tu_parse("A(=)B(=)C(=)\nD: (");
    ck_assert_int_eq(r.errors, 4);
    ck_assert_diag(r, "t.net:1:3: error: expected an argument before '='");
    ck_assert_diag(r, "t.net:1:7: error: expected an argument before '='");
    ck_assert_diag(r, "t.net:1:11: error: expected an argument before '='");
    ck_assert_diag(r, "t.net:2:4: error: expected a layer name after ':'");
    ck_assert_words(r, "<lost> <lost> <lost> <lost>");
    tu_free(&r);
}
END_TEST

/* A lexical error is reported by the scanner alone: the parser drops the
 * statement quietly and goes on. */
START_TEST(test_lexical_error_no_cascade)
{
    TuResult r = tu_parse("Input(8)\nDense(n=4x, bias=true) ReLU\nDense(n=3)");
    ck_assert_int_eq(r.errors, 1);
    ck_assert_diag(r, "t.net:2:9: error: malformed number '4x'");
    ck_assert_words(r, "Input <lost> Dense");
    ck_assert_int_eq(nth_arg(nth_stmt(r.ast, 2), 0)->value.u.i, 3);
    tu_free(&r);
}
END_TEST

/* An error whose recovery runs into the end of the file: the statements
 * before it stay. */
START_TEST(test_error_runs_to_end)
{
    TuResult r = tu_parse("Input(1) Flatten\nConv(= ReLU Flatten ) ) ,");
    ck_assert_int_eq(r.errors, 1);
    ck_assert_diag(r, "t.net:2:6: error: expected an argument before '='");
    ck_assert_words(r, "Input Flatten <lost>");
    tu_free(&r);
}
END_TEST

/* true and false are values, never names. As a label, the message says so
 * at the word, and the statement is kept, unlabelled. */
START_TEST(test_reserved_words)
{
    TuResult r = tu_parse("Input(784)\ntrue: Dense(n=10)\nfalse : Softmax");
    ck_assert_int_eq(r.errors, 2);
    ck_assert_diag(r, "t.net:2:1: error: 'true' is reserved and cannot be a label");
    ck_assert_diag(r, "      = hint: true and false are values; choose another label");
    ck_assert_diag(r, "t.net:3:1: error: 'false' is reserved and cannot be a label");
    ck_assert_words(r, "Input Dense Softmax");
    ck_assert_ptr_null(nth_stmt(r.ast, 1)->label);
    ck_assert_int_eq(nth_arg(nth_stmt(r.ast, 1), 0)->value.u.i, 10);
    tu_free(&r);
    tu_expect_one_error("Conv(false=1)", "t.net:1:11: error: expected ',' or ')' before '='");
    /* A value before ':' is no label. */
    tu_expect_one_error("Dense(bias=true: n=3)",
                        "t.net:1:16: error: expected ',' or ')' before ':'");
    r = tu_parse("Conv(true_ish=1, False=2)");
    ck_assert_int_eq(r.errors, 0);
    ck_assert_str_eq(nth_arg(nth_stmt(r.ast, 0), 1)->key, "False");
    tu_free(&r);
}
END_TEST

/* "(((((..." ten thousand deep ends in one error, not a crash. */
START_TEST(test_deep_parens)
{
    enum { N = 10000 };
    char *text = xmalloc(N + 8);
    static const char *const starts[] = {"", "Conv", "C:", ")"};
    for (int k = 0; k < 4; k++) {
        for (char fill = '('; fill <= ')'; fill++) {
            size_t len = strlen(starts[k]);
            memcpy(text, starts[k], len);
            memset(text + len, fill, N);
            text[len + N] = '\0';
            TuResult r = tu_parse(text);
            ck_assert_msg(r.errors == 1, "start '%s', fill '%c':\n%s", starts[k], fill,
                          r.diags);
            ck_assert_ptr_nonnull(r.ast);
            tu_free(&r);
        }
    }
    free(text);
}
END_TEST

/* Past the error limit the parse stops, with the note diag.c prints. */
START_TEST(test_error_limit)
{
    size_t cap = 200 * 16, len = 0;
    char *text = xmalloc(cap);
    text[0] = '\0';
    for (int i = 0; i < 200; i++)
        len += (size_t)snprintf(text + len, cap - len, "L%d: Conv(=)\n", i);
    TuResult r = tu_parse(text);
    ck_assert_int_eq(r.errors, DIAG_DEFAULT_MAX_ERRORS);
    ck_assert_diag(r, "t.net:20:11: error: expected an argument before '='");
    ck_assert_diag(r, "t.net: note: stopping after 20 errors");
    tu_free(&r);
    free(text);
}
END_TEST

static Suite *parser_suite(void)
{
    Suite *s = suite_create("parser");
    TCase *good = tu_tcase("good");
    tcase_add_test(good, test_seed_statements);
    tcase_add_test(good, test_seed_details);
    tcase_add_test(good, test_positional_args);
    tcase_add_test(good, test_key_locations);
    tcase_add_test(good, test_empty_parens);
    tcase_add_test(good, test_trailing_comma);
    tcase_add_test(good, test_statement_layout);
    tcase_add_test(good, test_many_args);
    tcase_add_test(good, test_many_statements);
    tcase_add_test(good, test_value_print);
    tcase_add_test(good, test_annotation_forms);
    suite_add_tcase(s, good);

    TCase *bad = tu_tcase("errors");
    tcase_add_test(bad, test_missing_paren);
    tcase_add_test(bad, test_missing_comma);
    tcase_add_test(bad, test_missing_value);
    tcase_add_test(bad, test_missing_shape);
    tcase_add_test(bad, test_label_errors);
    tcase_add_test(bad, test_word_errors);
    tcase_add_test(bad, test_argument_errors);
    tcase_add_test(bad, test_long_token_in_message);
    suite_add_tcase(s, bad);

    TCase *recovery = tu_tcase("recovery");
    tcase_add_test(recovery, test_several_errors);
    tcase_add_test(recovery, test_errors_back_to_back);
    tcase_add_test(recovery, test_lexical_error_no_cascade);
    tcase_add_test(recovery, test_error_runs_to_end);
    tcase_add_test(recovery, test_reserved_words);
    tcase_add_test(recovery, test_deep_parens);
    tcase_add_test(recovery, test_error_limit);
    suite_add_tcase(s, recovery);
    return s;
}

int main(void)
{
    return tu_run_suite(parser_suite());
}
