/* args.c: a statement's arguments matched against a schema (ArgSpec[]).
 *
 *   Conv(4x4, 40, stride=2)   positional values first, in spec->position
 *                             order, then key=value pairs in any order.
 *
 * Every problem is reported where it is written: unknown keys (with a "did
 * you mean", also for other frameworks' names), duplicates (with a note at
 * the first), missing required arguments (at the statement's word), values
 * of the wrong type or out of range. An argument that was given but
 * misspelt or misplaced accounts for the one it was probably meant to be,
 * which is then not reported missing too. Keys and values that are no
 * names (the scanner's bad names, "k?rnel") were reported by the scanner:
 * they fail quietly here. Defaults are not applied here: the schema's owner
 * knows them. */
#include "cnnc.h"
#include "deploy.h"

#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

/* A value as written, for messages: "4x4", "0.01", "same". */
static const char *value_text(const Value *v, char *buf, size_t size)
{
    switch (v->kind) {
    case VAL_INT: snprintf(buf, size, "%" PRId64, v->u.i); break;
    case VAL_FLOAT: snprintf(buf, size, "%g", v->u.f); break;
    case VAL_BOOL: snprintf(buf, size, "%s", v->u.b ? "true" : "false"); break;
    case VAL_NAME: snprintf(buf, size, "%.60s", v->u.name); break;
    case VAL_DIMS:
        if (v->u.dims.n == 3)
            snprintf(buf, size, "%" PRId64 "x%" PRId64 "x%" PRId64, v->u.dims.d[0],
                     v->u.dims.d[1], v->u.dims.d[2]);
        else
            snprintf(buf, size, "%" PRId64 "x%" PRId64, v->u.dims.d[0], v->u.dims.d[1]);
        break;
    case VAL_LIST: {
        size_t used = (size_t)snprintf(buf, size, "[");
        for (int i = 0; i < v->u.list.n && i < CNNC_MAX_LIST && used + 24 < size; i++)
            used += (size_t)snprintf(buf + used, size - used, "%s%g", i ? ", " : "",
                                     v->u.list.v[i]);
        snprintf(buf + used, size - used, "%s]", v->u.list.n > CNNC_MAX_LIST ? ", ..." : "");
        break;
    }
    }
    return buf;
}

/* ------------------------------------------------------------------------
 * Near misses
 */

static void lower_copy(char *dst, const char *src, size_t size)
{
    size_t i = 0;
    for (; src[i] && i + 1 < size; i++)
        dst[i] = (char)tolower((unsigned char)src[i]);
    dst[i] = '\0';
}

/* How far apart two lowercased names are, or -1 when too far to suggest.
 * Close means: a small edit distance (a third of the longer name),
 * or one holding the other ("kernel_size" holds "kernel", "Conv2d" "conv"). */
static int closeness(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t longer = la > lb ? la : lb, shorter = la < lb ? la : lb;
    int dist = edit_distance(a, b);
    if (dist <= (int)(longer + 1) / 3)
        return dist;
    if (shorter >= 3 && (strstr(a, b) || strstr(b, a)))
        return dist;
    return -1;
}

const char *nearest_name(const char *word, const char *const names[])
{
    char w[72], n[72];
    lower_copy(w, word, sizeof w);
    const char *best = NULL;
    int best_dist = INT_MAX;
    for (int i = 0; names[i]; i++) {
        lower_copy(n, names[i], sizeof n);
        int dist = closeness(w, n);
        if (dist >= 0 && dist < best_dist) {
            best = names[i];
            best_dist = dist;
        }
    }
    return best;
}

/* "kernel, n, stride" into buf: the keys of specs, for hints. */
static const char *key_list(const ArgSpec *specs, int n, bool positional_only, char *buf,
                            size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int pos = 0; pos < n; pos++) {
        const ArgSpec *s = NULL;
        if (!positional_only)
            s = &specs[pos];
        else
            for (int i = 0; i < n; i++)
                if (specs[i].position == pos)
                    s = &specs[i];
        if (!s)
            break;
        int k = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", s->key);
        if (k < 0 || (size_t)k >= size - used)
            break;
        used += (size_t)k;
    }
    return buf;
}

static int count_positional(const ArgSpec *specs, int n)
{
    int count = 0;
    for (int i = 0; i < n; i++)
        if (specs[i].position >= 0)
            count++;
    return count;
}

/* ------------------------------------------------------------------------
 * Ranges
 */

/* Reports an integer (or a side of a size) outside [imin, imax]; what names
 * it: the key, or "Input sizes". */
static void int_range_error(const char *what, const ArgSpec *s, const Value *v, int64_t bad,
                            Diag *d)
{
    char got[80];
    value_text(v, got, sizeof got);
    if (bad < s->imin && s->imin == 1)
        diag_error(d, v->loc, "%s must be positive, got %s", what, got);
    else if (bad < s->imin && s->imin == 0)
        diag_error(d, v->loc, "%s must not be negative, got %s", what, got);
    else if (bad > s->imax && s->imin <= 1)
        diag_error(d, v->loc, "%s must be at most %" PRId64 ", got %s", what, s->imax, got);
    else
        diag_error(d, v->loc, "%s must be in [%" PRId64 ", %" PRId64 "], got %s", what,
                   s->imin, s->imax, got);
}

static bool int_in_range(const ArgSpec *s, const Value *v, int64_t x, Diag *d)
{
    if (x >= s->imin && x <= s->imax)
        return true;
    int_range_error(s->key, s, v, x, d);
    return false;
}

/* "> 0", ">= 0", "in [0, 1)": the allowed range of a float, for messages. */
static const char *float_range_text(const ArgSpec *s, char *buf, size_t size)
{
    if (isinf(s->fmax))
        snprintf(buf, size, "%s %g", s->fmin_open ? ">" : ">=", s->fmin);
    else if (isinf(s->fmin))
        snprintf(buf, size, "%s %g", s->fmax_open ? "<" : "<=", s->fmax);
    else
        snprintf(buf, size, "in %c%g, %g%c", s->fmin_open ? '(' : '[', s->fmin, s->fmax,
                 s->fmax_open ? ')' : ']');
    return buf;
}

static bool float_in_range(const ArgSpec *s, double x)
{
    if (!isfinite(x))
        return false;
    if (s->fmin_open ? !(x > s->fmin) : !(x >= s->fmin))
        return false;
    if (s->fmax_open ? !(x < s->fmax) : !(x <= s->fmax))
        return false;
    return true;
}

/* ------------------------------------------------------------------------
 * One value, by type
 */

static void type_error(const ArgSpec *s, const Value *v, const char *expects, Diag *d)
{
    char got[80];
    diag_error(d, v->loc, "%s expects %s, got '%s'", s->key, expects,
               value_text(v, got, sizeof got));
}

static bool is_dims(const Value *v, int n)
{
    return v->kind == VAL_DIMS && v->u.dims.n == n;
}

static int choice_count(const char *const *choices)
{
    int n = 0;
    while (choices[n])
        n++;
    return n;
}

/* "one of sgd, momentum, nesterov, adam" */
static const char *choice_text(const char *const *choices, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "one of");
    for (int i = 0; choices[i] && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s %s", i ? "," : "", choices[i]);
    return buf;
}

/* Other frameworks' names, for "did you mean": [i][0] is theirs (compared
 * ignoring case and PyTorch's trailing '_'), [i][1] ours. Used only where
 * ours is among the names allowed. */
static const char *const value_aliases[][2] = {
    {"xavier", "glorot_uniform"},        {"xavier_uniform", "glorot_uniform"},
    {"xavier_normal", "glorot_normal"},  {"glorot", "glorot_uniform"},
    {"kaiming", "he_normal"},            {"kaiming_normal", "he_normal"},
    {"kaiming_uniform", "he_uniform"},   {"categorical_crossentropy", "cross_entropy"},
    {"CrossEntropyLoss", "cross_entropy"}, {"mean_squared_error", "mse"},
    {"MSELoss", "mse"},
};

static const char *const key_aliases[][2] = {
    {"filters", "n"},          {"out_channels", "n"},     {"units", "n"},
    {"out_features", "n"},     {"kernel_size", "kernel"}, {"strides", "stride"},
    {"pool_size", "size"},     {"rate", "p"},             {"negative_slope", "alpha"},
    {"use_bias", "bias"},      {"kernel_initializer", "init"},
    {"learning_rate", "lr"},   {"batch_size", "batch"},   {"weight_decay", "decay"},
};

static bool among(const char *name, const char *const *names)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

/* The name of names[] that word is an alias of or near to, or NULL. */
static const char *alias_or_nearest(const char *word, const char *const aliases[][2],
                                    size_t naliases, const char *const *names)
{
    size_t len = strlen(word);
    while (len > 0 && word[len - 1] == '_')
        len--;
    for (size_t i = 0; i < naliases; i++)
        if (strlen(aliases[i][0]) == len && strncasecmp(word, aliases[i][0], len) == 0 &&
            among(aliases[i][1], names))
            return aliases[i][1];
    return nearest_name(word, names);
}

static void suggest(const char *name, const char *const *names, Diag *d)
{
    const char *near = alias_or_nearest(name, value_aliases,
                                        sizeof value_aliases / sizeof value_aliases[0], names);
    if (near)
        diag_hint(d, "did you mean '%s'?", near);
}

static bool take_int(const ArgSpec *s, const Value *v, ArgVal *out, Diag *d)
{
    if (v->kind != VAL_INT) {
        type_error(s, v, "an integer", d);
        return false;
    }
    out->u.i = v->u.i;
    return int_in_range(s, v, v->u.i, d);
}

static bool take_float(const ArgSpec *s, const Value *v, ArgVal *out, Diag *d)
{
    if (v->kind != VAL_INT && v->kind != VAL_FLOAT) {
        type_error(s, v, "a number", d);
        return false;
    }
    out->u.f = v->kind == VAL_INT ? (double)v->u.i : v->u.f;
    if (float_in_range(s, out->u.f))
        return true;
    char range[64], got[80];
    diag_error(d, v->loc, "%s must be %s, got %s", s->key,
               float_range_text(s, range, sizeof range), value_text(v, got, sizeof got));
    return false;
}

/* A number, or a [list] of them: each in the spec's range. */
static bool take_floats(const ArgSpec *s, const Value *v, ArgVal *out, Diag *d)
{
    if (v->kind == VAL_LIST) {
        if (v->u.list.n > CNNC_MAX_LIST)
            return false;   /* the parser has reported it */
        out->u.list.n = v->u.list.n;
        for (int i = 0; i < v->u.list.n; i++) {
            out->u.list.v[i] = v->u.list.v[i];
            if (!float_in_range(s, v->u.list.v[i])) {
                char range[64];
                diag_error(d, v->loc, "%s must be %s, got %g (number %d of the list)", s->key,
                           float_range_text(s, range, sizeof range), v->u.list.v[i], i + 1);
                return false;
            }
        }
        return true;
    }
    if (v->kind != VAL_INT && v->kind != VAL_FLOAT) {
        type_error(s, v, "a number or a [list] of numbers", d);
        return false;
    }
    if (!take_float(s, v, out, d))
        return false;
    double f = out->u.f;
    out->u.list.n = 1;
    out->u.list.v[0] = f;
    return true;
}

static bool take_bool(const ArgSpec *s, const Value *v, ArgVal *out, Diag *d)
{
    if (v->kind != VAL_BOOL) {
        type_error(s, v, "true or false", d);
        return false;
    }
    out->u.b = v->u.b;
    return true;
}

/* N means NxN; HxW as written. Each side in [imin, imax]. */
static bool take_size2(const ArgSpec *s, const Value *v, ArgVal *out, Diag *d)
{
    if (v->kind == VAL_INT) {
        out->u.size.h = out->u.size.w = v->u.i;
    } else if (is_dims(v, 2)) {
        out->u.size.h = v->u.dims.d[0];
        out->u.size.w = v->u.dims.d[1];
    } else {
        type_error(s, v, "a size like 2 or 2x2", d);
        return false;
    }
    int64_t lo = out->u.size.h < out->u.size.w ? out->u.size.h : out->u.size.w;
    int64_t hi = out->u.size.h > out->u.size.w ? out->u.size.h : out->u.size.w;
    return int_in_range(s, v, lo < s->imin ? lo : hi, d);
}

/* valid | same | P | PHxPW. Sides of same are resolved by the shape rule. */
static bool take_padding(const ArgSpec *s, const Value *v, ArgVal *out, Diag *d)
{
    static const char *const modes[] = {"valid", "same", NULL};
    Pad *p = &out->u.pad;
    if (v->kind == VAL_NAME && strcmp(v->u.name, "valid") == 0) {
        p->mode = PAD_VALID;
        return true;
    }
    if (v->kind == VAL_NAME && strcmp(v->u.name, "same") == 0) {
        p->mode = PAD_SAME;
        return true;
    }
    if (v->kind == VAL_INT) {
        p->top = p->bottom = p->left = p->right = v->u.i;
    } else if (is_dims(v, 2)) {
        p->top = p->bottom = v->u.dims.d[0];
        p->left = p->right = v->u.dims.d[1];
    } else {
        type_error(s, v, "valid, same, a number P or PHxPW", d);
        if (v->kind == VAL_NAME)
            suggest(v->u.name, modes, d);
        return false;
    }
    p->mode = PAD_EXPLICIT;
    int64_t lo = p->top < p->left ? p->top : p->left;
    int64_t hi = p->top > p->left ? p->top : p->left;
    return int_in_range(s, v, lo < s->imin ? lo : hi, d);
}

static bool take_choice(const ArgSpec *s, const Value *v, ArgVal *out, Diag *d)
{
    char list[256];
    choice_text(s->choices, list, sizeof list);
    if (v->kind != VAL_NAME) {
        type_error(s, v, list, d);
        return false;
    }
    for (int i = 0; i < choice_count(s->choices); i++)
        if (strcmp(v->u.name, s->choices[i]) == 0) {
            out->u.choice = i;
            return true;
        }
    type_error(s, v, list, d);
    suggest(v->u.name, s->choices, d);
    return false;
}

/* Input's: HxWxC, HxW (one channel) or F (a vector). Each side in range;
 * the product is the checker's to bound. Messages name the statement
 * ("Input sizes"), since the key is seldom written. */
static bool take_shape(const Stmt *st, const ArgSpec *s, const Value *v, ArgVal *out,
                       Diag *d)
{
    char got[80];
    if (v->kind == VAL_INT) {
        out->u.shape = shape_vector(v->u.i);
    } else if (is_dims(v, 3)) {
        out->u.shape = shape_map(v->u.dims.d[0], v->u.dims.d[1], v->u.dims.d[2]);
    } else if (is_dims(v, 2)) {
        out->u.shape = shape_map(v->u.dims.d[0], v->u.dims.d[1], 1);
    } else {
        diag_error(d, v->loc, "%s expects a shape like 28x28x1, 28x28 or 784, got '%s'",
                   st->word, value_text(v, got, sizeof got));
        return false;
    }
    Shape sh = out->u.shape;
    int64_t lo = sh.h < sh.w ? sh.h : sh.w, hi = sh.h > sh.w ? sh.h : sh.w;
    lo = lo < sh.c ? lo : sh.c;
    hi = hi > sh.c ? hi : sh.c;
    int64_t x = lo < s->imin ? lo : hi;
    if (x >= s->imin && x <= s->imax)
        return true;
    char what[80];
    snprintf(what, sizeof what, "%s sizes", st->word);
    int_range_error(what, s, v, x, d);
    return false;
}

static bool take_value(const Stmt *st, const ArgSpec *s, const Value *v, ArgVal *out,
                       Diag *d)
{
    if (v->kind == VAL_NAME && !is_name(v->u.name))
        return false;   /* the scanner has reported it */
    switch (s->type) {
    case ARG_INT: return take_int(s, v, out, d);
    case ARG_FLOAT: return take_float(s, v, out, d);
    case ARG_BOOL: return take_bool(s, v, out, d);
    case ARG_SIZE2: return take_size2(s, v, out, d);
    case ARG_PADDING: return take_padding(s, v, out, d);
    case ARG_CHOICE: return take_choice(s, v, out, d);
    case ARG_SHAPE: return take_shape(st, s, v, out, d);
    case ARG_FLOATS: return take_floats(s, v, out, d);
    }
    return false;
}

/* ------------------------------------------------------------------------
 * Matching
 */

static int find_key(const char *key, const ArgSpec *specs, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(specs[i].key, key) == 0)
            return i;
    return -1;
}

static int find_position(int pos, const ArgSpec *specs, int n)
{
    for (int i = 0; i < n; i++)
        if (specs[i].position == pos)
            return i;
    return -1;
}

/* Arguments that belong to another layer: "ReLU(alpha=0.1)" is LeakyReLU's. */
static const struct {
    const char *word, *key;     /* as written */
    const char *layer, *as;     /* the layer that takes it, and its key there */
} other_layer_keys[] = {
    {"ReLU", "alpha", "LeakyReLU", "alpha"},
    {"ReLU", "negative_slope", "LeakyReLU", "alpha"},
};

/* Reports a key the schema does not have, with a hint; returns the index
 * of the spec it was probably meant to be, or -1. A key that is no name has
 * been reported by the scanner. */
static int unknown_key(const Stmt *st, const Arg *a, const ArgSpec *specs, int n, Diag *d)
{
    const char *keys[CNNC_MAX_ARGS + 1];
    for (int i = 0; i < n; i++)
        keys[i] = specs[i].key;
    keys[n] = NULL;
    const char *near = alias_or_nearest(a->key, key_aliases,
                                        sizeof key_aliases / sizeof key_aliases[0], keys);
    int meant = near ? find_key(near, specs, n) : -1;
    if (!is_name(a->key))
        return meant;

    diag_error(d, a->key_loc, "%s has no argument '%s'", st->word, a->key);
    char list[256], val[80];
    for (size_t i = 0; i < sizeof other_layer_keys / sizeof other_layer_keys[0]; i++)
        if (strcmp(st->word, other_layer_keys[i].word) == 0 &&
            strcmp(a->key, other_layer_keys[i].key) == 0) {
            diag_hint(d, "%s takes %s; did you mean %s(%s=%s)?", st->word,
                      n ? key_list(specs, n, false, list, sizeof list) : "no arguments",
                      other_layer_keys[i].layer, other_layer_keys[i].as,
                      value_text(&a->value, val, sizeof val));
            return meant;
        }
    if (n == 0)
        diag_hint(d, "%s takes no arguments", st->word);
    else if (near)
        diag_hint(d, "did you mean '%s'?", near);
    else
        diag_hint(d, "%s takes %s", st->word, key_list(specs, n, false, list, sizeof list));
    return meant;
}

static void too_many_positional(const Stmt *st, const Arg *a, const ArgSpec *specs, int n,
                                Diag *d)
{
    int npos = count_positional(specs, n);
    char list[256];
    if (n == 0) {
        diag_error(d, a->loc, "%s takes no arguments", st->word);
    } else if (npos == 0) {
        diag_error(d, a->loc, "%s takes only key=value arguments", st->word);
        diag_hint(d, "%s takes %s", st->word, key_list(specs, n, false, list, sizeof list));
    } else {
        diag_error(d, a->loc, "too many positional arguments: %s takes at most %d (%s)",
                   st->word, npos, key_list(specs, n, true, list, sizeof list));
        diag_hint(d, "write the others as key=value");
    }
}

/* Whether a value of v's kind can be an argument of type s at all. */
static bool kind_fits(const ArgSpec *s, const Value *v)
{
    switch (s->type) {
    case ARG_INT: return v->kind == VAL_INT;
    case ARG_FLOAT: return v->kind == VAL_INT || v->kind == VAL_FLOAT;
    case ARG_BOOL: return v->kind == VAL_BOOL;
    case ARG_SIZE2: return v->kind == VAL_INT || is_dims(v, 2);
    case ARG_PADDING:
        return v->kind == VAL_INT || is_dims(v, 2) ||
               (v->kind == VAL_NAME && (strcmp(v->u.name, "valid") == 0 ||
                                        strcmp(v->u.name, "same") == 0));
    case ARG_CHOICE: return v->kind == VAL_NAME && among(v->u.name, s->choices);
    case ARG_SHAPE: return v->kind == VAL_INT || v->kind == VAL_DIMS;
    case ARG_FLOATS: return v->kind == VAL_INT || v->kind == VAL_FLOAT || v->kind == VAL_LIST;
    }
    return false;
}

static bool given_by_key(const Stmt *st, const char *key)
{
    for (const Arg *a = st->args; a; a = a->next)
        if (a->key && strcmp(a->key, key) == 0)
            return true;
    return false;
}

static bool could_be(const Stmt *st, const Arg *a, const ArgSpec *s, bool accounted)
{
    return !accounted && !given_by_key(st, s->key) && kind_fits(s, &a->value);
}

/* "Conv(n=8, 3x3)": the spec the value was probably meant for, one not
 * given otherwise whose type takes it: the first such positional one, else
 * the only such keyword one ("Conv(n=8, 3x3, same)": padding). -1: none. */
static int guess_positional(const Stmt *st, const Arg *a, const ArgSpec *specs, int n,
                            const bool *accounted)
{
    for (int pos = 0;; pos++) {
        int i = find_position(pos, specs, n);
        if (i < 0)
            break;
        if (could_be(st, a, &specs[i], accounted[i]))
            return i;
    }
    int only = -1;
    for (int i = 0; i < n; i++) {
        if (specs[i].position >= 0 || !could_be(st, a, &specs[i], accounted[i]))
            continue;
        if (only >= 0)
            return -1;
        only = i;
    }
    return only;
}

/* Which spec a given argument is for, or -1 after reporting why none. When
 * it is none but probably meant to be one, accounted[] marks that one. */
static int spec_for(const Stmt *st, const Arg *a, int *npositional, bool seen_keyword,
                    const ArgSpec *specs, int n, bool *accounted, Diag *d)
{
    if (a->key) {
        int i = find_key(a->key, specs, n);
        if (i < 0) {
            int meant = unknown_key(st, a, specs, n, d);
            if (meant >= 0)
                accounted[meant] = true;
        }
        return i;
    }
    if (seen_keyword) {
        diag_error(d, a->loc, "a positional argument cannot follow key=value arguments");
        int meant = guess_positional(st, a, specs, n, accounted);
        char val[80];
        if (meant >= 0) {
            accounted[meant] = true;
            diag_hint(d, "write %s=%s", specs[meant].key,
                      value_text(&a->value, val, sizeof val));
        } else {
            diag_hint(d, "write it as key=value, or move it before the keyword arguments");
        }
        return -1;
    }
    int i = find_position((*npositional)++, specs, n);
    if (i < 0)
        too_many_positional(st, a, specs, n, d);
    return i;
}

static void missing(const Stmt *st, const ArgSpec *s, Diag *d)
{
    if (s->type == ARG_SHAPE && s->doc)
        diag_error(d, st->word_loc, "%s needs a shape (%s)", st->word, s->doc);
    else if (s->type == ARG_SHAPE)
        diag_error(d, st->word_loc, "%s needs a shape", st->word);
    else if (s->doc)
        diag_error(d, st->word_loc, "%s needs %s= (%s)", st->word, s->key, s->doc);
    else
        diag_error(d, st->word_loc, "%s needs %s=", st->word, s->key);
}

bool args_match(const Stmt *st, const ArgSpec *specs, int n, ArgVal *vals, Diag *d)
{
    const Arg *seen[CNNC_MAX_ARGS] = {0};
    /* Given, or probably meant by an argument already reported. */
    bool accounted[CNNC_MAX_ARGS] = {false};
    bool ok = true, seen_keyword = false;
    int npositional = 0;
    memset(vals, 0, sizeof *vals * (size_t)n);
    for (const Arg *a = st->args; a; a = a->next) {
        /* A layer's from= says where its input comes from: check.c's. */
        if (a->key && strcmp(a->key, "from") == 0 && layer_kind_find(st->word)) {
            seen_keyword = true;
            continue;
        }
        int i = spec_for(st, a, &npositional, seen_keyword, specs, n, accounted, d);
        seen_keyword |= a->key != NULL;
        if (i < 0) {
            ok = false;
            continue;
        }
        accounted[i] = true;
        if (seen[i]) {
            diag_error(d, a->key ? a->key_loc : a->loc, "%s is given twice", specs[i].key);
            diag_note(d, seen[i]->loc, "first given here");
            ok = false;
            continue;
        }
        seen[i] = a;
        if (!take_value(st, &specs[i], &a->value, &vals[i], d)) {
            vals[i] = (ArgVal){0};
            ok = false;
            continue;
        }
        vals[i].given = true;
        vals[i].loc = a->value.loc;
    }
    for (int i = 0; i < n; i++)
        if (specs[i].required && !accounted[i]) {
            missing(st, &specs[i], d);
            ok = false;
        }
    return ok;
}

/* The settled argument KEY of layer l (deploy.h): the emitters outside the
 * kind's file (inference C, ONNX) name arguments by their key. A key the
 * kind does not have is a bug in cnnc, not in the model. */
const ArgVal *layer_arg(const Layer *l, const char *key)
{
    for (int i = 0; i < l->kind->nargs; i++)
        if (strcmp(l->kind->args[i].key, key) == 0)
            return &l->args[i];
    fprintf(stderr, "cnnc: internal error: %s has no argument %s\n", l->kind->name, key);
    exit(2);
}
