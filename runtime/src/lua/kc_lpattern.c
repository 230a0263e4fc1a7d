#include "kc_lpattern.h"

#include <lauxlib.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#define MAX_CAPTURES 32
#define MAX_DEPTH 200            /* nested pattern items (LuaJIT's limit) */
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)
#define ESC '%'

typedef struct matcher {
    lua_State *L;
    const kc_lpattern_budget *budget;
    const char *src_init;
    const char *src_end;
    uint64_t pending;            /* steps not charged yet */
    int depth;
    int level;                   /* captures open or closed so far */
    struct {
        const char *init;
        ptrdiff_t len;
    } capture[MAX_CAPTURES];
} matcher;

static void flush(matcher *m)
{
    uint64_t n = m->pending;
    m->pending = 0;
    if (n)
        m->budget->charge(m->L, m->budget->ctx, n);
}

static inline void steps(matcher *m, uint64_t n)
{
    m->pending += n;
    if (m->pending >= KC_LPATTERN_CHUNK)
        flush(m);
}

static void matcher_init(matcher *m, lua_State *L, const char *s, size_t len)
{
    m->L = L;
    m->budget = lua_touserdata(L, lua_upvalueindex(1));
    m->src_init = s;
    m->src_end = s + len;
    m->pending = 0;
    m->depth = m->level = 0;
}

static inline int uc(char c)
{
    return (unsigned char)c;
}

/* ---- single characters ------------------------------------------------------ */

/* LuaJIT's classes: ASCII only, whatever the locale; a letter without a
 * class (and any other character) stands for itself. */
static bool in_class(int c, int cl)
{
    bool lower = c >= 'a' && c <= 'z', upper = c >= 'A' && c <= 'Z';
    bool digit = c >= '0' && c <= '9';
    bool alnum = lower || upper || digit;
    bool r;
    switch (cl >= 'A' && cl <= 'Z' ? cl + 32 : cl) {
    case 'a': r = lower || upper; break;
    case 'c': r = c < 32 || c == 127; break;
    case 'd': r = digit; break;
    case 'g': r = c > 32 && c < 127; break;
    case 'l': r = lower; break;
    case 'p': r = c > 32 && c < 127 && !alnum; break;
    case 's': r = c == ' ' || (c >= '\t' && c <= '\r'); break;
    case 'u': r = upper; break;
    case 'w': r = alnum; break;
    case 'x': r = digit || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); break;
    case 'z': r = c == 0; break;   /* Lua 5.1's, which this LuaJIT keeps */
    default: return cl == c;
    }
    return cl >= 'A' && cl <= 'Z' ? !r : r;
}

/* After the item at p: ']' + 1 of a set, the class letter + 1, or p + 1. */
static const char *class_end(matcher *m, const char *p)
{
    switch (*p++) {
    case ESC:
        if (*p == '\0')
            luaL_error(m->L, "malformed pattern (ends with '%%')");
        return p + 1;
    case '[':
        if (*p == '^')
            p++;
        do {   /* the first character is a member even if it is ']' */
            if (*p == '\0')
                luaL_error(m->L, "malformed pattern (missing ']')");
            if (*(p++) == ESC && *p != '\0')
                p++;
        } while (*p != ']');
        return p + 1;
    default:
        return p;
    }
}

/* p at '[', ec at its ']'. Long sets cost more than one step. */
static bool in_set(matcher *m, int c, const char *p, const char *ec)
{
    bool sig = true;
    steps(m, (uint64_t)(ec - p) / 32);
    if (*(p + 1) == '^') {
        sig = false;
        p++;
    }
    while (++p < ec) {
        if (*p == ESC) {
            p++;
            if (in_class(c, uc(*p)))
                return sig;
        } else if (*(p + 1) == '-' && p + 2 < ec) {
            p += 2;
            if (uc(*(p - 2)) <= c && c <= uc(*p))
                return sig;
        } else if (uc(*p) == c) {
            return sig;
        }
    }
    return !sig;
}

/* Does the item p..ep match the character at s (s < src_end)? */
static bool single_match(matcher *m, const char *s, const char *p, const char *ep)
{
    int c = uc(*s);
    steps(m, 1);
    switch (*p) {
    case '.': return true;
    case ESC: return in_class(c, uc(*(p + 1)));
    case '[': return in_set(m, c, p, ep - 1);
    default: return uc(*p) == c;
    }
}

/* ---- the matcher ----------------------------------------------------------- */

static const char *do_match(matcher *m, const char *s, const char *p);

static const char *match_balance(matcher *m, const char *s, const char *p)
{
    if (*p == '\0' || *(p + 1) == '\0')
        luaL_error(m->L, "unbalanced pattern");
    if (s >= m->src_end || *s != *p)
        return NULL;
    char open = *p, close = *(p + 1);
    int depth = 1;
    while (++s < m->src_end) {
        steps(m, 1);
        if (*s == close) {
            if (--depth == 0)
                return s + 1;
        } else if (*s == open) {
            depth++;
        }
    }
    return NULL;
}

static const char *max_expand(matcher *m, const char *s, const char *p, const char *ep)
{
    ptrdiff_t i = 0;
    while (s + i < m->src_end && single_match(m, s + i, p, ep))
        i++;
    for (; i >= 0; i--) {   /* try the rest with the longest run first */
        const char *r = do_match(m, s + i, ep + 1);
        if (r)
            return r;
    }
    return NULL;
}

static const char *min_expand(matcher *m, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *r = do_match(m, s, ep + 1);
        if (r)
            return r;
        if (s < m->src_end && single_match(m, s, p, ep))
            s++;
        else
            return NULL;
    }
}

static const char *start_capture(matcher *m, const char *s, const char *p, ptrdiff_t what)
{
    if (m->level >= MAX_CAPTURES)
        luaL_error(m->L, "too many captures");
    m->capture[m->level].init = s;
    m->capture[m->level].len = what;
    m->level++;
    const char *r = do_match(m, s, p);
    if (!r)
        m->level--;
    return r;
}

static const char *end_capture(matcher *m, const char *s, const char *p)
{
    int l = m->level - 1;
    while (l >= 0 && m->capture[l].len != CAP_UNFINISHED)
        l--;
    if (l < 0)
        luaL_error(m->L, "invalid pattern capture");
    m->capture[l].len = s - m->capture[l].init;
    const char *r = do_match(m, s, p);
    if (!r)
        m->capture[l].len = CAP_UNFINISHED;
    return r;
}

static int capture_index(matcher *m, int c)
{
    int l = c - '1';
    if (l < 0 || l >= m->level || m->capture[l].len == CAP_UNFINISHED)
        luaL_error(m->L, "invalid capture index");
    return l;
}

static const char *match_capture(matcher *m, const char *s, int c)
{
    int l = capture_index(m, c);
    size_t len = (size_t)m->capture[l].len;
    steps(m, len / 32);   /* the comparison below */
    if ((size_t)(m->src_end - s) >= len && memcmp(m->capture[l].init, s, len) == 0)
        return s + len;
    return NULL;
}

/* The end of the match of pattern p at s, or NULL. */
static const char *do_match(matcher *m, const char *s, const char *p)
{
    if (++m->depth > MAX_DEPTH)
        luaL_error(m->L, "pattern too complex");
    for (;;) {
        steps(m, 1);
        switch (*p) {
        case '(':
            s = *(p + 1) == ')' ? start_capture(m, s, p + 2, CAP_POSITION)
                                : start_capture(m, s, p + 1, CAP_UNFINISHED);
            goto done;
        case ')':
            s = end_capture(m, s, p + 1);
            goto done;
        case '\0':
            goto done;
        case '$':
            if (*(p + 1) == '\0') {
                s = s == m->src_end ? s : NULL;
                goto done;
            }
            break;
        case ESC:
            if (*(p + 1) == 'b') {
                if (!(s = match_balance(m, s, p + 2)))
                    goto done;
                p += 4;
                continue;
            }
            if (*(p + 1) == 'f') {
                p += 2;
                if (*p != '[')
                    luaL_error(m->L, "missing '[' after '%%f' in pattern");
                const char *ep = class_end(m, p);
                int prev = s == m->src_init ? 0 : uc(*(s - 1));
                int cur = s < m->src_end ? uc(*s) : 0;
                if (in_set(m, prev, p, ep - 1) || !in_set(m, cur, p, ep - 1)) {
                    s = NULL;
                    goto done;
                }
                p = ep;
                continue;
            }
            if (*(p + 1) >= '0' && *(p + 1) <= '9') {
                if (!(s = match_capture(m, s, uc(*(p + 1)))))
                    goto done;
                p += 2;
                continue;
            }
            break;
        default:
            break;
        }
        /* a single-character item, perhaps with a quantifier */
        const char *ep = class_end(m, p);
        bool matched = s < m->src_end && single_match(m, s, p, ep);
        switch (*ep) {
        case '?': {
            const char *r;
            if (matched && (r = do_match(m, s + 1, ep + 1))) {
                s = r;
                goto done;
            }
            p = ep + 1;
            continue;
        }
        case '*':
            s = max_expand(m, s, p, ep);
            goto done;
        case '+':
            s = matched ? max_expand(m, s + 1, p, ep) : NULL;
            goto done;
        case '-':
            s = min_expand(m, s, p, ep);
            goto done;
        default:
            if (!matched) {
                s = NULL;
                goto done;
            }
            s++;
            p = ep;
            continue;
        }
    }
done:
    m->depth--;
    return s;
}

/* ---- results ----------------------------------------------------------------- */

static void push_capture(matcher *m, int i, const char *s, const char *e)
{
    if (i >= m->level) {
        if (i != 0)
            luaL_error(m->L, "invalid capture index");
        lua_pushlstring(m->L, s, (size_t)(e - s));   /* the whole match */
        return;
    }
    ptrdiff_t l = m->capture[i].len;
    if (l == CAP_UNFINISHED)
        luaL_error(m->L, "unfinished capture");
    if (l == CAP_POSITION)
        lua_pushinteger(m->L, m->capture[i].init - m->src_init + 1);
    else
        lua_pushlstring(m->L, m->capture[i].init, (size_t)l);
}

/* s == NULL: only the explicit captures (find). */
static int push_captures(matcher *m, const char *s, const char *e)
{
    int n = m->level == 0 && s ? 1 : m->level;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_capture(m, i, s, e);
    return n;
}

/* ---- the library functions ------------------------------------------------------ */

static bool has_specials(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] && strchr("^$*+?.([%-", p[i]))
            return true;
    return false;
}

static int find_aux(lua_State *L, bool find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    lua_Integer start = luaL_optinteger(L, 3, 1);
    if (start < 0)
        start += (lua_Integer)ls;
    else
        start--;
    size_t st = start < 0 ? 0 : (size_t)start > ls ? ls : (size_t)start;
    matcher m;
    matcher_init(&m, L, s, ls);
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        steps(&m, ls - st + lp);   /* memmem is linear */
        flush(&m);
        const char *q = lp <= ls - st ? memmem(s + st, ls - st, p, lp) : NULL;
        if (!q) {
            lua_pushnil(L);
            return 1;
        }
        lua_pushinteger(L, q - s + 1);
        lua_pushinteger(L, q - s + (ptrdiff_t)lp);
        return 2;
    }
    bool anchor = *p == '^';
    if (anchor)
        p++;
    const char *src = s + st;
    do {
        m.level = m.depth = 0;
        const char *e = do_match(&m, src, p);
        if (e) {
            flush(&m);
            if (!find)
                return push_captures(&m, src, e);
            lua_pushinteger(L, src - s + 1);
            lua_pushinteger(L, e - s);
            return push_captures(&m, NULL, NULL) + 2;
        }
    } while (src++ < m.src_end && !anchor);
    flush(&m);
    lua_pushnil(L);
    return 1;
}

static int l_find(lua_State *L)
{
    return find_aux(L, true);
}

static int l_match(lua_State *L)
{
    return find_aux(L, false);
}

/* upvalues: budget, subject, pattern, position */
static int gmatch_next(lua_State *L)
{
    size_t ls;
    const char *s = lua_tolstring(L, lua_upvalueindex(2), &ls);
    const char *p = lua_tostring(L, lua_upvalueindex(3));
    size_t pos = (size_t)lua_tointeger(L, lua_upvalueindex(4));
    matcher m;
    matcher_init(&m, L, s, ls);
    for (const char *src = s + (pos <= ls ? pos : ls); pos <= ls && src <= m.src_end; src++) {
        m.level = m.depth = 0;
        const char *e = do_match(&m, src, p);
        if (e) {
            /* an empty match moves on by one, so the loop ends */
            lua_pushinteger(L, (e - s) + (e == src));
            lua_replace(L, lua_upvalueindex(4));
            flush(&m);
            return push_captures(&m, src, e);
        }
    }
    lua_pushinteger(L, (lua_Integer)ls + 1);
    lua_replace(L, lua_upvalueindex(4));
    flush(&m);
    return 0;
}

static int l_gmatch(lua_State *L)
{
    luaL_checkstring(L, 1);
    luaL_checkstring(L, 2);
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, gmatch_next, 4);
    return 1;
}

static void add_replacement(matcher *m, luaL_Buffer *b, const char *s, const char *e)
{
    size_t l;
    const char *r = lua_tolstring(m->L, 3, &l);
    for (size_t i = 0; i < l; i++) {
        if (r[i] != ESC) {
            luaL_addchar(b, r[i]);
            continue;
        }
        i++;   /* a final '%' reads the string's terminating NUL, as in LuaJIT */
        if (r[i] < '0' || r[i] > '9') {
            luaL_addchar(b, r[i]);
        } else if (r[i] == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
        } else {
            push_capture(m, r[i] - '1', s, e);
            luaL_addvalue(b);
        }
    }
}

static void add_value(matcher *m, luaL_Buffer *b, const char *s, const char *e, int type)
{
    lua_State *L = m->L;
    if (type == LUA_TNUMBER || type == LUA_TSTRING) {
        add_replacement(m, b, s, e);
        return;
    }
    if (type == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = push_captures(m, s, e);
        lua_call(L, n, 1);
    } else {
        push_capture(m, 0, s, e);
        lua_gettable(L, 3);
    }
    if (!lua_toboolean(L, -1)) {   /* nil or false: keep the original text */
        lua_pop(L, 1);
        lua_pushlstring(L, s, (size_t)(e - s));
    } else if (!lua_isstring(L, -1)) {
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    }
    luaL_addvalue(b);
}

static int l_gsub(lua_State *L)
{
    size_t ls;
    const char *src = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checkstring(L, 2);
    int type = lua_type(L, 3);
    lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argcheck(L, type == LUA_TNUMBER || type == LUA_TSTRING || type == LUA_TFUNCTION ||
                  type == LUA_TTABLE, 3, "string/function/table expected");
    bool anchor = *p == '^';
    if (anchor)
        p++;
    matcher m;
    matcher_init(&m, L, src, ls);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_Integer n = 0;
    while (n < max) {
        m.level = m.depth = 0;
        const char *e = do_match(&m, src, p);
        if (e) {
            n++;
            add_value(&m, &b, src, e, type);
        }
        if (e && e > src)
            src = e;
        else if (src < m.src_end)
            luaL_addchar(&b, *src++);
        else
            break;
        if (anchor)
            break;
    }
    luaL_addlstring(&b, src, (size_t)(m.src_end - src));
    flush(&m);
    luaL_pushresult(&b);
    lua_pushinteger(L, n);
    return 2;
}

void kc_lpattern_install(lua_State *L, int t, const kc_lpattern_budget *budget)
{
    static const luaL_Reg fns[] = {{"find", l_find}, {"match", l_match},
                                   {"gmatch", l_gmatch}, {"gsub", l_gsub}, {NULL, NULL}};
    if (t < 0)
        t = lua_gettop(L) + t + 1;
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushlightuserdata(L, (void *)budget);
        lua_pushcclosure(L, f->func, 1);
        lua_setfield(L, t, f->name);
    }
}
