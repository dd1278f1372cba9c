/* parser.y: tokens -> Ast, with GCC-style messages and error recovery.
 *
 * A file is statements one after another, nothing between them:
 *
 *     [LABEL ':'] Word ['(' arguments ')'] ['->' SHAPE]
 *
 * Newlines are plain whitespace, so a name alone cannot say what it is. The
 * scanner (lexer.l) returns every name as IDENT; yylex() below looks one
 * token ahead and hands the grammar four kinds instead:
 *
 *     LABEL  a name before ':'           C1: Conv(...)
 *     KEY    a name before '='           kernel=4x4
 *     CALL   a name before '('           Conv(...)
 *     IDENT  any other name              ReLU, valid, he_normal
 *
 * That keeps the grammar LR(1) with no conflicts and, above all, gives error
 * recovery sure footing: a LABEL or a CALL always starts a statement, never
 * sits inside one, so after a syntax error the parser skips to the next one
 * and carries on. Every broken statement of a file gets its own message.
 *
 * Statements go into the Ast as they complete. A statement holding a syntax
 * or lexical error is dropped whole, with any bare words (ReLU) skipped while
 * looking for the next sure start; in its place goes one statement whose
 * word is "" (a lost statement), so that the checker knows something stood
 * there and infers no shapes past it.
 *
 * The words true and false are values, so "true: Dense(n=10)" would be a
 * puzzling syntax error; yylex() says instead that they cannot be labels
 * and hands the parser a label with no name, so that the rest of the
 * statement is still checked. */

%code requires {
#include "cnnc.h"
typedef struct ParseState ParseState;
}

%code provides {
/* A message the scanner produced while lexing a token: held back until the
 * parser takes the token, so that messages come out in source order even
 * though yylex() reads one token ahead. */
typedef struct LexMsg {
    Loc loc;
    char *text;
    char *hint;             /* NULL, or a hint to print under it */
    struct LexMsg *next;
} LexMsg;

/* One token as the scanner gave it. */
typedef struct Token {
    int kind;        /* a token kind, YYerror or YYEOF */
    YYSTYPE val;     /* owned: a name's string */
    Loc loc;
    size_t off, len; /* its bytes in the source, for messages */
    LexMsg *msgs;    /* the scanner's messages up to and about this token */
} Token;

/* Everything one parse needs; it is the scanner's extra data too. */
struct ParseState {
    const Source *src;
    Diag *d;
    void *scanner;          /* yyscan_t */
    Ast *ast;
    Stmt **tail;            /* where the next statement goes */

    /* Scanner side (lexer.l). */
    int line, col;          /* of the next byte */
    size_t pos;             /* its offset */
    size_t tok_off;         /* offset of the rule just matched */
    LexMsg *pending;        /* messages not yet tied to a token */
    LexMsg **pending_tail;
    int nqueued;            /* messages made and not yet printed */
    bool at_eof;
    Loc end;                /* just past the last token: where EOF is reported */

    /* yylex(): one token of lookahead, and the tokens given out. */
    bool have_peek;
    Token peek;
    Token cur;              /* the current token (its value not owned) */
    int prev_kind;          /* the token before it, 0 at the start */
    Loc prev_loc;
};

/* The scanner proper (lexer.l). */
int lex_raw(YYSTYPE *val, YYLTYPE *loc, void *scanner);
/* Frees what a parse leaves behind in ps (a token read ahead, messages). */
void parse_state_finish(ParseState *ps);
}

%code {
#include <stdlib.h>
#include <string.h>

static int yylex(YYSTYPE *val, YYLTYPE *loc, ParseState *ps);
static void yyerror(YYLTYPE *loc, ParseState *ps, const char *msg);
static void append_stmt(ParseState *ps, Stmt *s);
static void append_lost(ParseState *ps, Loc loc);
static Stmt *make_stmt(char *word, Loc word_loc, Arg *rev_args, bool parens);
static void annotate(Stmt *s, Value *shape);
static Arg *make_arg(char *key, Loc key_loc, Value v, Loc loc);
static Value name_value(char *name, Loc loc);
static Value list_value(Value first);
static Value list_append(ParseState *ps, Value list, Value next, Loc loc);
static Loc span(Loc a, Loc b);
}

%define api.pure full
%define api.location.type {Loc}
%define api.token.prefix {TOK_}
%define parse.error custom
/* Canonical LR, default reductions only where nothing else can happen: an
 * error is caught in the state where it happens, so the expected tokens are
 * exact and the messages below can trust them. */
%define lr.type canonical-lr
%define lr.default-reduction consistent
%locations
%expect 0
%param {ParseState *ps}

%union {
    char *str;
    Value val;
    Arg *arg;
    Stmt *stmt;
}

%token <str> IDENT "name"
%token <str> LABEL "label"
%token <str> KEY "argument name"
%token <str> CALL "layer name"
%token <val> INT "integer"
%token <val> FLOAT "number"
%token <val> BOOL "boolean"
%token <val> DIMS "dimensions"
%token ARROW "'->'"
%token LPAREN "'('"
%token RPAREN "')'"
%token LBRACKET "'['"
%token RBRACKET "']'"
%token COMMA "','"
%token EQUALS "'='"
%token COLON "':'"

%type <stmt> stmt sync_stmt word_stmt head call
%type <arg> arglist args arg
%type <val> value shape numbers number

%destructor { free($$); } <str>
%destructor { value_free(&$$); } <val>
%destructor { arg_free_list($$); } <arg>
%destructor { stmt_free($$); } <stmt>

%%

/* top: file
 *    | file error      a syntax error that runs to the end of the file */
top
    : file
    | file error                            { append_lost(ps, @2); }
    ;

/* file: stmt*
 *
 * After a syntax error, skip to a statement that surely starts one (a label,
 * or a name before '(') and report errors again from there on. What was
 * skipped becomes one lost statement. */
file
    : %empty
    | file stmt                             { append_stmt(ps, $2); }
    | file error { yyerrok; append_lost(ps, @2); } sync_stmt
                                            { append_stmt(ps, $4); }
    ;

stmt
    : sync_stmt
    | word_stmt
    ;

/* sync_stmt: LABEL ':' head ('->' shape)?
 *          | call ('->' shape)? */
sync_stmt
    : LABEL COLON head
        { $$ = $3; $$->label = $1; $$->label_loc = @1; $$->loc = span(@1, @3); }
    | LABEL COLON head ARROW shape
        { $$ = $3; $$->label = $1; $$->label_loc = @1; $$->loc = span(@1, @5);
          annotate($$, &$5); }
    | call
    | call ARROW shape
        { $$ = $1; $$->loc = span(@1, @3); annotate($$, &$3); }
    ;

/* word_stmt: IDENT ('->' shape)?      a word alone: ReLU, Flatten -> 945 */
word_stmt
    : IDENT
        { $$ = make_stmt($1, @1, NULL, false); }
    | IDENT ARROW shape
        { $$ = make_stmt($1, @1, NULL, false); $$->loc = span(@1, @3);
          annotate($$, &$3); }
    ;

/* head: IDENT | call      what follows a label */
head
    : IDENT                                 { $$ = make_stmt($1, @1, NULL, false); }
    | call
    ;

/* call: CALL '(' arglist ')' */
call
    : CALL LPAREN arglist RPAREN
        { $$ = make_stmt($1, @1, $3, true); $$->loc = span(@1, @4); }
    ;

/* arglist: (arg (',' arg)* ','?)?
 *
 * A trailing comma is fine, as in Python: Train(...) often spans lines and
 * grows. The list is built backwards, O(1) per argument, and make_stmt
 * turns it round. */
arglist
    : %empty                                { $$ = NULL; }
    | args
    | args COMMA
    ;

args
    : arg
    | args COMMA arg                        { $$ = $3; $$->next = $1; }
    ;

/* arg: KEY '=' value | value */
arg
    : KEY EQUALS value                      { $$ = make_arg($1, @1, $3, span(@1, @3)); }
    | value                                 { $$ = make_arg(NULL, @1, $1, @1); }
    ;

/* value: INT | FLOAT | BOOL | DIMS | IDENT | '[' numbers ']' */
value
    : INT
    | FLOAT
    | BOOL
    | DIMS
    | IDENT                                 { $$ = name_value($1, @1); }
    | LBRACKET numbers RBRACKET             { $$ = $2; $$.loc = span(@1, @3); }
    ;

/* numbers: number (',' number)*, a list of at most CNNC_MAX_LIST */
numbers
    : number                                { $$ = list_value($1); }
    | numbers COMMA number                  { $$ = list_append(ps, $1, $3, @3); }
    ;

number
    : INT
    | FLOAT
    ;

/* shape: DIMS | INT      HxWxC for a map, one integer for a vector */
shape
    : DIMS
    | INT
    ;

%%

/* ------------------------------------------------------------------------
 * Building the Ast
 */

static Loc span(Loc a, Loc b)
{
    return (Loc){a.first_line, a.first_column, b.last_line, b.last_column};
}

static void append_stmt(ParseState *ps, Stmt *s)
{
    *ps->tail = s;
    ps->tail = &s->next;
    ps->ast->nstmts++;
}

/* A lost statement: what a syntax error made the parser skip. Its word ""
 * is no name, so the checker reports nothing about it (the parser has)
 * but knows that shapes cannot be inferred past it. */
static void append_lost(ParseState *ps, Loc loc)
{
    Stmt *s = stmt_new();
    s->word = xstrdup("");
    s->word_loc = loc;
    s->loc = loc;
    append_stmt(ps, s);
}

/* rev_args is in reverse source order, as the grammar builds it. */
static Stmt *make_stmt(char *word, Loc word_loc, Arg *rev_args, bool parens)
{
    Stmt *s = stmt_new();
    s->word = word;
    s->word_loc = word_loc;
    s->loc = word_loc;
    s->has_parens = parens;
    while (rev_args) {
        Arg *next = rev_args->next;
        rev_args->next = s->args;
        s->args = rev_args;
        rev_args = next;
    }
    return s;
}

static void annotate(Stmt *s, Value *shape)
{
    s->has_annotation = true;
    s->annotation = *shape;
}

static Arg *make_arg(char *key, Loc key_loc, Value v, Loc loc)
{
    Arg *a = arg_new();
    a->key = key;
    a->key_loc = key_loc;
    a->value = v;
    a->loc = loc;
    return a;
}

/* A list of one number. */
static Value list_value(Value first)
{
    Value v = {.kind = VAL_LIST, .loc = first.loc};
    v.u.list.n = 1;
    v.u.list.v[0] = first.kind == VAL_INT ? (double)first.u.i : first.u.f;
    return v;
}

/* The list with one more number; past CNNC_MAX_LIST, an error there. */
static Value list_append(ParseState *ps, Value list, Value next, Loc loc)
{
    if (list.u.list.n >= CNNC_MAX_LIST) {
        /* n past the end marks a list too long, reported once */
        if (list.u.list.n == CNNC_MAX_LIST)
            diag_error(ps->d, loc, "a list holds at most %d numbers", CNNC_MAX_LIST);
        list.u.list.n = CNNC_MAX_LIST + 1;
        return list;
    }
    list.u.list.v[list.u.list.n++] = next.kind == VAL_INT ? (double)next.u.i : next.u.f;
    return list;
}

static Value name_value(char *name, Loc loc)
{
    Value v = {.kind = VAL_NAME, .loc = loc};
    v.u.name = name;
    return v;
}

/* ------------------------------------------------------------------------
 * yylex: the scanner's tokens, with names told apart by what follows them
 */

static bool has_string(int kind)
{
    return kind == TOK_IDENT || kind == TOK_LABEL || kind == TOK_KEY || kind == TOK_CALL;
}

static void free_msgs(LexMsg *m)
{
    while (m) {
        LexMsg *next = m->next;
        free(m->text);
        free(m->hint);
        free(m);
        m = next;
    }
}

static void token_free(Token *t)
{
    if (has_string(t->kind))
        free(t->val.str);
    free_msgs(t->msgs);
    t->msgs = NULL;
    t->kind = TOK_YYEOF;
}

static void next_token(ParseState *ps, Token *t)
{
    memset(t, 0, sizeof *t);
    if (ps->at_eof) {
        t->kind = TOK_YYEOF;
    } else {
        t->kind = lex_raw(&t->val, &t->loc, ps->scanner);
        ps->at_eof = t->kind == TOK_YYEOF;
    }
    if (t->kind == TOK_YYEOF) {
        t->loc = ps->end;
        t->off = ps->pos;
    } else {
        t->off = ps->tok_off;
        t->len = ps->pos - ps->tok_off;
        ps->end = (Loc){t->loc.last_line, t->loc.last_column + 1,
                        t->loc.last_line, t->loc.last_column + 1};
    }
    t->msgs = ps->pending;
    ps->pending = NULL;
    ps->pending_tail = &ps->pending;
}

/* A name is a label before ':', a key before '=', a call before '('. Just
 * after '(' or ',' a name before ':' is a key with the wrong sign
 * ("Conv(kernel: 3x3)"), which the grammar then reports as a missing '='. */
static int name_kind(const ParseState *ps, int next)
{
    switch (next) {
    case TOK_COLON:
        /* ps->cur is still the token before the name. */
        return ps->cur.kind == TOK_LPAREN || ps->cur.kind == TOK_COMMA ? TOK_KEY : TOK_LABEL;
    case TOK_EQUALS: return TOK_KEY;
    case TOK_LPAREN: return TOK_CALL;
    default: return TOK_IDENT;
    }
}

static int yylex(YYSTYPE *val, YYLTYPE *loc, ParseState *ps)
{
    Token t;
    if (diag_full(ps->d)) {
        /* Past the error limit: end the parse here. */
        *loc = ps->end;
        return TOK_YYEOF;
    }
    if (ps->have_peek) {
        t = ps->peek;
        ps->have_peek = false;
    } else {
        next_token(ps, &t);
    }
    int kind = t.kind;
    if (kind == TOK_IDENT || kind == TOK_BOOL) {
        next_token(ps, &ps->peek);
        ps->have_peek = true;
    }
    if (kind == TOK_IDENT)
        kind = name_kind(ps, ps->peek.kind);

    for (LexMsg *m = t.msgs; m; m = m->next) {
        diag_error(ps->d, m->loc, "%s", m->text);
        if (m->hint)
            diag_hint(ps->d, "%s", m->hint);
        ps->nqueued--;
    }
    free_msgs(t.msgs);
    t.msgs = NULL;
    if (diag_full(ps->d)) {
        token_free(&t);
        *loc = ps->end;
        return TOK_YYEOF;
    }

    /* "true: Dense(n=10)": a label that cannot be one, where a statement
     * may start (not a value, as in "bias=true: n=3"). The parser gets a
     * label with no name, and the statement is checked unlabelled. */
    int before = ps->cur.kind;
    if (kind == TOK_BOOL && ps->peek.kind == TOK_COLON && before != TOK_EQUALS &&
        before != TOK_LPAREN && before != TOK_COMMA && before != TOK_ARROW &&
        before != TOK_COLON) {
        diag_error(ps->d, t.loc, "'%s' is reserved and cannot be a label",
                   t.val.val.u.b ? "true" : "false");
        diag_hint(ps->d, "true and false are values; choose another label");
        kind = TOK_LABEL;
        t.val.str = NULL;
    }

    ps->prev_kind = ps->cur.kind;
    ps->prev_loc = ps->cur.loc;
    ps->cur = t;
    ps->cur.kind = kind;
    *val = t.val;
    *loc = t.loc;
    return kind;
}

void parse_state_finish(ParseState *ps)
{
    if (ps->have_peek)
        token_free(&ps->peek);
    ps->have_peek = false;
    free_msgs(ps->pending);
    ps->pending = NULL;
    ps->pending_tail = &ps->pending;
}

/* ------------------------------------------------------------------------
 * Syntax errors, in GCC's words: "expected ')' before 'ReLU'"
 */

static void yyerror(YYLTYPE *loc, ParseState *ps, const char *msg)
{
    diag_error(ps->d, *loc, "%s", msg);
}

/* How the expected tokens read in a message. */
static const char *expected_name(yysymbol_kind_t k)
{
    switch (k) {
    case YYSYMBOL_YYEOF: return "end of input";
    case YYSYMBOL_IDENT: return "a name";
    case YYSYMBOL_LABEL: return "a label";
    case YYSYMBOL_KEY: return "an argument name";
    case YYSYMBOL_CALL: return "a layer name";
    case YYSYMBOL_INT: return "an integer";
    case YYSYMBOL_FLOAT: return "a number";
    case YYSYMBOL_BOOL: return "true or false";
    case YYSYMBOL_DIMS: return "dimensions";
    case YYSYMBOL_ARROW: return "'->'";
    case YYSYMBOL_LPAREN: return "'('";
    case YYSYMBOL_RPAREN: return "')'";
    case YYSYMBOL_LBRACKET: return "'['";
    case YYSYMBOL_RBRACKET: return "']'";
    case YYSYMBOL_COMMA: return "','";
    case YYSYMBOL_EQUALS: return "'='";
    case YYSYMBOL_COLON: return "':'";
    default: return "something else";
    }
}

/* "before 'ReLU'" or "at end of input": where the error is. Long tokens are
 * cut short; bytes that are not printable ASCII (in a bad name) show as '?'. */
static char *where(const ParseState *ps, yysymbol_kind_t la)
{
    enum { SHOW = 32 };
    if (la == YYSYMBOL_YYEOF)
        return xstrdup("at end of input");
    size_t len = ps->cur.len, show = len > SHOW ? SHOW : len;
    char *text = xstrndup(ps->src->text + ps->cur.off, show);
    for (size_t i = 0; i < show; i++)
        if ((unsigned char)text[i] < 0x20 || (unsigned char)text[i] >= 0x7f)
            text[i] = '?';
    char *s = xasprintf("before '%s%s'", text, len > SHOW ? "..." : "");
    free(text);
    return s;
}

static bool is_value(yysymbol_kind_t k)
{
    return k == YYSYMBOL_INT || k == YYSYMBOL_FLOAT || k == YYSYMBOL_BOOL || k == YYSYMBOL_DIMS ||
           k == YYSYMBOL_LBRACKET;
}

/* A token that can only start a statement, or end the file. */
static bool starts_stmt(yysymbol_kind_t k)
{
    return k == YYSYMBOL_CALL || k == YYSYMBOL_LABEL || k == YYSYMBOL_YYEOF;
}

/* "expected ',' or ')'": the general form, from the expected tokens. */
static char *expected_list(const yysymbol_kind_t *exp, int n)
{
    char *s = xstrdup("expected ");
    for (int i = 0; i < n; i++) {
        const char *sep = i == 0 ? "" : i == n - 1 ? " or " : ", ";
        char *t = xasprintf("%s%s%s", s, sep, expected_name(exp[i]));
        free(s);
        s = t;
    }
    return s;
}

/* What to say, from the expected tokens, the lookahead and the token before
 * it; *placed is set when the message already says where (else "before
 * 'X'" follows). The cases follow the places an error can happen, in
 * statement order. */
static char *syntax_message(const ParseState *ps, const bool *exp, yysymbol_kind_t la,
                            const yysymbol_kind_t *list, int n, bool *placed)
{
    int prev = ps->prev_kind;
    *placed = true;
    if (prev == TOK_EQUALS)
        return xstrdup("expected a value after '='");
    if (prev == TOK_ARROW)
        return xstrdup("expected a shape after '->'");
    if (prev == TOK_COLON && exp[YYSYMBOL_CALL])
        return xstrdup("expected a layer name after ':'");
    if (la == YYSYMBOL_RPAREN && !exp[YYSYMBOL_RPAREN])
        return xstrdup("unmatched ')'");
    *placed = false;
    if (exp[YYSYMBOL_RPAREN] && exp[YYSYMBOL_COMMA] && !exp[YYSYMBOL_KEY]) {
        /* After an argument: a new statement means a missing ')', another
         * argument a missing ','. */
        if (starts_stmt(la) || la == YYSYMBOL_ARROW)
            return xstrdup("expected ')'");
        if (la == YYSYMBOL_KEY || is_value(la))
            return xstrdup("expected ','");
        return xstrdup("expected ',' or ')'");
    }
    if (exp[YYSYMBOL_KEY]) {
        /* Where an argument starts. */
        if (starts_stmt(la) || la == YYSYMBOL_ARROW)
            return xstrdup("expected ')'");
        return xstrdup("expected an argument");
    }
    if (exp[YYSYMBOL_ARROW] && prev == TOK_IDENT) {
        /* After a word alone: "Dense n=10", "Dense 10". */
        if (la == YYSYMBOL_KEY)
            return xstrdup("expected '('");
        if (is_value(la))
            return xstrdup("expected '(' or '->'");
    }
    if (exp[YYSYMBOL_ARROW] && is_value(la))
        return xstrdup("expected '->'");
    if (exp[YYSYMBOL_CALL])
        return xstrdup("expected a layer name");
    return expected_list(list, n);
}

static int yyreport_syntax_error(const yypcontext_t *ctx, ParseState *ps)
{
    yysymbol_kind_t list[YYNTOKENS];
    bool exp[YYNTOKENS] = {false};
    int n = yypcontext_expected_tokens(ctx, list, YYNTOKENS);
    for (int i = 0; i < n; i++)
        exp[list[i]] = true;
    yysymbol_kind_t la = yypcontext_token(ctx);

    bool placed;
    char *msg = syntax_message(ps, exp, la, list, n, &placed);
    /* Something missing at the end of a line is shown there, as GCC does,
     * rather than at the next line's first token. */
    Loc loc = *yypcontext_location(ctx);
    if (ps->prev_kind != 0 && loc.first_line > ps->prev_loc.last_line &&
        strncmp(msg, "expected", 8) == 0) {
        int line = ps->prev_loc.last_line, col = ps->prev_loc.last_column + 1;
        loc = (Loc){line, col, line, col};
    }
    if (placed) {
        diag_error(ps->d, loc, "%s", msg);
    } else {
        char *at = where(ps, la);
        diag_error(ps->d, loc, "%s %s", msg, at);
        free(at);
    }
    free(msg);
    return 0;
}
