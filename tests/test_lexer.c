/* test_lexer.c: the scanner (compiler/lexer.l), seen through parse_source.
 *
 * Each token kind reaches the Ast as a value or a statement part, so the
 * tests parse one small statement and look at what came out: kinds, values,
 * exact locations, and the exact text and place of every lexical error. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ------------------------------------------------------------------------
 * Helpers
 */

/* The first argument's value of the first statement. */
static const Value *first_value(const TuResult *r)
{
    ck_assert_ptr_nonnull(r->ast);
    ck_assert_ptr_nonnull(r->ast->first);
    ck_assert_ptr_nonnull(r->ast->first->args);
    return &r->ast->first->args->value;
}

/* Parses "T(<text>)" and expects no message at all. */
static TuResult parse_value(const char *text)
{
    char *src = xasprintf("T(%s)", text);
    TuResult r = tu_parse(src);
    free(src);
    ck_assert_msg(r.errors == 0, "'%s': unexpected diagnostics:\n%s", text, r.diags);
    return r;
}

/* The string literal lit, NUL bytes and all, must give exactly one error,
 * the message given. */
#define EXPECT_ONE_ERROR(lit, line) tu_expect_one_error_bytes(lit, sizeof(lit) - 1, line)

/* ------------------------------------------------------------------------
 * Values
 */

START_TEST(test_integer)
{
    TuResult r = parse_value("40");
    const Value *v = first_value(&r);
    ck_assert_int_eq(v->kind, VAL_INT);
    ck_assert_int_eq(v->u.i, 40);
    tu_assert_loc(v->loc, 1, 3, 1, 4);
    tu_free(&r);
}
END_TEST

/* "n=-5" lexes, so that the checker can say n must be positive. */
START_TEST(test_negative_integer)
{
    TuResult r = parse_value("n=-5");
    const Value *v = first_value(&r);
    ck_assert_int_eq(v->kind, VAL_INT);
    ck_assert_int_eq(v->u.i, -5);
    tu_assert_loc(v->loc, 1, 5, 1, 6);
    tu_free(&r);
}
END_TEST

START_TEST(test_integer_limits)
{
    TuResult r = parse_value("9223372036854775807, -9223372036854775808, 007");
    const Arg *a = r.ast->first->args;
    ck_assert_int_eq(a->value.u.i, INT64_MAX);
    ck_assert_int_eq(a->next->value.u.i, INT64_MIN);
    ck_assert_int_eq(a->next->next->value.u.i, 7);
    tu_free(&r);
}
END_TEST

START_TEST(test_integer_overflow)
{
    EXPECT_ONE_ERROR("T(n=9223372036854775808)",
                     "t.net:1:5: error: integer 9223372036854775808 is too large");
    EXPECT_ONE_ERROR("T(n=-9223372036854775809)",
                     "t.net:1:5: error: integer -9223372036854775809 is too small");
}
END_TEST

/* A very long number is echoed cut short, and the range still covers it. */
START_TEST(test_integer_overflow_long)
{
    char text[300] = "T(";
    memset(text + 2, '9', 200);
    strcpy(text + 202, ")\nReLU(");
    TuResult r = tu_parse(text);
    ck_assert_int_eq(r.errors, 2);
    ck_assert_diag(r, "t.net:1:3: error: integer 99999999999999999999999999999999... is too large");
    /* The lexical error is not reported twice; the next one is the parser's. */
    ck_assert_diag(r, "t.net:2:6: error: expected ')' at end of input");
    tu_free(&r);
}
END_TEST

START_TEST(test_floats)
{
    TuResult r = parse_value("0.01, 1e-3, .5, -0.1, 2., 1E+2, -.5, 3e0");
    const double want[] = {0.01, 1e-3, .5, -0.1, 2., 1e2, -.5, 3.0};
    int i = 0;
    for (const Arg *a = r.ast->first->args; a; a = a->next, i++) {
        ck_assert_int_eq(a->value.kind, VAL_FLOAT);
        ck_assert_double_eq(a->value.u.f, want[i]);
    }
    ck_assert_int_eq(i, 8);
    /* ".5" is columns 14-15 of "T(0.01, 1e-3, .5, ...". */
    tu_assert_loc(r.ast->first->args->next->next->value.loc, 1, 15, 1, 16);
    tu_free(&r);
}
END_TEST

START_TEST(test_float_range)
{
    EXPECT_ONE_ERROR("T(lr=1e999)", "t.net:1:6: error: number 1e999 is too large");
    EXPECT_ONE_ERROR("T(lr=-1e400)", "t.net:1:6: error: number -1e400 is too small");
    /* Underflow is just a tiny number. */
    TuResult r = parse_value("1e-999");
    ck_assert_int_eq(first_value(&r)->kind, VAL_FLOAT);
    ck_assert(first_value(&r)->u.f == 0.0);
    tu_free(&r);
}
END_TEST

START_TEST(test_dims)
{
    TuResult r = parse_value("kernel=4x4, 96x96x3");
    const Value *v = first_value(&r);
    ck_assert_int_eq(v->kind, VAL_DIMS);
    ck_assert_int_eq(v->u.dims.n, 2);
    ck_assert_int_eq(v->u.dims.d[0], 4);
    ck_assert_int_eq(v->u.dims.d[1], 4);
    tu_assert_loc(v->loc, 1, 10, 1, 12);
    v = &r.ast->first->args->next->value;
    ck_assert_int_eq(v->u.dims.n, 3);
    ck_assert_int_eq(v->u.dims.d[0], 96);
    ck_assert_int_eq(v->u.dims.d[1], 96);
    ck_assert_int_eq(v->u.dims.d[2], 3);
    tu_assert_loc(v->loc, 1, 15, 1, 21);
    tu_free(&r);
}
END_TEST

START_TEST(test_dims_errors)
{
    EXPECT_ONE_ERROR("Input(1x2x3x4)",
                     "t.net:1:7: error: too many dimensions in '1x2x3x4': at most 3 (HxWxC)");
    EXPECT_ONE_ERROR("Input(99999999999999999999x2)",
                     "t.net:1:7: error: dimension 99999999999999999999 is too large");
}
END_TEST

START_TEST(test_malformed_numbers)
{
    EXPECT_ONE_ERROR("T(kernel=4x)", "t.net:1:10: error: malformed number '4x'");
    EXPECT_ONE_ERROR("T(n=12abc)", "t.net:1:5: error: malformed number '12abc'");
    EXPECT_ONE_ERROR("T(lr=1e)", "t.net:1:6: error: malformed number '1e'");
    EXPECT_ONE_ERROR("T(lr=1.2.3)", "t.net:1:6: error: malformed number '1.2.3'");
    EXPECT_ONE_ERROR("T(0x1p3)", "t.net:1:3: error: malformed number '0x1p3'");
    EXPECT_ONE_ERROR("T(4X4)", "t.net:1:3: error: malformed number '4X4'");
    EXPECT_ONE_ERROR("T(-4x4)", "t.net:1:3: error: malformed number '-4x4'");
    EXPECT_ONE_ERROR("T(4x4x)", "t.net:1:3: error: malformed number '4x4x'");
}
END_TEST

START_TEST(test_booleans_and_names)
{
    TuResult r = parse_value("true, false, trueish, _x9, he_normal");
    const Arg *a = r.ast->first->args;
    ck_assert_int_eq(a->value.kind, VAL_BOOL);
    ck_assert(a->value.u.b);
    a = a->next;
    ck_assert_int_eq(a->value.kind, VAL_BOOL);
    ck_assert(!a->value.u.b);
    const char *names[] = {"trueish", "_x9", "he_normal"};
    for (int i = 0; i < 3; i++) {
        a = a->next;
        ck_assert_int_eq(a->value.kind, VAL_NAME);
        ck_assert_str_eq(a->value.u.name, names[i]);
    }
    tu_free(&r);
}
END_TEST

/* ------------------------------------------------------------------------
 * Punctuation, whitespace, comments, locations
 */

START_TEST(test_punctuation_without_spaces)
{
    TuResult r = tu_parse("A:B(k=1,2)->3x4 C:Flatten->945");
    ck_assert_int_eq(r.errors, 0);
    ck_assert_int_eq(r.ast->nstmts, 2);
    const Stmt *s = r.ast->first;
    ck_assert_str_eq(s->label, "A");
    ck_assert_str_eq(s->word, "B");
    ck_assert_str_eq(s->args->key, "k");
    ck_assert_ptr_null(s->args->next->key);
    ck_assert(s->has_annotation);
    ck_assert_int_eq(s->annotation.u.dims.d[1], 4);
    s = s->next;
    ck_assert_str_eq(s->label, "C");
    ck_assert_int_eq(s->annotation.kind, VAL_INT);
    ck_assert_int_eq(s->annotation.u.i, 945);
    tu_free(&r);
}
END_TEST

START_TEST(test_comments)
{
    /* Comments may hold anything but a newline: NULs, bad UTF-8, '@'. */
    static const char text[] = "# head \xff\xc3 @\n"
                               "ReLU # after \0 a word\n"
                               "#Flatten\n"
                               "Softmax#no newline at the end";
    TuResult r = tu_parse_bytes(text, sizeof text - 1);
    ck_assert_int_eq(r.errors, 0);
    ck_assert_int_eq(r.ast->nstmts, 2);
    ck_assert_str_eq(r.ast->first->word, "ReLU");
    ck_assert_str_eq(r.ast->first->next->word, "Softmax");
    tu_assert_loc(r.ast->first->next->word_loc, 4, 1, 4, 7);
    tu_free(&r);
}
END_TEST

/* Lines and columns are 1-based, in bytes; a tab is one column. */
START_TEST(test_locations)
{
    TuResult r = tu_parse("Input(8)\n\n  C1:\tConv(n=4)\n\t-> 4x4x4\n");
    ck_assert_int_eq(r.errors, 0);
    const Stmt *s = r.ast->first;
    tu_assert_loc(s->word_loc, 1, 1, 1, 5);
    tu_assert_loc(s->loc, 1, 1, 1, 8);
    s = s->next;
    tu_assert_loc(s->label_loc, 3, 3, 3, 4);
    tu_assert_loc(s->word_loc, 3, 7, 3, 10);
    tu_assert_loc(s->args->key_loc, 3, 12, 3, 12);
    tu_assert_loc(s->args->value.loc, 3, 14, 3, 14);
    tu_assert_loc(s->annotation.loc, 4, 5, 4, 9);
    tu_assert_loc(s->loc, 3, 3, 4, 9);
    tu_free(&r);
}
END_TEST

START_TEST(test_empty_and_blank)
{
    const char *texts[] = {"", " \t\n\n", "# only a comment", "#a\n#b\n\n"};
    for (int i = 0; i < 4; i++) {
        TuResult r = tu_parse(texts[i]);
        ck_assert_int_eq(r.errors, 0);
        ck_assert_ptr_nonnull(r.ast);
        ck_assert_int_eq(r.ast->nstmts, 0);
        ck_assert_ptr_null(r.ast->first);
        ck_assert_str_eq(r.diags, "");
        tu_free(&r);
    }
}
END_TEST

START_TEST(test_crlf)
{
    TuResult r = tu_parse("ReLU\r\nFlatten -> 10\r\n");
    ck_assert_int_eq(r.errors, 0);
    ck_assert_int_eq(r.ast->nstmts, 2);
    tu_assert_loc(r.ast->first->next->annotation.loc, 2, 12, 2, 13);
    tu_free(&r);
    /* A carriage return alone is not a line break. */
    EXPECT_ONE_ERROR("ReLU\rFlatten", "t.net:1:5: error: unexpected byte 0x0d");
}
END_TEST

/* ------------------------------------------------------------------------
 * Stray bytes: reported where they are, then skipped
 */

START_TEST(test_unexpected_character)
{
    TuResult r = tu_parse("Input(8)\n  ReLU @ Flatten\n");
    ck_assert_int_eq(r.errors, 1);
    ck_assert_diag(r, "t.net:2:8: error: unexpected character '@'");
    ck_assert_diag(r, "    2 |   ReLU @ Flatten");
    ck_assert_diag(r, "      |        ^");
    /* Scanning went on: all three statements are there. */
    ck_assert_int_eq(r.ast->nstmts, 3);
    tu_free(&r);
    EXPECT_ONE_ERROR("ReLU '", "t.net:1:6: error: unexpected character \"'\"");
    EXPECT_ONE_ERROR("ReLU -", "t.net:1:6: error: unexpected character '-'");
    EXPECT_ONE_ERROR("ReLU .", "t.net:1:6: error: unexpected character '.'");
}
END_TEST

START_TEST(test_nul_bytes)
{
    static const char text[] = "ReLU \0 Flatten\n\0\0";
    TuResult r = tu_parse_bytes(text, sizeof text - 1);
    ck_assert_int_eq(r.errors, 3);
    ck_assert_diag(r, "t.net:1:6: error: unexpected NUL byte");
    ck_assert_diag(r, "t.net:2:1: error: unexpected NUL byte");
    ck_assert_diag(r, "t.net:2:2: error: unexpected NUL byte");
    ck_assert_int_eq(r.ast->nstmts, 2);
    ck_assert_str_eq(r.ast->first->next->word, "Flatten");
    tu_free(&r);
    /* Inside a name, NULs make it one bad name, which shows them as '?'. */
    static const char glued[] = "ReLU\0Flatten\0\0";
    r = tu_parse_bytes(glued, sizeof glued - 1);
    ck_assert_int_eq(r.errors, 1);
    ck_assert_diag(r, "t.net:1:5: error: unexpected NUL byte");
    ck_assert_int_eq(r.ast->nstmts, 1);
    ck_assert_str_eq(r.ast->first->word, "ReLU?Flatten??");
    tu_free(&r);
}
END_TEST

START_TEST(test_non_ascii_bytes)
{
    EXPECT_ONE_ERROR("ReLU \xff", "t.net:1:6: error: unexpected byte 0xff");
    EXPECT_ONE_ERROR("ReLU\x01", "t.net:1:5: error: unexpected byte 0x01");
    EXPECT_ONE_ERROR("ReLU \x7f", "t.net:1:6: error: unexpected byte 0x7f");
    /* A run of them (here UTF-8 "4×4") is one message. */
    EXPECT_ONE_ERROR("T(4\xc3\x97)", "t.net:1:4: error: unexpected bytes 0xc3 0x97");
    EXPECT_ONE_ERROR("\x80\x81\x82\x83\x84\x85",
                     "t.net:1:1: error: unexpected bytes 0x80 0x81 0x82 0x83 ...");
}
END_TEST

/* Stray bytes glued to a name make one bad name: one message, at the first
 * stray byte, and the name kept whole (unprintable bytes as '?'), so that
 * the statement keeps its shape and the checker can pass over it. */
START_TEST(test_stray_in_name)
{
    TuResult r = tu_parse("Input(8)\nR\xe9LU\nFlatten");
    ck_assert_int_eq(r.errors, 1);
    ck_assert_diag(r, "t.net:2:2: error: unexpected byte 0xe9");
    ck_assert_diag(r, "    2 | R?LU");
    ck_assert_diag(r, "      |  ^");
    ck_assert_diag(r, "      = hint: names are made of ASCII letters, digits and '_'");
    ck_assert_int_eq(r.ast->nstmts, 3);
    ck_assert_str_eq(r.ast->first->next->word, "R?LU");
    tu_assert_loc(r.ast->first->next->word_loc, 2, 1, 2, 4);
    tu_free(&r);

    /* UTF-8 inside a name, a stray byte before one, a label, a key. */
    r = tu_parse("D\xc3\xa9nse(n=1) @ReLU C\xe9: Conv(k\xe9y=2)");
    ck_assert_int_eq(r.errors, 4);
    ck_assert_diag(r, "t.net:1:2: error: unexpected bytes 0xc3 0xa9");
    ck_assert_diag(r, "t.net:1:13: error: unexpected character '@'");
    ck_assert_diag(r, "t.net:1:20: error: unexpected byte 0xe9");
    ck_assert_diag(r, "t.net:1:29: error: unexpected byte 0xe9");
    ck_assert_int_eq(r.ast->nstmts, 3);
    const Stmt *s = r.ast->first;
    ck_assert_str_eq(s->word, "D??nse");
    ck_assert(s->has_parens);
    ck_assert_str_eq(s->next->word, "@ReLU");
    ck_assert_str_eq(s->next->next->label, "C?");
    ck_assert_str_eq(s->next->next->args->key, "k?y");
    tu_free(&r);

    /* A name in quotes, as in Python: one message, and a hint. */
    r = tu_parse("Train(loss='mse', optimizer=\"adam\")");
    ck_assert_int_eq(r.errors, 2);
    ck_assert_diag(r, "t.net:1:12: error: unexpected character \"'\"");
    ck_assert_diag(r, "      = hint: write mse without quotes");
    ck_assert_diag(r, "t.net:1:29: error: unexpected character '\"'");
    ck_assert_diag(r, "      = hint: write adam without quotes");
    ck_assert_int_eq(r.ast->first->args->value.kind, VAL_NAME);
    ck_assert_str_eq(r.ast->first->args->value.u.name, "'mse'");
    tu_free(&r);

    /* A bad name in a syntax error's "before '...'" shows as printed. */
    r = tu_parse("Dense n\xe9=10");
    ck_assert_int_eq(r.errors, 2);
    ck_assert_diag(r, "t.net:1:8: error: unexpected byte 0xe9");
    ck_assert_diag(r, "t.net:1:7: error: expected '(' before 'n?'");
    tu_free(&r);

    /* Numbers keep their value: the stray bytes after them are alone. */
    r = tu_parse("T(3x3\xe9)");
    ck_assert_int_eq(r.errors, 1);
    ck_assert_diag(r, "t.net:1:6: error: unexpected byte 0xe9");
    ck_assert_int_eq(r.ast->first->args->value.kind, VAL_DIMS);
    tu_free(&r);
}
END_TEST

/* Every byte value between two words: never a crash, and each byte that is
 * not part of the language is exactly one error, with its own message. */
START_TEST(test_every_byte)
{
    for (int c = 0; c < 256; c++) {
        char text[] = {'A', ' ', (char)c, ' ', 'B'};
        TuResult r = tu_parse_bytes(text, sizeof text);
        bool known = c == ' ' || c == '\t' || c == '\n' || c == '#' || c == '_' ||
                     (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                     (c >= 'A' && c <= 'Z') || (c != 0 && strchr("():,=[]", c));
        if (!known) {
            char want[80];
            if (c == 0)
                snprintf(want, sizeof want, "t.net:1:3: error: unexpected NUL byte");
            else if (c < 0x20 || c >= 0x7f)
                snprintf(want, sizeof want, "t.net:1:3: error: unexpected byte 0x%02x", c);
            else if (c == '\'')
                snprintf(want, sizeof want, "t.net:1:3: error: unexpected character \"'\"");
            else
                snprintf(want, sizeof want, "t.net:1:3: error: unexpected character '%c'", c);
            ck_assert_msg(r.errors == 1, "byte 0x%02x:\n%s", c, r.diags);
            ck_assert_diag(r, want);
            ck_assert_int_eq(r.ast->nstmts, 2);
        }
        tu_free(&r);
    }
}
END_TEST

/* Random bytes, and random tokens: always terminates, never crashes. */
START_TEST(test_random_input)
{
    static const char *const pieces[] = {
        "Conv", "(", ")", ",", "=", ":", "->", "4x4", "1x", "-", ".", "1e",
        "\n", " ", "#", "\0", "\xff", "C1", "n", "true", "9999999999999999999999", "0.5",
    };
    unsigned seed = 12345;
    for (int round = 0; round < 200; round++) {
        char buf[2048];
        size_t len = 0;
        while (len < sizeof buf - 32) {
            seed = seed * 1103515245u + 12345u;
            unsigned k = (seed >> 16) % 40;
            if (round % 2 == 0 && k < 22) {
                const char *p = pieces[k];
                size_t n = k == 15 ? 1 : strlen(p);
                memcpy(buf + len, p, n);
                len += n;
            } else {
                buf[len++] = (char)(seed >> 8);
            }
        }
        TuResult r = tu_parse_bytes(buf, len);
        ck_assert_ptr_nonnull(r.ast);
        tu_free(&r);
    }
}
END_TEST

/* ------------------------------------------------------------------------
 * Long input: limits, and never quadratic
 */

START_TEST(test_name_length_limit)
{
    char text[CNNC_MAX_IDENT + 16];
    memset(text, 'a', CNNC_MAX_IDENT);
    text[CNNC_MAX_IDENT] = '\0';
    TuResult r = tu_parse(text);
    ck_assert_int_eq(r.errors, 0);
    ck_assert_int_eq((int)strlen(r.ast->first->word), CNNC_MAX_IDENT);
    tu_free(&r);

    strcpy(text + CNNC_MAX_IDENT, "b ReLU");
    r = tu_parse(text);
    ck_assert_int_eq(r.errors, 1);
    ck_assert_diag(r, "t.net:1:1: error: name 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' is 256 "
                      "characters long; at most 255 are allowed");
    tu_free(&r);
}
END_TEST

/* A megabyte-long name, number or dims: one message, quickly (the test's
 * timeout catches a quadratic scanner). */
START_TEST(test_megabyte_tokens)
{
    size_t n = 1 << 20;
    char *text = xmalloc(n + 1);
    static const char fill[] = {'a', '7', 'x', '\xe9'};
    for (int kind = 0; kind < 4; kind++) {
        /* a..., 777..., 1x1x..., a\xe9a\xe9... (one bad name) */
        for (size_t i = 0; i < n; i++)
            text[i] = kind < 2 ? fill[kind] : i % 2 ? fill[kind] : kind == 2 ? '1' : 'a';
        text[n] = '\0';
        TuResult r = tu_parse(text);
        ck_assert_msg(r.errors == 1, "kind %d: %d errors", kind, r.errors);
        ck_assert_uint_lt(strlen(r.diags), 1000);
        tu_free(&r);
    }
    free(text);
}
END_TEST

/* The lexer stops at the error limit instead of reporting a megabyte of '@'. */
START_TEST(test_error_limit)
{
    size_t n = 1 << 20;
    char *text = xmalloc(n + 1);
    memset(text, '@', n);
    text[n] = '\0';
    TuResult r = tu_parse(text);
    ck_assert_int_eq(r.errors, DIAG_DEFAULT_MAX_ERRORS);
    ck_assert_diag(r, "t.net: note: stopping after 20 errors");
    tu_free(&r);
    free(text);
}
END_TEST

/* Messages come out in source order, though the parser reads ahead. */
START_TEST(test_message_order)
{
    TuResult r = tu_parse("T(kernel=3 foo @)");
    ck_assert_int_eq(r.errors, 2);
    const char *a = strstr(r.diags, "t.net:1:12: error: expected ',' or ')' before 'foo'");
    const char *b = strstr(r.diags, "t.net:1:16: error: unexpected character '@'");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert(a < b);
    tu_free(&r);
}
END_TEST

static Suite *lexer_suite(void)
{
    Suite *s = suite_create("lexer");
    TCase *values = tcase_create("values");
    tcase_add_test(values, test_integer);
    tcase_add_test(values, test_negative_integer);
    tcase_add_test(values, test_integer_limits);
    tcase_add_test(values, test_integer_overflow);
    tcase_add_test(values, test_integer_overflow_long);
    tcase_add_test(values, test_floats);
    tcase_add_test(values, test_float_range);
    tcase_add_test(values, test_dims);
    tcase_add_test(values, test_dims_errors);
    tcase_add_test(values, test_malformed_numbers);
    tcase_add_test(values, test_booleans_and_names);
    suite_add_tcase(s, values);

    TCase *layout = tcase_create("layout");
    tcase_add_test(layout, test_punctuation_without_spaces);
    tcase_add_test(layout, test_comments);
    tcase_add_test(layout, test_locations);
    tcase_add_test(layout, test_empty_and_blank);
    tcase_add_test(layout, test_crlf);
    suite_add_tcase(s, layout);

    TCase *bytes = tcase_create("bytes");
    tcase_add_test(bytes, test_unexpected_character);
    tcase_add_test(bytes, test_nul_bytes);
    tcase_add_test(bytes, test_non_ascii_bytes);
    tcase_add_test(bytes, test_stray_in_name);
    tcase_add_test(bytes, test_every_byte);
    tcase_add_test(bytes, test_random_input);
    suite_add_tcase(s, bytes);

    TCase *big = tcase_create("big");
    tcase_set_timeout(big, 10);
    tcase_add_test(big, test_name_length_limit);
    tcase_add_test(big, test_megabyte_tokens);
    tcase_add_test(big, test_error_limit);
    tcase_add_test(big, test_message_order);
    suite_add_tcase(s, big);
    return s;
}

int main(void)
{
    return tu_run_suite(lexer_suite());
}
