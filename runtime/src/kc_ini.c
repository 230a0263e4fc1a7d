#include "kc_ini.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_array.h"
#include "kc_unicode.h"

#define DEFAULT_NAME "DEFAULT"
#define DEFAULT_LEN 7
/* CPython's MAX_INTERPOLATION_DEPTH */
#define MAX_DEPTH 10
/* Python has no bound here; ours keeps "%(a)s%(a)s..." chains from
 * expanding without limit. */
#define MAX_EXPANSION ((size_t)16 << 20)
#define MAX_REFERENCES 100000

/* ---- name index ------------------------------------------------------------------ */

static uint64_t hash_name(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

typedef const uint8_t *(*name_at_fn)(const void *owner, size_t pos, size_t *len);

static void index_free(kc_ini_index *ix)
{
    free(ix->slots);
    ix->slots = NULL;
    ix->cap = 0;
}

/* The slot holding name, or the empty slot where it would go. */
static size_t index_probe(const kc_ini_index *ix, const void *owner, name_at_fn name_at,
                          const uint8_t *name, size_t n)
{
    size_t mask = ix->cap - 1, i = (size_t)hash_name(name, n) & mask;
    for (;;) {
        uint32_t s = ix->slots[i];
        if (s == 0)
            return i;
        size_t len;
        const uint8_t *p = name_at(owner, s - 1, &len);
        if (len == n && memcmp(p, name, n) == 0)
            return i;
        i = (i + 1) & mask;
    }
}

static long index_find(const kc_ini_index *ix, const void *owner, name_at_fn name_at,
                       const uint8_t *name, size_t n)
{
    if (ix->cap == 0)
        return -1;
    uint32_t s = ix->slots[index_probe(ix, owner, name_at, name, n)];
    return s ? (long)s - 1 : -1;
}

/* Rebuilds the index for count entries, sized for at least `room`. */
static kc_status index_rebuild(kc_ini_index *ix, const void *owner, name_at_fn name_at,
                               size_t count, size_t room)
{
    size_t cap = 16;
    while (cap < 2 * room)
        cap *= 2;
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return KC_ERR_NOMEM;
    free(ix->slots);
    ix->slots = slots;
    ix->cap = cap;
    for (size_t pos = 0; pos < count; pos++) {
        size_t len;
        const uint8_t *p = name_at(owner, pos, &len);
        ix->slots[index_probe(ix, owner, name_at, p, len)] = (uint32_t)(pos + 1);
    }
    return KC_OK;
}

/* Re-inserts count entries into the existing slots (after a removal
 * shifted positions; the capacity still suffices). */
static void index_refill(kc_ini_index *ix, const void *owner, name_at_fn name_at, size_t count)
{
    memset(ix->slots, 0, ix->cap * sizeof *ix->slots);
    for (size_t pos = 0; pos < count; pos++) {
        size_t len;
        const uint8_t *p = name_at(owner, pos, &len);
        ix->slots[index_probe(ix, owner, name_at, p, len)] = (uint32_t)(pos + 1);
    }
}

/* Records entry `pos` (already stored by the owner) in the index. */
static kc_status index_add(kc_ini_index *ix, const void *owner, name_at_fn name_at, size_t pos)
{
    if (pos >= UINT32_MAX - 1)
        return KC_ERR_NOMEM;
    if (2 * (pos + 1) > ix->cap)
        return index_rebuild(ix, owner, name_at, pos + 1, 2 * (pos + 1));
    size_t len;
    const uint8_t *p = name_at(owner, pos, &len);
    ix->slots[index_probe(ix, owner, name_at, p, len)] = (uint32_t)(pos + 1);
    return KC_OK;
}

static const uint8_t *option_name_at(const void *owner, size_t pos, size_t *len)
{
    const kc_ini_section *s = owner;
    *len = s->opts[pos].name_len;
    return s->opts[pos].name;
}

static const uint8_t *section_name_at(const void *owner, size_t pos, size_t *len)
{
    const kc_ini *ini = owner;
    *len = ini->secs[pos]->name_len;
    return ini->secs[pos]->name;
}

/* ---- sections and options ----------------------------------------------------------- */

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n + 1);
    if (d) {
        if (n)
            memcpy(d, p, n);
        d[n] = 0;
    }
    return d;
}

static void section_free(kc_ini_section *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->opts[i].name);
        free(s->opts[i].value);
    }
    free(s->opts);
    free(s->name);
    index_free(&s->index);
    memset(s, 0, sizeof *s);
}

static kc_status section_init(kc_ini_section *s, const uint8_t *name, size_t n)
{
    memset(s, 0, sizeof *s);
    s->name = dup_bytes(name, n);
    s->name_len = n;
    return s->name ? KC_OK : KC_ERR_NOMEM;
}

void kc_ini_init(kc_ini *ini)
{
    memset(ini, 0, sizeof *ini);
}

void kc_ini_free(kc_ini *ini)
{
    section_free(&ini->defaults);
    for (size_t i = 0; i < ini->n; i++) {
        section_free(ini->secs[i]);
        free(ini->secs[i]);
    }
    free(ini->secs);
    index_free(&ini->index);
    memset(ini, 0, sizeof *ini);
}

/* Section names for messages (the defaults keep no name of their own). */
static const char *section_label(const kc_ini *ini, const kc_ini_section *s)
{
    return s == &ini->defaults ? DEFAULT_NAME : (const char *)s->name;
}

static size_t section_label_len(const kc_ini *ini, const kc_ini_section *s)
{
    size_t n = s == &ini->defaults ? DEFAULT_LEN : s->name_len;
    return n > 80 ? 80 : n;
}

static bool is_default_name(const uint8_t *name, size_t n)
{
    return n == DEFAULT_LEN && memcmp(name, DEFAULT_NAME, DEFAULT_LEN) == 0;
}

kc_ini_section *kc_ini_section_find(const kc_ini *ini, const uint8_t *name, size_t n)
{
    if (is_default_name(name, n))
        return (kc_ini_section *)&ini->defaults;
    long pos = index_find(&ini->index, ini, section_name_at, name, n);
    return pos < 0 ? NULL : ini->secs[pos];
}

kc_status kc_ini_section_add(kc_ini *ini, const uint8_t *name, size_t n, kc_ini_section **out)
{
    kc_ini_section *s = kc_ini_section_find(ini, name, n);
    if (s) {
        *out = s;
        return KC_OK;
    }
    if (KC_ARRAY_GROW(ini->secs, ini->n, ini->cap) != KC_OK)
        return KC_ERR_NOMEM;
    s = malloc(sizeof *s);
    if (!s)
        return KC_ERR_NOMEM;
    if (section_init(s, name, n) != KC_OK) {
        free(s);
        return KC_ERR_NOMEM;
    }
    ini->secs[ini->n] = s;
    kc_status st = index_add(&ini->index, ini, section_name_at, ini->n);
    if (st != KC_OK) {
        section_free(s);
        free(s);
        return st;
    }
    ini->n++;
    *out = s;
    return KC_OK;
}

const kc_ini_option *kc_ini_option_find(const kc_ini_section *s, const uint8_t *name, size_t n)
{
    long pos = index_find(&s->index, s, option_name_at, name, n);
    return pos < 0 ? NULL : &s->opts[pos];
}

kc_status kc_ini_option_set(kc_ini_section *s, const uint8_t *name, size_t n,
                            const uint8_t *value, size_t value_len)
{
    uint8_t *v = dup_bytes(value, value_len);
    if (!v)
        return KC_ERR_NOMEM;
    long pos = index_find(&s->index, s, option_name_at, name, n);
    if (pos >= 0) {
        free(s->opts[pos].value);
        s->opts[pos].value = v;
        s->opts[pos].value_len = value_len;
        return KC_OK;
    }
    if (KC_ARRAY_GROW(s->opts, s->n, s->cap) != KC_OK) {
        free(v);
        return KC_ERR_NOMEM;
    }
    kc_ini_option *o = &s->opts[s->n];
    o->name = dup_bytes(name, n);
    o->name_len = n;
    o->value = v;
    o->value_len = value_len;
    kc_status st = o->name ? index_add(&s->index, s, option_name_at, s->n) : KC_ERR_NOMEM;
    if (st != KC_OK) {
        free(o->name);
        free(v);
        return st;
    }
    s->n++;
    return KC_OK;
}

bool kc_ini_option_remove(kc_ini_section *s, const uint8_t *name, size_t n)
{
    long pos = index_find(&s->index, s, option_name_at, name, n);
    if (pos < 0)
        return false;
    free(s->opts[pos].name);
    free(s->opts[pos].value);
    memmove(&s->opts[pos], &s->opts[pos + 1], (s->n - (size_t)pos - 1) * sizeof *s->opts);
    s->n--;
    index_refill(&s->index, s, option_name_at, s->n);
    return true;
}

static kc_status section_copy(kc_ini_section *dst, const kc_ini_section *src)
{
    kc_status st = section_init(dst, src->name, src->name_len);
    for (size_t i = 0; i < src->n && st == KC_OK; i++)
        st = kc_ini_option_set(dst, src->opts[i].name, src->opts[i].name_len,
                               src->opts[i].value, src->opts[i].value_len);
    return st;
}

kc_status kc_ini_clone(kc_ini *dst, const kc_ini *src)
{
    kc_ini_init(dst);
    kc_status st = section_copy(&dst->defaults, &src->defaults);
    for (size_t i = 0; i < src->n && st == KC_OK; i++) {
        kc_ini_section *s;
        st = kc_ini_section_add(dst, src->secs[i]->name, src->secs[i]->name_len, &s);
        for (size_t j = 0; j < src->secs[i]->n && st == KC_OK; j++) {
            const kc_ini_option *o = &src->secs[i]->opts[j];
            st = kc_ini_option_set(s, o->name, o->name_len, o->value, o->value_len);
        }
    }
    if (st != KC_OK)
        kc_ini_free(dst);
    return st;
}

/* ---- parsing ------------------------------------------------------------------------ */

typedef struct parser {
    kc_ini *ini;
    const char *source;
    kc_err *err;
    size_t lineno;
    kc_ini_section *cur;  /* NULL before the first header */
    kc_ini_option *opt;   /* the option continuation lines extend, if any */
    kc_ini_section *opt_section;
    size_t opt_pos;
    kc_buf value;         /* its value so far */
    size_t indent_level;
} parser;

static kc_status parse_error(parser *p, const char *what)
{
    return kc_err_set(p->err, KC_ERR_INVALID, "file %s: line %zu: %s", p->source, p->lineno,
                      what);
}

/* Stores the pending value: the pieces joined by '\n', right-stripped. */
static kc_status finish_value(parser *p)
{
    if (!p->opt_section)
        return KC_OK;
    size_t e = kc_uc_rstrip(p->value.data, p->value.len);
    kc_ini_option *o = &p->opt_section->opts[p->opt_pos];
    uint8_t *v = dup_bytes(p->value.data, e);
    if (!v)
        return KC_ERR_NOMEM;
    free(o->value);
    o->value = v;
    o->value_len = e;
    p->opt_section = NULL;
    kc_buf_reset(&p->value);
    return KC_OK;
}

static size_t codepoints(const uint8_t *p, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += (p[i] & 0xC0) != 0x80;
    return count;
}

static kc_status parse_line(parser *p, const uint8_t *line, size_t len)
{
    size_t s, e;
    kc_uc_strip(line, len, &s, &e);
    const uint8_t *text = line + s;
    size_t n = e - s;
    kc_status st;
    if (n > 0 && text[0] == ';')
        return KC_OK; /* comment: not part of any value */
    if (n == 0) {
        /* empty lines belong to the value being read */
        if (p->opt_section && kc_buf_append_byte(&p->value, '\n') != KC_OK)
            return KC_ERR_NOMEM;
        return KC_OK;
    }
    size_t indent = codepoints(line, s);
    if (p->opt_section && indent > p->indent_level) {
        if (kc_buf_append_byte(&p->value, '\n') != KC_OK ||
            kc_buf_append(&p->value, text, n) != KC_OK)
            return KC_ERR_NOMEM;
        return KC_OK;
    }
    p->indent_level = indent;

    if (text[0] == '[') {
        size_t close = n;
        while (close > 0 && text[close - 1] != ']')
            close--;
        if (close >= 3) { /* "[x]": a non-empty name up to the last ']' */
            if ((st = finish_value(p)) != KC_OK)
                return st;
            const uint8_t *name = text + 1;
            size_t name_len = close - 2;
            if (is_default_name(name, name_len)) {
                p->cur = &p->ini->defaults;
                return KC_OK;
            }
            if (kc_ini_section_find(p->ini, name, name_len))
                return kc_err_set(p->err, KC_ERR_INVALID,
                                  "file %s: line %zu: section [%.*s] appears twice", p->source,
                                  p->lineno, (int)(name_len > 80 ? 80 : name_len), name);
            return kc_ini_section_add(p->ini, name, name_len, &p->cur);
        }
    }
    if (!p->cur)
        return parse_error(p, "expected a section header such as [DEFAULT] before the first option");
    const uint8_t *colon = memchr(text, ':', n);
    if (!colon) {
        if (memchr(text, '=', n))
            return parse_error(p, "expected 'name : value' ('=' is not a delimiter in this file; use ':')");
        return parse_error(p, "expected 'name : value', a [section] header or a ';' comment");
    }
    size_t ne = kc_uc_rstrip(text, (size_t)(colon - text));
    if (ne == 0)
        return parse_error(p, "expected an option name before ':'");
    if ((st = finish_value(p)) != KC_OK)
        return st;
    if (kc_ini_option_find(p->cur, text, ne))
        return kc_err_set(p->err, KC_ERR_INVALID,
                          "file %s: line %zu: option '%.*s' appears twice in section [%.*s]",
                          p->source, p->lineno, (int)(ne > 80 ? 80 : ne), text,
                          (int)section_label_len(p->ini, p->cur),
                          section_label(p->ini, p->cur));
    if ((st = kc_ini_option_set(p->cur, text, ne, NULL, 0)) != KC_OK)
        return st;
    size_t vs, ve;
    const uint8_t *rest = colon + 1;
    kc_uc_strip(rest, (size_t)(text + n - rest), &vs, &ve);
    p->opt_section = p->cur;
    p->opt_pos = p->cur->n - 1;
    return kc_buf_append(&p->value, rest + vs, ve - vs);
}

kc_status kc_ini_parse(kc_ini *ini, const uint8_t *text, size_t n, const char *source,
                       kc_err *err)
{
    if (!source)
        source = "(config)";
    parser p = {.ini = ini, .source = source, .err = err};
    size_t valid = kc_utf8_valid_prefix(text, n);
    kc_status st = KC_OK;
    size_t i = 0;
    while (i < n && st == KC_OK) {
        p.lineno++;
        size_t end = i;
        while (end < n && text[end] != '\n' && text[end] != '\r')
            end++;
        if (valid < end) {
            st = kc_err_set(err, KC_ERR_INVALID,
                            "file %s: line %zu: not valid UTF-8 (byte %zu of the file)", source,
                            p.lineno, valid + 1);
            break;
        }
        st = parse_line(&p, text + i, end - i);
        if (end < n && text[end] == '\r' && end + 1 < n && text[end + 1] == '\n')
            end++;
        i = end + 1;
    }
    if (st == KC_OK)
        st = finish_value(&p);
    if (st == KC_ERR_NOMEM)
        kc_err_set(err, st, "file %s: out of memory while reading", source);
    kc_buf_free(&p.value);
    return st;
}

/* ---- writing ------------------------------------------------------------------------ */

static kc_status write_section(kc_buf *out, const uint8_t *name, size_t n,
                               const kc_ini_section *s)
{
    kc_status st = kc_buf_append_byte(out, '[');
    if (st == KC_OK) st = kc_buf_append(out, name, n);
    if (st == KC_OK) st = kc_buf_append(out, "]\n", 2);
    for (size_t i = 0; i < s->n && st == KC_OK; i++) {
        const kc_ini_option *o = &s->opts[i];
        st = kc_buf_append(out, o->name, o->name_len);
        if (st == KC_OK)
            st = kc_buf_append(out, " : ", 3);
        const uint8_t *v = o->value, *end = o->value + o->value_len;
        while (st == KC_OK && v < end) {
            const uint8_t *nl = memchr(v, '\n', (size_t)(end - v));
            size_t k = nl ? (size_t)(nl - v) : (size_t)(end - v);
            st = kc_buf_append(out, v, k);
            if (st == KC_OK && nl)
                st = kc_buf_append(out, "\n\t", 2);
            v += k + (nl != NULL);
        }
        if (st == KC_OK)
            st = kc_buf_append_byte(out, '\n');
    }
    if (st == KC_OK)
        st = kc_buf_append_byte(out, '\n');
    return st;
}

kc_status kc_ini_write(const kc_ini *ini, kc_buf *out)
{
    kc_status st = KC_OK;
    if (ini->defaults.n)
        st = write_section(out, (const uint8_t *)DEFAULT_NAME, DEFAULT_LEN, &ini->defaults);
    for (size_t i = 0; i < ini->n && st == KC_OK; i++)
        st = write_section(out, ini->secs[i]->name, ini->secs[i]->name_len, ini->secs[i]);
    return st;
}

/* ---- reading values ------------------------------------------------------------------- */

bool kc_ini_has_option(const kc_ini *ini, const kc_ini_section *s, const uint8_t *name,
                       size_t n)
{
    return (s && kc_ini_option_find(s, name, n)) ||
           kc_ini_option_find(&ini->defaults, name, n);
}

/* Python's ChainMap(section, defaults) lookup; the defaults have no own map. */
static const kc_ini_option *lookup(const kc_ini *ini, const kc_ini_section *s,
                                   const uint8_t *name, size_t n)
{
    const kc_ini_option *o = NULL;
    if (s && s != &ini->defaults)
        o = kc_ini_option_find(s, name, n);
    return o ? o : kc_ini_option_find(&ini->defaults, name, n);
}

typedef struct interp {
    const kc_ini *ini;
    const kc_ini_section *s;
    const uint8_t *option;
    size_t option_len;
    size_t references;
    kc_err *err;
} interp;

static kc_status interp_error(interp *in, const char *what)
{
    const kc_ini_section *s = in->s ? in->s : &in->ini->defaults;
    return kc_err_set(in->err, KC_ERR_INVALID, "section [%.*s]: option '%.*s': %s",
                      (int)section_label_len(in->ini, s), section_label(in->ini, s),
                      (int)(in->option_len > 80 ? 80 : in->option_len), in->option, what);
}

/* A "%(name)s" reference at v[i] (v[i] == '%'): its length, or 0. */
static size_t reference_len(const uint8_t *v, size_t i, size_t n)
{
    if (i + 1 >= n || v[i + 1] != '(')
        return 0;
    const uint8_t *close = memchr(v + i + 2, ')', n - i - 2);
    if (!close || close == v + i + 2 || (size_t)(close - v) + 1 >= n || close[1] != 's')
        return 0;
    return (size_t)(close - v) + 2 - i;
}

/* CPython's BasicInterpolation._interpolate_some. */
static kc_status interpolate(interp *in, const uint8_t *rest, size_t n, int depth, kc_buf *out)
{
    if (depth > MAX_DEPTH)
        return interp_error(in, "%(...)s references nest more than 10 levels deep");
    while (n > 0) {
        const uint8_t *pct = memchr(rest, '%', n);
        if (!pct)
            return kc_buf_append(out, rest, n);
        size_t k = (size_t)(pct - rest);
        kc_status st = kc_buf_append(out, rest, k);
        if (st != KC_OK)
            return st;
        rest += k;
        n -= k;
        if (n >= 2 && rest[1] == '%') {
            if ((st = kc_buf_append_byte(out, '%')) != KC_OK)
                return st;
            rest += 2;
            n -= 2;
        } else if (n >= 2 && rest[1] == '(') {
            size_t used = reference_len(rest, 0, n);
            if (used == 0)
                return interp_error(in, "bad interpolation reference: expected %(name)s");
            const uint8_t *var = rest + 2;
            size_t var_len = used - 4;
            const kc_ini_option *o = lookup(in->ini, in->s, var, var_len);
            if (!o) {
                char what[160];
                snprintf(what, sizeof what, "references %%(%.*s)s, which is not set",
                         (int)(var_len > 80 ? 80 : var_len), var);
                return interp_error(in, what);
            }
            if (++in->references > MAX_REFERENCES)
                return interp_error(in, "too many %(...)s references");
            if (memchr(o->value, '%', o->value_len))
                st = interpolate(in, o->value, o->value_len, depth + 1, out);
            else
                st = kc_buf_append(out, o->value, o->value_len);
            if (st != KC_OK)
                return st;
            rest += used;
            n -= used;
        } else {
            return interp_error(in, "'%' must be followed by '%' or '(' (write %% for a percent sign)");
        }
        if (out->len > MAX_EXPANSION)
            return interp_error(in, "value expands beyond 16 MiB");
    }
    return KC_OK;
}

kc_status kc_ini_get(const kc_ini *ini, const kc_ini_section *s, const uint8_t *name, size_t n,
                     kc_buf *out, kc_err *err)
{
    const kc_ini_option *o = lookup(ini, s, name, n);
    if (!o)
        return kc_err_set(err, KC_ERR_NOTFOUND, "no option '%.*s'", (int)(n > 80 ? 80 : n), name);
    interp in = {ini, s, name, n, 0, err};
    kc_status st = interpolate(&in, o->value, o->value_len, 1, out);
    if (st == KC_ERR_NOMEM)
        kc_err_set(err, st, "out of memory");
    return st;
}

kc_status kc_ini_options(const kc_ini *ini, const kc_ini_section *s,
                         const kc_ini_option ***out, size_t *n)
{
    const kc_ini_section *d = &ini->defaults;
    size_t max = d->n + (s && s != d ? s->n : 0);
    *out = NULL;
    *n = 0;
    if (max == 0)
        return KC_OK;
    const kc_ini_option **list = malloc(max * sizeof *list);
    if (!list)
        return KC_ERR_NOMEM;
    size_t k = 0;
    if (s && s != d)
        for (size_t i = 0; i < s->n; i++)
            list[k++] = &s->opts[i];
    for (size_t i = 0; i < d->n; i++)
        if (!(s && s != d && kc_ini_option_find(s, d->opts[i].name, d->opts[i].name_len)))
            list[k++] = &d->opts[i];
    *out = list;
    *n = k;
    return KC_OK;
}

/* ---- setting and comparing ------------------------------------------------------------ */

bool kc_ini_value_settable(const uint8_t *v, size_t n)
{
    /* CPython removes every "%%", then every "%(...)s" of what is left,
     * and refuses any '%' that remains. */
    uint8_t *tmp = malloc(n + 1);
    if (!tmp)
        return false;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '%' && i + 1 < n && v[i + 1] == '%')
            i++;
        else
            tmp[k++] = v[i];
    }
    bool ok = true;
    for (size_t i = 0; i < k && ok; i++) {
        if (tmp[i] != '%')
            continue;
        size_t r = reference_len(tmp, i, k);
        if (r == 0)
            ok = false;
        else
            i += r - 1;
    }
    free(tmp);
    return ok;
}

static bool section_equal(const kc_ini_section *a, const kc_ini_section *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const kc_ini_option *x = &a->opts[i], *y = &b->opts[i];
        if (x->name_len != y->name_len || x->value_len != y->value_len ||
            memcmp(x->name, y->name, x->name_len) != 0 ||
            memcmp(x->value, y->value, x->value_len) != 0)
            return false;
    }
    return true;
}

bool kc_ini_equal(const kc_ini *a, const kc_ini *b)
{
    if (a->n != b->n || !section_equal(&a->defaults, &b->defaults))
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (a->secs[i]->name_len != b->secs[i]->name_len ||
            memcmp(a->secs[i]->name, b->secs[i]->name, a->secs[i]->name_len) != 0 ||
            !section_equal(a->secs[i], b->secs[i]))
            return false;
    return true;
}
