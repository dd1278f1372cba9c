/* json.c: a strict JSON parser (RFC 8259) for safetensors headers.
 *
 * Strict: one value and white space, nothing else; no trailing commas, no
 * comments, no NaN; strings in valid UTF-8 with escapes checked (surrogate
 * pairs must pair up); duplicate object keys refused. Bounded: nesting depth
 * at most RT_JSON_MAX_DEPTH, and the caller bounds the length.
 */
#include "rt.h"

#include <stdlib.h>
#include <string.h>

typedef struct Parser {
    const unsigned char *s;
    size_t len, pos;
    int depth;
    size_t err_off;
} Parser;

static int fail(Parser *p, size_t off, const char *what)
{
    p->err_off = off;
    if (off >= p->len)
        rt_error("%s, found the end of the header", what);
    else if (p->s[off] >= 32 && p->s[off] < 127)
        rt_error("%s, found '%c'", what, p->s[off]);
    else
        rt_error("%s, found the byte 0x%02x", what, p->s[off]);
    return -1;
}

static void ws(Parser *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                               p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

size_t rt_utf8_len(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    unsigned c = s[0];
    size_t len;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    else if ((c & 0xE0) == 0xC0)
        len = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0)
        len = 3, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static int hex4(Parser *p, size_t at, uint32_t *out)
{
    uint32_t v = 0;
    for (size_t i = 0; i < 4; i++) {
        if (at + i >= p->len)
            return fail(p, at + i, "expected four hex digits after \\u");
        unsigned c = p->s[at + i];
        int d = c >= '0' && c <= '9' ? (int)c - '0'
              : c >= 'a' && c <= 'f' ? (int)c - 'a' + 10
              : c >= 'A' && c <= 'F' ? (int)c - 'A' + 10 : -1;
        if (d < 0)
            return fail(p, at + i, "expected four hex digits after \\u");
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A string starting at the opening quote; the decoded text is never longer
 * than the encoded one, so one allocation of the remaining length's bound
 * is found first by scanning to the closing quote. */
static int parse_string(Parser *p, char **out, size_t *out_len)
{
    size_t start = p->pos++;
    size_t end = p->pos;
    while (end < p->len && p->s[end] != '"')
        end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->len)
        return fail(p, start, "expected a closing '\"' for this string");
    char *buf = malloc(end - p->pos + 1);
    if (!buf) {
        p->err_off = start;
        rt_error("out of memory");
        return -1;
    }
    size_t n = 0;
    while (p->s[p->pos] != '"') {
        unsigned c = p->s[p->pos];
        if (c < 0x20) {
            free(buf);
            return fail(p, p->pos, "expected no raw control characters in a string");
        }
        if (c >= 0x80) {
            size_t l = rt_utf8_len(p->s + p->pos, p->len - p->pos);
            if (l == 0) {
                free(buf);
                return fail(p, p->pos, "expected valid UTF-8 in a string");
            }
            memcpy(buf + n, p->s + p->pos, l);
            n += l;
            p->pos += l;
            continue;
        }
        if (c != '\\') {
            buf[n++] = (char)c;
            p->pos++;
            continue;
        }
        size_t esc = p->pos;
        unsigned e = p->s[p->pos + 1];
        p->pos += 2;
        switch (e) {
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case '/': buf[n++] = '/'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'r': buf[n++] = '\r'; break;
        case 't': buf[n++] = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (hex4(p, p->pos, &cp) != 0) {
                free(buf);
                return -1;
            }
            p->pos += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                free(buf);
                return fail(p, esc, "expected a high surrogate before a low one");
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (p->pos + 1 >= p->len || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' ||
                    hex4(p, p->pos + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
                    free(buf);
                    return fail(p, esc, "expected a low surrogate after a high one");
                }
                p->pos += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp == 0) {
                free(buf);
                return fail(p, esc, "expected no \\u0000 in a string");
            }
            n += put_utf8(buf + n, cp);
            break;
        }
        default:
            free(buf);
            return fail(p, esc + 1, "expected an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u)");
        }
    }
    p->pos++;
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return 0;
}

static int parse_number(Parser *p, rt_json *v)
{
    size_t start = p->pos;
    bool integer = true, negative = false;
    if (p->s[p->pos] == '-') {
        negative = true;
        p->pos++;
    }
    if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
        return fail(p, p->pos, "expected a digit");
    if (p->s[p->pos] == '0') {
        p->pos++;
        if (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            return fail(p, p->pos, "expected no leading zeros in a number");
    } else {
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
    }
    if (p->pos < p->len && p->s[p->pos] == '.') {
        integer = false;
        p->pos++;
        if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
            return fail(p, p->pos, "expected a digit after '.'");
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        integer = false;
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
            p->pos++;
        if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
            return fail(p, p->pos, "expected a digit in the exponent");
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
    }
    size_t n = p->pos - start;
    char *text = malloc(n + 1);
    if (!text) {
        rt_error("out of memory");
        p->err_off = start;
        return -1;
    }
    memcpy(text, p->s + start, n);
    text[n] = '\0';
    v->type = RT_JNUM;
    v->num = strtod(text, NULL);
    free(text);
    if (integer && !negative) {
        uint64_t u = 0;
        v->is_uint = true;
        for (size_t i = start; i < p->pos; i++)
            if (!rt_mul_ok(u, 10, &u) || !rt_add_ok(u, (uint64_t)(p->s[i] - '0'), &u)) {
                v->is_uint = false;
                break;
            }
        v->u = u;
    }
    return 0;
}

static int parse_value(Parser *p, rt_json *v);

static int grow(rt_json *v, size_t *cap, bool keys)
{
    if (v->n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 8;
    rt_json *items = realloc(v->items, ncap * sizeof *items);
    if (items)
        v->items = items;
    char **k = keys ? realloc(v->keys, ncap * sizeof *k) : NULL;
    if (k)
        v->keys = k;
    if (!items || (keys && !k)) {
        rt_error("out of memory");
        return -1;
    }
    *cap = ncap;
    return 0;
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(**(char *const *const *)a, **(char *const *const *)b);
}

/* Refuses a key that appears twice (sorting pointers to the keys). */
static int check_duplicates(Parser *p, rt_json *v)
{
    if (v->n < 2)
        return 0;
    char ***order = malloc(v->n * sizeof *order);
    if (!order) {
        rt_error("out of memory");
        p->err_off = v->off;
        return -1;
    }
    for (size_t i = 0; i < v->n; i++)
        order[i] = &v->keys[i];
    qsort(order, v->n, sizeof *order, cmp_keys);
    int rc = 0;
    for (size_t i = 1; i < v->n && rc == 0; i++)
        if (strcmp(*order[i - 1], *order[i]) == 0) {
            /* Point at the later of the two. */
            char **later = order[i] > order[i - 1] ? order[i] : order[i - 1];
            size_t k = (size_t)(later - v->keys);
            p->err_off = v->items[k].off;
            rt_error("duplicate key \"%s\"", v->keys[k]);
            rc = -1;
        }
    free(order);
    return rc;
}

static int parse_container(Parser *p, rt_json *v, bool object)
{
    char close = object ? '}' : ']';
    size_t cap = 0;
    if (++p->depth > RT_JSON_MAX_DEPTH)
        return fail(p, p->pos, "expected nesting at most 32 deep");
    v->type = object ? RT_JOBJ : RT_JARR;
    p->pos++;
    ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        p->depth--;
        return 0;
    }
    for (;;) {
        ws(p);
        if (grow(v, &cap, object) != 0) {
            p->err_off = p->pos;
            return -1;
        }
        char *key = NULL;
        if (object) {
            size_t klen;
            if (p->pos >= p->len || p->s[p->pos] != '"')
                return fail(p, p->pos, "expected a '\"' starting a key");
            if (parse_string(p, &key, &klen) != 0)
                return -1;
            ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                free(key);
                return fail(p, p->pos, "expected ':' after a key");
            }
            p->pos++;
            v->keys[v->n] = key;
        }
        memset(&v->items[v->n], 0, sizeof v->items[0]);
        v->n++;   /* counted now so that rt_json_free sees it on failure */
        if (parse_value(p, &v->items[v->n - 1]) != 0)
            return -1;
        ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            break;
        }
        return fail(p, p->pos, object ? "expected ',' or '}' in an object"
                                       : "expected ',' or ']' in an array");
    }
    p->depth--;
    return object ? check_duplicates(p, v) : 0;
}

static int parse_value(Parser *p, rt_json *v)
{
    ws(p);
    memset(v, 0, sizeof *v);
    v->off = p->pos;
    if (p->pos >= p->len)
        return fail(p, p->pos, "expected a value");
    unsigned c = p->s[p->pos];
    if (c == '{' || c == '[')
        return parse_container(p, v, c == '{');
    if (c == '"') {
        v->type = RT_JSTR;
        return parse_string(p, &v->str, &v->len);
    }
    if (c == '-' || (c >= '0' && c <= '9'))
        return parse_number(p, v);
    static const struct { const char *word; rt_jtype type; bool b; } lit[] = {
        {"true", RT_JBOOL, true}, {"false", RT_JBOOL, false}, {"null", RT_JNULL, false}};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(lit[i].word);
        if (p->len - p->pos >= n && memcmp(p->s + p->pos, lit[i].word, n) == 0) {
            v->type = lit[i].type;
            v->b = lit[i].b;
            p->pos += n;
            return 0;
        }
    }
    return fail(p, p->pos, "expected a value");
}

int rt_json_parse(const char *text, size_t len, rt_json *out, size_t *err_off)
{
    Parser p = {(const unsigned char *)text, len, 0, 0, 0};
    int rc = parse_value(&p, out);
    if (rc == 0) {
        ws(&p);
        if (p.pos != p.len)
            rc = fail(&p, p.pos, "expected nothing after the value");
    }
    if (rc != 0) {
        rt_json_free(out);
        *err_off = p.err_off;
    }
    return rc;
}

void rt_json_free(rt_json *v)
{
    for (size_t i = 0; i < v->n; i++) {
        rt_json_free(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    memset(v, 0, sizeof *v);
}

const rt_json *rt_json_get(const rt_json *obj, const char *key)
{
    if (obj->type != RT_JOBJ)
        return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return &obj->items[i];
    return NULL;
}

void rt_json_write_str(FILE *f, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s);
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc((int)c, f);
        } else if (c == '\n') {
            fputs("\\n", f);
        } else if (c == '\t') {
            fputs("\\t", f);
        } else if (c == '\r') {
            fputs("\\r", f);
        } else if (c < 0x20 || c == 0x7F) {
            fprintf(f, "\\u%04x", c);
        } else if (c >= 0x80) {
            size_t l = rt_utf8_len(u + i, n - i);
            if (l == 0) {
                fputs("\\ufffd", f);
                i++;
                continue;
            }
            fwrite(u + i, 1, l, f);
            i += l;
            continue;
        } else {
            fputc((int)c, f);
        }
        i++;
    }
    fputc('"', f);
}
