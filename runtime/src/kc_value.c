#include "kc_value.h"

#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_hex.h"
#include "kc_unicode.h"

/* ---- values ------------------------------------------------------------------ */

kc_value kc_value_text(const char *s)
{
    return kc_value_textn(s, s ? strlen(s) : 0);
}

void kc_value_clear(kc_value *v)
{
    if (!v)
        return;
    if (v->owned && v->data) {
        sodium_memzero(v->data, v->len);
        free(v->data);
    }
    *v = kc_value_none();
}

kc_status kc_value_set_data(kc_value *v, kc_value_type type, const void *p, size_t n)
{
    uint8_t *d = malloc(n + 1);
    if (!d)
        return KC_ERR_NOMEM;
    if (n)
        memcpy(d, p, n);
    d[n] = 0;
    kc_value_clear(v);
    v->type = type;
    v->data = d;
    v->len = n;
    v->owned = true;
    return KC_OK;
}

kc_status kc_value_copy(kc_value *dst, const kc_value *src)
{
    if (src->type == KC_VALUE_TEXT || src->type == KC_VALUE_BYTES ||
        src->type == KC_VALUE_BIGINT)
        return kc_value_set_data(dst, src->type, src->data, src->len);
    kc_value_clear(dst);
    *dst = *src;
    dst->data = NULL;
    dst->len = 0;
    dst->owned = false;
    return KC_OK;
}

static bool is_number(const kc_value *v)
{
    return v->type == KC_VALUE_BOOL || v->type == KC_VALUE_INT ||
           v->type == KC_VALUE_BIGINT || v->type == KC_VALUE_FLOAT;
}

/* Python compares ints and floats exactly, not through a conversion. */
static bool int_equals_float(int64_t i, double f)
{
    if (!(f >= -9223372036854775808.0 && f < 9223372036854775808.0) || f != trunc(f))
        return false;
    return (int64_t)f == i;
}

static bool bigint_equals_float(const kc_value *big, double f)
{
    if (!isfinite(f) || f != trunc(f))
        return false;
    char buf[400]; /* the largest double has 309 digits */
    int k = snprintf(buf, sizeof buf, "%.0f", f);
    return k > 0 && (size_t)k == big->len && memcmp(buf, big->data, big->len) == 0;
}

bool kc_value_equal(const kc_value *a, const kc_value *b)
{
    if (is_number(a) && is_number(b)) {
        if (a->type == KC_VALUE_FLOAT && b->type == KC_VALUE_FLOAT)
            return a->f == b->f;
        if (a->type == KC_VALUE_FLOAT || b->type == KC_VALUE_FLOAT) {
            const kc_value *fv = a->type == KC_VALUE_FLOAT ? a : b;
            const kc_value *iv = fv == a ? b : a;
            return iv->type == KC_VALUE_BIGINT ? bigint_equals_float(iv, fv->f)
                                               : int_equals_float(iv->i, fv->f);
        }
        if (a->type == KC_VALUE_BIGINT || b->type == KC_VALUE_BIGINT)
            return a->type == b->type && a->len == b->len &&
                   memcmp(a->data, b->data, a->len) == 0;
        return a->i == b->i;
    }
    if (a->type != b->type)
        return false;
    if (a->type == KC_VALUE_NONE)
        return true;
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

void kc_section_clear(kc_section *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        kc_value_clear(&s->items[i].key);
        kc_value_clear(&s->items[i].value);
    }
    free(s->items);
    s->items = NULL;
    s->n = 0;
}

const kc_value *kc_section_get(const kc_section *s, const char *key)
{
    kc_value k = kc_value_text(key);
    for (size_t i = 0; i < s->n; i++)
        if (kc_value_equal(&s->items[i].key, &k))
            return &s->items[i].value;
    return NULL;
}

/* ---- C locale for number formatting ------------------------------------------- */

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void make_c_locale(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

static locale_t the_c_locale(void)
{
    pthread_once(&c_locale_once, make_c_locale);
    return c_locale;
}

/* ---- int() and float() ---------------------------------------------------------- */

/* CPython's _PyUnicode_TransformDecimalAndSpaceToASCII: ASCII stays, other
 * whitespace becomes ' ', other decimal digits their ASCII digit; anything
 * else ends the text with '?' (so the parse fails there). */
static kc_status to_ascii(const uint8_t *p, size_t n, kc_buf *out)
{
    kc_buf_reset(out);
    size_t i = 0;
    while (i < n) {
        uint32_t cp = kc_utf8_next(p, &i);
        uint8_t c;
        if (cp < 127)
            c = (uint8_t)cp;
        else if (kc_uc_isspace(cp))
            c = ' ';
        else if (kc_uc_decimal(cp) >= 0)
            c = (uint8_t)('0' + kc_uc_decimal(cp));
        else
            c = '?';
        kc_status st = kc_buf_append_byte(out, c);
        if (st != KC_OK || c == '?')
            return st;
    }
    return KC_OK;
}

static bool py_isspace_ascii(uint8_t c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

#define PY_INT_MAX_STR_DIGITS 4300 /* sys.int_info.default_max_str_digits */

bool kc_py_int(const uint8_t *text, size_t n, kc_value *out)
{
    if (!kc_utf8_valid(text, n))
        return false;
    kc_buf a = KC_BUF_INIT;
    bool ok = false;
    if (to_ascii(text, n, &a) != KC_OK || a.len == 0)
        goto done;
    const uint8_t *s = a.data, *end = a.data + a.len;
    while (s < end && py_isspace_ascii(*s))
        s++;
    bool neg = false;
    if (s < end && (*s == '+' || *s == '-'))
        neg = *s++ == '-';
    if (s == end || *s == '_')
        goto done;
    /* digits with single '_' between them */
    const uint8_t *start = s;
    size_t ndigits = 0;
    uint8_t prev = 0;
    while (s < end && (is_digit(*s) || *s == '_')) {
        if (*s == '_' && prev == '_')
            goto done;
        if (*s != '_')
            ndigits++;
        prev = *s++;
    }
    if (ndigits == 0 || prev == '_')
        goto done;
    const uint8_t *digits_end = s;
    while (s < end && py_isspace_ascii(*s))
        s++;
    if (s != end || ndigits > PY_INT_MAX_STR_DIGITS)
        goto done;

    uint64_t mag = 0;
    bool overflow = false;
    for (const uint8_t *q = start; q < digits_end; q++) {
        if (*q == '_')
            continue;
        unsigned d = (unsigned)(*q - '0');
        if (mag > (UINT64_MAX - d) / 10)
            overflow = true;
        else
            mag = mag * 10 + d;
    }
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    kc_value_clear(out);
    if (!overflow && mag <= limit) {
        out->type = KC_VALUE_INT;
        out->i = neg ? (mag == limit ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
        ok = true;
        goto done;
    }
    /* Outside int64: keep the canonical decimal form (no '+', '_' or
     * leading zeros), as str(int) would print it. */
    kc_buf big = KC_BUF_INIT;
    bool fail = neg && kc_buf_append_byte(&big, '-') != KC_OK;
    bool leading = true;
    for (const uint8_t *q = start; q < digits_end && !fail; q++) {
        if (*q == '_' || (leading && *q == '0'))
            continue;
        leading = false;
        fail = kc_buf_append_byte(&big, *q) != KC_OK;
    }
    if (!fail && kc_value_set_data(out, KC_VALUE_BIGINT, big.data, big.len) == KC_OK)
        ok = true;
    kc_buf_free(&big);
done:
    kc_buf_free(&a);
    return ok;
}

static bool ci_prefix(const uint8_t *s, const uint8_t *end, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(end - s) < n)
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c + 32);
        if (c != (uint8_t)word[i])
            return false;
    }
    return true;
}

/* The grammar of Python's _Py_dg_strtod after CPython has removed '_'
 * (sign, digits, optional fraction, optional exponent), then inf/nan. */
static bool parse_float_ascii(const uint8_t *s, const uint8_t *end, double *out)
{
    const uint8_t *p = s;
    if (p < end && (*p == '+' || *p == '-'))
        p++;
    size_t mant = 0;
    while (p < end && is_digit(*p))
        p++, mant++;
    if (p < end && *p == '.') {
        p++;
        while (p < end && is_digit(*p))
            p++, mant++;
    }
    if (mant > 0) {
        if (p < end && (*p == 'e' || *p == 'E')) {
            const uint8_t *e = p + 1;
            if (e < end && (*e == '+' || *e == '-'))
                e++;
            if (e < end && is_digit(*e)) {
                while (e < end && is_digit(*e))
                    e++;
                p = e;
            }
        }
        if (p != end)
            return false;
        /* Only [+-]digits[.digits][e[+-]digits] reaches strtod, which
         * rounds correctly as Python's dtoa does. */
        char *copy = malloc((size_t)(end - s) + 1);
        if (!copy)
            return false;
        memcpy(copy, s, (size_t)(end - s));
        copy[end - s] = 0;
        *out = strtod_l(copy, NULL, the_c_locale());
        free(copy);
        return true;
    }
    bool neg = s < end && *s == '-';
    p = s + (s < end && (*s == '+' || *s == '-'));
    if (ci_prefix(p, end, "infinity") && p + 8 == end)
        *out = neg ? -INFINITY : INFINITY;
    else if (ci_prefix(p, end, "inf") && p + 3 == end)
        *out = neg ? -INFINITY : INFINITY;
    else if (ci_prefix(p, end, "nan") && p + 3 == end)
        *out = neg ? -NAN : NAN;
    else
        return false;
    return true;
}

bool kc_py_float(const uint8_t *text, size_t n, double *out)
{
    if (!kc_utf8_valid(text, n))
        return false;
    kc_buf a = KC_BUF_INIT;
    bool ok = false;
    if (to_ascii(text, n, &a) != KC_OK || a.len == 0 || memchr(a.data, 0, a.len))
        goto done;
    /* '_' only between digits; it is then dropped */
    size_t w = 0;
    uint8_t prev = 0;
    for (size_t r = 0; r < a.len; r++) {
        uint8_t c = a.data[r];
        if (c == '_') {
            if (!is_digit(prev))
                goto done;
        } else {
            if (prev == '_' && !is_digit(c))
                goto done;
            a.data[w++] = c;
        }
        prev = c;
    }
    if (prev == '_')
        goto done;
    const uint8_t *s = a.data, *end = a.data + w;
    while (s < end && py_isspace_ascii(*s))
        s++;
    while (end > s + 1 && py_isspace_ascii(end[-1]))
        end--;
    ok = s < end && parse_float_ascii(s, end, out);
done:
    kc_buf_free(&a);
    return ok;
}

/* ---- repr(float) -------------------------------------------------------------------- */

/* "%.*e" output split into its digits (no trailing zeros) and the exponent. */
static int split_e(const char *buf, char *digits, int *exp10)
{
    int n = 0;
    const char *p = buf;
    for (; *p && *p != 'e'; p++)
        if (is_digit((uint8_t)*p))
            digits[n++] = *p;
    *exp10 = *p == 'e' ? atoi(p + 1) : 0;
    while (n > 1 && digits[n - 1] == '0')
        n--;
    digits[n] = 0;
    return n;
}

/* Adds +1 or -1 in the last place of a p-digit mantissa "d.ddd" string
 * held as digits[0..p) with exponent *e; renormalises. */
static void step_last_digit(char *digits, int p, int *e, int dir)
{
    int i = p - 1;
    if (dir > 0) {
        while (i >= 0 && digits[i] == '9')
            digits[i--] = '0';
        if (i < 0) {
            memmove(digits + 1, digits, (size_t)p);
            digits[0] = '1';
            (*e)++;
        } else {
            digits[i]++;
        }
    } else {
        while (i >= 0 && digits[i] == '0')
            digits[i--] = '9';
        digits[i]--;
        if (digits[0] == '0') {
            memmove(digits, digits + 1, (size_t)p);
            (*e)--;
        }
    }
}

static double digits_value(const char *digits, int p, int e)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%c.%.*se%d", digits[0], p - 1, digits + 1, e);
    return strtod_l(buf, NULL, the_c_locale());
}

/* Shortest digit string that reads back as x (> 0, finite), as dtoa mode 0:
 * the correctly rounded candidate of each length, or at a power-of-two
 * boundary its neighbour on the wider side. */
static int shortest_digits(double x, char *digits, int *decpt)
{
    locale_t old = uselocale(the_c_locale());
    char buf[64], d[24];
    int n = 0, e = 0;
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, sizeof buf, "%.*e", p - 1, x);
        double v = strtod_l(buf, NULL, the_c_locale());
        /* all p digits, before trailing zeros are cut */
        int k = 0;
        for (const char *q = buf; *q && *q != 'e'; q++)
            if (is_digit((uint8_t)*q))
                d[k++] = *q;
        d[k] = 0;
        e = atoi(strchr(buf, 'e') + 1);
        if (v == x || p == 17) { /* 17 digits always read back */
            n = split_e(buf, digits, &e);
            break;
        }
        step_last_digit(d, p, &e, v < x ? 1 : -1);
        if (digits_value(d, p, e) == x) {
            n = p;
            while (n > 1 && d[n - 1] == '0')
                n--;
            memcpy(digits, d, (size_t)n);
            digits[n] = 0;
            break;
        }
    }
    uselocale(old);
    *decpt = e + 1;
    return n;
}

void kc_py_float_repr(double d, char out[KC_FLOAT_REPR_MAX])
{
    if (isnan(d)) {
        strcpy(out, "nan");
        return;
    }
    if (isinf(d)) {
        strcpy(out, d < 0 ? "-inf" : "inf");
        return;
    }
    char *o = out;
    if (signbit(d))
        *o++ = '-';
    double x = fabs(d);
    if (x == 0) {
        strcpy(o, "0.0");
        return;
    }
    char digits[24];
    int decpt;
    int n = shortest_digits(x, digits, &decpt);
    if (decpt <= -4 || decpt > 16) {
        *o++ = digits[0];
        if (n > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)n - 1);
            o += n - 1;
        }
        snprintf(o, 8, "e%+.02d", decpt - 1);
    } else if (decpt <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -decpt; i++)
            *o++ = '0';
        memcpy(o, digits, (size_t)n);
        o[n] = 0;
    } else if (decpt >= n) {
        memcpy(o, digits, (size_t)n);
        o += n;
        for (int i = n; i < decpt; i++)
            *o++ = '0';
        strcpy(o, ".0");
    } else {
        memcpy(o, digits, (size_t)decpt);
        o += decpt;
        *o++ = '.';
        memcpy(o, digits + decpt, (size_t)(n - decpt));
        o[n - decpt] = 0;
    }
}

/* ---- b64decode(validate=True) ------------------------------------------------------ */

static int b64_digit(uint8_t c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* CPython 3.11's strict a2b_base64: no leading '=', nothing after the
 * padding that completes a quad, no data after any '=', whole quads only.
 * Extra '=' after complete quads and non-zero trailing bits are accepted. */
kc_status kc_py_b64decode(const uint8_t *text, size_t n, kc_buf *out)
{
    kc_buf_reset(out);
    kc_status st = kc_buf_reserve(out, n / 4 * 3 + 3);
    if (st != KC_OK)
        return st;
    int quad = 0, pads = 0;
    bool padding = false;
    unsigned left = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = text[i];
        if (c == '=') {
            padding = true;
            if (i == 0)
                goto bad;
            if (quad >= 2 && quad + ++pads >= 4) {
                if (i + 1 < n)
                    goto bad;
                return KC_OK;
            }
            continue;
        }
        int v = b64_digit(c);
        if (v < 0 || padding)
            goto bad;
        pads = 0;
        switch (quad) {
        case 0:
            left = (unsigned)v;
            break;
        case 1:
            out->data[out->len++] = (uint8_t)((left << 2) | ((unsigned)v >> 4));
            left = (unsigned)v & 0x0f;
            break;
        case 2:
            out->data[out->len++] = (uint8_t)((left << 4) | ((unsigned)v >> 2));
            left = (unsigned)v & 0x03;
            break;
        default:
            out->data[out->len++] = (uint8_t)((left << 6) | (unsigned)v);
            left = 0;
            break;
        }
        quad = (quad + 1) % 4;
    }
    if (quad == 0)
        return KC_OK;
bad:
    kc_buf_reset(out);
    return KC_ERR_INVALID;
}

/* ---- str_decode / str_encode ---------------------------------------------------------- */

static bool text_is(const uint8_t *p, size_t n, const char *word)
{
    return strlen(word) == n && ci_prefix(p, p + n, word);
}

kc_status kc_value_decode(const uint8_t *text, size_t n, bool iskey, kc_value *out)
{
    kc_value_clear(out);
    if (!kc_utf8_valid(text, n))
        return KC_ERR_INVALID;
    /* Tried first, unlike upstream, with the same result ("base64#..." is
     * never a number or a bool): int() and float() would otherwise copy a
     * value of megabytes (a large oldkeys) before failing. */
    if (n >= 7 && memcmp(text, "base64#", 7) == 0) {
        kc_buf b = KC_BUF_INIT;
        kc_status st = kc_py_b64decode(text + 7, n - 7, &b);
        if (st == KC_OK)
            st = kc_value_set_data(out, KC_VALUE_BYTES, b.data, b.len);
        else if (st == KC_ERR_INVALID)
            st = KC_OK; /* Python returns None */
        kc_buf_free(&b);
        return st;
    }
    if (kc_py_int(text, n, out))
        return KC_OK;
    double f;
    if (kc_py_float(text, n, &f)) {
        *out = kc_value_float(f);
        return KC_OK;
    }
    if (text_is(text, n, "true") || text_is(text, n, "false")) {
        *out = kc_value_bool(n == 4);
        return KC_OK;
    }
    if (!iskey)
        return kc_value_set_data(out, KC_VALUE_TEXT, text, n);
    kc_buf low = KC_BUF_INIT;
    kc_status st = kc_uc_lower(text, n, &low);
    if (st == KC_OK)
        st = kc_value_set_data(out, KC_VALUE_TEXT, low.data, low.len);
    kc_buf_free(&low);
    return st;
}

kc_status kc_value_encode(const kc_value *v, bool iskey, kc_buf *out, kc_err *err)
{
    char num[KC_FLOAT_REPR_MAX];
    switch (v->type) {
    case KC_VALUE_BOOL:
        return kc_buf_append(out, iskey ? (v->i ? "true" : "false") : (v->i ? "True" : "False"),
                             v->i ? 4 : 5);
    case KC_VALUE_INT:
        snprintf(num, sizeof num, "%" PRId64, v->i);
        return kc_buf_append(out, num, strlen(num));
    case KC_VALUE_FLOAT:
        kc_py_float_repr(v->f, num);
        return kc_buf_append(out, num, strlen(num));
    case KC_VALUE_BIGINT:
        return kc_buf_append(out, v->data, v->len);
    case KC_VALUE_TEXT:
        if (!kc_utf8_valid(v->data, v->len))
            return kc_err_set(err, KC_ERR_INVALID, "text value is not valid UTF-8");
        return iskey ? kc_uc_lower(v->data, v->len, out) : kc_buf_append(out, v->data, v->len);
    case KC_VALUE_BYTES: {
        kc_buf b = KC_BUF_INIT;
        kc_status st = kc_base64_encode(v->data, v->len, &b);
        if (st == KC_OK)
            st = kc_buf_append(out, "base64#", 7);
        if (st == KC_OK)
            st = kc_buf_append(out, b.data, b.len);
        kc_buf_free(&b);
        return st;
    }
    case KC_VALUE_NONE:
        break;
    }
    return kc_err_set(err, KC_ERR_INVALID, "a None value has no text form");
}

kc_status kc_value_to_text(const kc_value *v, char **out, kc_err *err)
{
    kc_buf b = KC_BUF_INIT;
    kc_status st = kc_value_encode(v, false, &b, err);
    if (st == KC_OK)
        st = kc_buf_append_byte(&b, 0);
    if (st != KC_OK) {
        kc_buf_free(&b);
        return st;
    }
    size_t n;
    *out = (char *)kc_buf_steal(&b, &n);
    return KC_OK;
}
