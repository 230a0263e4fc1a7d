#include "kc_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_log.h"

#define LOGGER "kafkacrypto.chain"

/* ---- Python syntax -> PCRE2 ---------------------------------------------- */

#define MAX_NEST 50

typedef struct tr {
    const uint8_t *p;
    size_t n, i;
    kc_buf *out;
    kc_err *err;
    bool failed;
    bool explained;          /* failed with a message (else: out of memory) */
    int groups;              /* capture groups opened so far */
    int depth;
    int open[MAX_NEST];      /* capture number of each open group, 0 if none */
    bool verbose[MAX_NEST + 1]; /* (?x) in force at each depth */
    bool only_flags;         /* nothing but global flag groups seen yet */
    bool was_global_flags;   /* the last (?...) was a global flags group */
} tr;

static bool fail(tr *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(tr *t, const char *fmt, ...)
{
    if (!t->failed && t->err) {
        char msg[200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        kc_err_set(t->err, KC_ERR_INVALID, "%s at position %zu", msg, t->i);
    }
    if (!t->failed)
        t->explained = true;
    t->failed = true;
    return false;
}

static void emit(tr *t, const void *s, size_t n)
{
    if (kc_buf_append(t->out, s, n) != KC_OK)
        t->failed = true;
}

static void emits(tr *t, const char *s) { emit(t, s, strlen(s)); }

static void emit_byte_literal(tr *t, unsigned v)
{
    char b[12];
    snprintf(b, sizeof b, "\\x{%02x}", v & 0xffu);
    emits(t, b);
}

static bool at(const tr *t, size_t k, char c) { return t->i + k < t->n && t->p[t->i + k] == (uint8_t)c; }
static bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
static bool is_oct(uint8_t c) { return c >= '0' && c <= '7'; }
static bool is_hex(uint8_t c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static bool is_alpha(uint8_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int hexval(uint8_t c)
{
    return is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* \x with exactly two hex digits (Python requires both). t->i is at 'x'. */
static bool escape_hex(tr *t)
{
    if (t->i + 2 >= t->n || !is_hex(t->p[t->i + 1]) || !is_hex(t->p[t->i + 2]))
        return fail(t, "incomplete escape \\x");
    emit_byte_literal(t, (unsigned)(hexval(t->p[t->i + 1]) * 16 + hexval(t->p[t->i + 2])));
    t->i += 3;
    return true;
}

/* Up to `max` octal digits starting at t->i; the value must fit a byte. */
static bool escape_octal(tr *t, size_t max)
{
    unsigned v = 0;
    size_t k = 0;
    while (k < max && t->i < t->n && is_oct(t->p[t->i])) {
        v = v * 8 + (unsigned)(t->p[t->i] - '0');
        t->i++;
        k++;
    }
    if (v > 0377)
        return fail(t, "octal escape value \\%o outside of range 0-0o377", v);
    emit_byte_literal(t, v);
    return true;
}

/* An escape outside a class; t->i is at the character after '\'. */
static bool escape_outside(tr *t)
{
    if (t->i >= t->n)
        return fail(t, "bad escape (end of pattern)");
    uint8_t c = t->p[t->i];
    switch (c) {
    case 'A': case 'b': case 'B': case 'd': case 'D': case 's': case 'S':
    case 'w': case 'W': case 'a': case 'f': case 'n': case 'r': case 't':
        emit(t, "\\", 1);
        emit(t, &c, 1);
        t->i++;
        return true;
    case 'Z': emits(t, "\\z"); t->i++; return true;       /* Python \Z = PCRE2 \z */
    case 'v': emit_byte_literal(t, 0x0b); t->i++; return true;
    case 'x': return escape_hex(t);
    case '0': t->i++; return escape_octal(t, 2);
    default: break;
    }
    if (is_digit(c)) {
        /* Python: three octal digits are an octal escape, otherwise a
         * reference to an already closed group of one or two digits. */
        if (t->i + 2 < t->n && is_oct(c) && is_oct(t->p[t->i + 1]) && is_oct(t->p[t->i + 2]))
            return escape_octal(t, 3);
        int g = c - '0';
        t->i++;
        if (t->i < t->n && is_digit(t->p[t->i]))
            g = g * 10 + (t->p[t->i++] - '0');
        if (g > t->groups)
            return fail(t, "invalid group reference %d", g);
        for (int d = 0; d < t->depth; d++)
            if (t->open[d] == g)
                return fail(t, "cannot refer to an open group");
        char b[16];
        snprintf(b, sizeof b, "\\g{%d}", g);
        emits(t, b);
        return true;
    }
    if (is_alpha(c))
        return fail(t, "bad escape \\%c", c);
    emit(t, "\\", 1); /* escaped punctuation or a non-ASCII byte: literal */
    emit(t, &c, 1);
    t->i++;
    return true;
}

/* An escape inside a class; t->i is at the character after '\'. */
static bool escape_in_class(tr *t)
{
    if (t->i >= t->n)
        return fail(t, "bad escape (end of pattern)");
    uint8_t c = t->p[t->i];
    switch (c) {
    case 'd': case 'D': case 's': case 'S': case 'w': case 'W':
    case 'a': case 'b': case 'f': case 'n': case 'r': case 't':
        emit(t, "\\", 1);
        emit(t, &c, 1);
        t->i++;
        return true;
    case 'v': emit_byte_literal(t, 0x0b); t->i++; return true;
    case 'x': return escape_hex(t);
    default: break;
    }
    if (is_oct(c))
        return escape_octal(t, 3);
    if (is_digit(c) || is_alpha(c))
        return fail(t, "bad escape \\%c", c);
    emit(t, "\\", 1);
    emit(t, &c, 1);
    t->i++;
    return true;
}

/* A character class; t->i is just after '['. */
static bool char_class(tr *t)
{
    emits(t, "[");
    if (at(t, 0, '^')) {
        emits(t, "^");
        t->i++;
    }
    bool first = true;
    for (;;) {
        if (t->i >= t->n)
            return fail(t, "unterminated character set");
        uint8_t c = t->p[t->i];
        if (c == ']' && !first) {
            emits(t, "]");
            t->i++;
            return true;
        }
        first = false;
        if (c == '\\') {
            t->i++;
            if (!escape_in_class(t))
                return false;
        } else if (c == '[') {
            emits(t, "\\["); /* Python has no POSIX [:classes:] */
            t->i++;
        } else if (c == ']') {
            emits(t, "\\]");
            t->i++;
        } else {
            emit(t, &c, 1);
            t->i++;
        }
    }
}

/* A `{` that may be a quantifier: Python allows {m}, {m,n}, {,n}, {m,}, {,}. */
static void brace(tr *t)
{
    size_t j = t->i + 1, lo0 = j;
    while (j < t->n && is_digit(t->p[j]))
        j++;
    size_t lo_len = j - lo0, hi0 = j, hi_len = 0;
    bool comma = j < t->n && t->p[j] == ',';
    if (comma) {
        hi0 = ++j;
        while (j < t->n && is_digit(t->p[j]))
            j++;
        hi_len = j - hi0;
    }
    if (j >= t->n || t->p[j] != '}' || (!comma && lo_len == 0)) {
        emits(t, "\\{"); /* not a quantifier: a literal brace */
        t->i++;
        return;
    }
    emits(t, "{");
    if (lo_len)
        emit(t, t->p + lo0, lo_len);
    else
        emits(t, "0");
    if (comma) {
        emits(t, ",");
        emit(t, t->p + hi0, hi_len);
    }
    emits(t, "}");
    t->i = j + 1;
}

static bool push_group(tr *t, int capture)
{
    if (t->depth >= MAX_NEST)
        return fail(t, "groups nested deeper than %d", MAX_NEST);
    t->open[t->depth] = capture;
    t->verbose[t->depth + 1] = t->verbose[t->depth];
    t->depth++;
    return true;
}

/* Inline flags after "(?": [aimsx]* ( ")" | ( "-" [imsx]+ )? ":" ). */
static bool flags_group(tr *t)
{
    char add[8], del[8];
    size_t na = 0, nd = 0;
    bool adding = true, verbose = t->verbose[t->depth];
    for (;;) {
        if (t->i >= t->n)
            return fail(t, "missing -, : or )");
        uint8_t c = t->p[t->i++];
        if (c == ')' && adding && na > 0) {
            if (!t->only_flags || t->depth > 0)
                return fail(t, "global flags not at the start of the expression");
            add[na] = '\0';
            /* 'a' (ASCII) is already how bytes patterns behave */
            char out[12] = "(?";
            size_t k = 2;
            for (size_t x = 0; x < na; x++)
                if (add[x] != 'a')
                    out[k++] = add[x];
            if (k > 2) {
                out[k++] = ')';
                emit(t, out, k);
            }
            if (strchr(add, 'x'))
                t->verbose[0] = true;
            t->was_global_flags = true;
            return true;
        }
        if (c == ':' && (na > 0 || nd > 0)) {
            if (!adding && nd == 0)
                return fail(t, "missing flag");
            emits(t, "(?");
            for (size_t x = 0; x < na; x++)
                if (add[x] != 'a')
                    emit(t, &add[x], 1);
            if (nd) {
                emits(t, "-");
                emit(t, del, nd);
            }
            emits(t, ":");
            if (!push_group(t, 0))
                return false;
            for (size_t x = 0; x < na; x++)
                if (add[x] == 'x')
                    verbose = true;
            for (size_t x = 0; x < nd; x++)
                if (del[x] == 'x')
                    verbose = false;
            t->verbose[t->depth] = verbose;
            return true;
        }
        if (c == '-' && adding) {
            adding = false;
            continue;
        }
        if (c == 'u' || c == 'L')
            return fail(t, "inline flag '%c' is not supported for byte patterns", c);
        if (c == 'a' && !adding)
            return fail(t, "bad inline flag: cannot turn off flag 'a'");
        if (!strchr("aimsx", c))
            return fail(t, "unknown flag or extension '(?%c'", c);
        char *set = adding ? add : del;
        size_t *nset = adding ? &na : &nd;
        if (*nset >= 7 || memchr(set, c, *nset))
            return fail(t, "repeated inline flag '%c'", c);
        set[(*nset)++] = (char)c;
    }
}

/* After "(?"; t->i is at the character following '?'. */
static bool extension(tr *t)
{
    if (t->i >= t->n)
        return fail(t, "unexpected end of pattern");
    uint8_t c = t->p[t->i];
    if (c == '#') { /* comment: dropped; Python reads "\)" as one token */
        for (t->i++; t->i < t->n; t->i++) {
            if (t->p[t->i] == '\\')
                t->i++;
            else if (t->p[t->i] == ')') {
                t->i++;
                return true;
            }
        }
        return fail(t, "missing ), unterminated comment");
    }
    if (c == ':' || c == '=' || c == '!' || c == '>') {
        emits(t, "(?");
        emit(t, &c, 1);
        t->i++;
        return push_group(t, 0);
    }
    if (c == '<') {
        if (at(t, 1, '=') || at(t, 1, '!')) {
            emit(t, "(?<", 3);
            emit(t, t->p + t->i + 1, 1);
            t->i += 2;
            return push_group(t, 0);
        }
        return fail(t, "unknown extension ?<");
    }
    if (c == 'P') {
        if (at(t, 1, '<')) {
            emits(t, "(?P<");
            t->i += 2;
            t->groups++;
            return push_group(t, t->groups);
        }
        if (at(t, 1, '=')) {
            emits(t, "(?P=");
            t->i += 2;
            while (t->i < t->n && t->p[t->i] != ')')
                emit(t, t->p + t->i++, 1);
            if (t->i >= t->n)
                return fail(t, "missing ), unterminated name");
            emits(t, ")");
            t->i++;
            return true;
        }
        return fail(t, "unknown extension ?P");
    }
    if (c == '(') { /* conditional on a group number or name */
        size_t j = t->i + 1, s = j;
        while (j < t->n && t->p[j] != ')')
            j++;
        if (j >= t->n || j == s)
            return fail(t, "bad conditional group reference");
        bool digits = true, ident = !is_digit(t->p[s]);
        for (size_t k = s; k < j; k++) {
            digits &= is_digit(t->p[k]);
            ident &= is_alpha(t->p[k]) || is_digit(t->p[k]) || t->p[k] == '_';
        }
        if (!digits && !ident)
            return fail(t, "bad character in group name");
        emits(t, digits ? "(?(" : "(?(<");
        emit(t, t->p + s, j - s);
        emits(t, digits ? ")" : ">)");
        t->i = j + 1;
        return push_group(t, 0);
    }
    return flags_group(t);
}

kc_status kc_regex_translate(const uint8_t *pattern, size_t plen, kc_buf *out, kc_err *err)
{
    tr t = {.p = pattern, .n = plen, .out = out, .err = err, .only_flags = true};
    kc_buf_reset(out);
    while (t.i < t.n && !t.failed) {
        uint8_t c = t.p[t.i];
        bool flags_before = t.only_flags;
        t.only_flags = false;
        if (t.verbose[t.depth] && c == '#') { /* verbose comment to end of line */
            while (t.i < t.n && t.p[t.i] != '\n')
                t.i++;
            t.only_flags = flags_before;
            continue;
        }
        switch (c) {
        case '\\':
            t.i++;
            escape_outside(&t);
            break;
        case '[':
            t.i++;
            char_class(&t);
            break;
        case '{':
            brace(&t);
            break;
        case '(':
            t.i++;
            if (at(&t, 0, '?')) {
                t.i++;
                t.only_flags = flags_before;
                t.was_global_flags = false;
                extension(&t);
                t.only_flags = flags_before && t.was_global_flags;
            } else if (at(&t, 0, '*')) {
                fail(&t, "nothing to repeat");
            } else {
                emits(&t, "(");
                t.groups++;
                push_group(&t, t.groups);
            }
            break;
        case ')':
            if (t.depth == 0) {
                fail(&t, "unbalanced parenthesis");
                break;
            }
            t.depth--;
            emits(&t, ")");
            t.i++;
            break;
        default:
            emit(&t, &c, 1);
            t.i++;
        }
    }
    if (!t.failed && t.depth > 0)
        fail(&t, "missing ), unterminated subpattern");
    if (t.failed)
        return t.explained ? KC_ERR_INVALID
                           : kc_err_set(err, KC_ERR_NOMEM, "out of memory translating a regex");
    return KC_OK;
}

/* ---- cache of compiled patterns ------------------------------------------- */

#define CACHE_SLOTS 64

typedef struct slot {
    uint8_t *pattern; /* NULL: empty slot */
    size_t plen;
    pcre2_code *code; /* NULL: the pattern does not compile */
    char error[160];
    uint64_t used;
} slot;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static slot cache[CACHE_SLOTS];
static uint64_t cache_tick;
static pcre2_match_context *match_ctx;
static pcre2_compile_context *compile_ctx;
static pcre2_match_data *match_data;

static void slot_clear(slot *s)
{
    free(s->pattern);
    pcre2_code_free(s->code);
    memset(s, 0, sizeof *s);
}

void kc_regex_cache_clear(void)
{
    pthread_mutex_lock(&cache_lock);
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        slot_clear(&cache[i]);
    pcre2_match_context_free(match_ctx);
    pcre2_compile_context_free(compile_ctx);
    pcre2_match_data_free(match_data);
    match_ctx = NULL;
    compile_ctx = NULL;
    match_data = NULL;
    pthread_mutex_unlock(&cache_lock);
}

static bool contexts_ready(void)
{
    if (!compile_ctx) {
        compile_ctx = pcre2_compile_context_create(NULL);
        if (!compile_ctx)
            return false;
        pcre2_set_newline(compile_ctx, PCRE2_NEWLINE_LF);
        pcre2_set_parens_nest_limit(compile_ctx, MAX_NEST);
    }
    if (!match_ctx) {
        match_ctx = pcre2_match_context_create(NULL);
        if (!match_ctx)
            return false;
        pcre2_set_match_limit(match_ctx, KC_REGEX_MATCH_LIMIT);
        pcre2_set_depth_limit(match_ctx, KC_REGEX_DEPTH_LIMIT);
        pcre2_set_heap_limit(match_ctx, KC_REGEX_HEAP_LIMIT);
    }
    if (!match_data)
        match_data = pcre2_match_data_create(1, NULL);
    return match_data != NULL;
}

/* A printable copy of a pattern for log lines. */
static void printable(const uint8_t *p, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 5 < cap; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\'')
            out[k++] = (char)p[i];
        else
            k += (size_t)snprintf(out + k, cap - k, "\\x%02x", p[i]);
    }
    if (k >= cap)
        k = cap - 1;
    out[k] = '\0';
}

/* Finds or compiles a pattern; called with cache_lock held. */
static slot *lookup(const uint8_t *pattern, size_t plen)
{
    slot *victim = &cache[0];
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        slot *s = &cache[i];
        if (s->pattern && s->plen == plen && memcmp(s->pattern, pattern, plen) == 0) {
            s->used = ++cache_tick;
            return s;
        }
        if (!s->pattern || (victim->pattern && s->used < victim->used))
            victim = s;
    }
    uint8_t *copy = malloc(plen ? plen : 1);
    if (!copy)
        return NULL;
    memcpy(copy, pattern, plen);
    slot_clear(victim);
    victim->pattern = copy;
    victim->plen = plen;
    victim->used = ++cache_tick;

    kc_buf pcre = KC_BUF_INIT;
    kc_err terr;
    kc_err_clear(&terr);
    if (kc_regex_translate(pattern, plen, &pcre, &terr) != KC_OK) {
        snprintf(victim->error, sizeof victim->error, "%.150s", terr.msg);
    } else {
        int code;
        PCRE2_SIZE off;
        victim->code = pcre2_compile(pcre.data ? pcre.data : (const uint8_t *)"", pcre.len,
                                     PCRE2_NEVER_UTF | PCRE2_NEVER_UCP | PCRE2_NEVER_BACKSLASH_C,
                                     &code, &off, compile_ctx);
        if (!victim->code) {
            char msg[120];
            pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof msg);
            snprintf(victim->error, sizeof victim->error, "%s", msg);
        }
    }
    kc_buf_free(&pcre);
    if (!victim->code) {
        char shown[120];
        printable(pattern, plen, shown, sizeof shown);
        kc_log(KC_LOG_WARNING, LOGGER, "Poison regex '%s' does not compile (%s); it matches nothing.",
               shown, victim->error);
    }
    return victim;
}

kc_regex_result kc_regex_match_ex(const uint8_t *pattern, size_t plen,
                                  const uint8_t *subject, size_t slen, kc_err *err)
{
    if (plen > KC_REGEX_MAX_LEN) {
        kc_err_set(err, KC_ERR_INVALID, "regex of %zu bytes is longer than the limit of %d",
                   plen, KC_REGEX_MAX_LEN);
        return KC_REGEX_BAD_PATTERN;
    }
    if (slen > KC_REGEX_MAX_LEN) {
        kc_err_set(err, KC_ERR_DENIED, "value of %zu bytes is longer than the regex limit of %d",
                   slen, KC_REGEX_MAX_LEN);
        return KC_REGEX_LIMIT;
    }
    /* Matching happens under the lock: the limits bound its duration, and
     * a cached pattern cannot be evicted while in use. */
    pthread_mutex_lock(&cache_lock);
    slot *s = contexts_ready() ? lookup(pattern, plen) : NULL;
    int rc;
    if (!s) {
        rc = PCRE2_ERROR_NOMEMORY;
        kc_err_set(err, KC_ERR_NOMEM, "out of memory compiling a regex");
    } else if (!s->code) {
        kc_err_set(err, KC_ERR_INVALID, "regex does not compile: %s", s->error);
        pthread_mutex_unlock(&cache_lock);
        return KC_REGEX_BAD_PATTERN;
    } else {
        rc = pcre2_match(s->code, slen ? subject : (const uint8_t *)"", slen, 0,
                         PCRE2_ANCHORED, match_data, match_ctx);
    }
    pthread_mutex_unlock(&cache_lock);
    if (rc >= 0)
        return KC_REGEX_MATCH;
    if (rc == PCRE2_ERROR_NOMATCH)
        return KC_REGEX_NOMATCH;
    if (rc == PCRE2_ERROR_NOMEMORY)
        return KC_REGEX_LIMIT;
    char msg[120], shown[120];
    pcre2_get_error_message(rc, (PCRE2_UCHAR *)msg, sizeof msg);
    printable(pattern, plen, shown, sizeof shown);
    kc_log(KC_LOG_INFO, LOGGER, "Poison regex '%s' gave up (%s); treated as no match.", shown, msg);
    kc_err_set(err, KC_ERR_DENIED, "regex gave up: %s", msg);
    return KC_REGEX_LIMIT;
}

bool kc_regex_match(const uint8_t *pattern, size_t plen, const uint8_t *subject, size_t slen)
{
    return kc_regex_match_ex(pattern, plen, subject, slen, NULL) == KC_REGEX_MATCH;
}
