/* Lua binding of chains (kc_chain.h): process, describe, fingerprints and
 * the byte-level helpers scripts need to look at chains. Nothing here sees
 * a secret key. */
#include "kc_lua_chain.h"

#include <lauxlib.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "kc_clock.h"
#include "kc_hex.h"
#include "kc_lua.h"

static void push_hex(lua_State *L, const uint8_t *p, size_t n)
{
    char *h = malloc(2 * n + 1);
    if (!h)
        luaL_error(L, "out of memory");
    kc_hex(p, n, h);
    lua_pushlstring(L, h, 2 * n);
    free(h);
}

/* hex of bytes(key), and of its SHA-256 when fingerprint is set */
static void push_key_hex(lua_State *L, const kc_key *k, bool fingerprint)
{
    kc_buf b = KC_BUF_INIT;
    if (kc_key_bytes(k, &b) != KC_OK) {
        kc_buf_free(&b);
        luaL_error(L, "out of memory");
    }
    if (fingerprint) {
        uint8_t d[crypto_hash_sha256_BYTES];
        crypto_hash_sha256(d, b.data, b.len);
        push_hex(L, d, sizeof d);
    } else
        push_hex(L, b.data, b.len);
    kc_buf_free(&b);
}

static void set_key(lua_State *L, const char *name, const kc_key *k, bool fingerprint)
{
    push_key_hex(L, k, fingerprint);
    lua_setfield(L, -2, name);
}

static void push_key_list(lua_State *L, const kc_pks *p)
{
    lua_createtable(L, (int)p->n, 0);
    for (size_t i = 0; i < p->n; i++) {
        push_key_hex(L, &p->keys[i], false);
        lua_rawseti(L, -2, (int)i + 1);
    }
}

/* topics/usages/pathlen of the accumulated poison, into the table on top */
static void set_poison(lua_State *L, const kc_buf *poison)
{
    kc_mp_doc doc;
    if (kc_mp_decode(&doc, poison->data, poison->len, "poison", NULL) != KC_OK)
        return; /* kc_chain_process re-packs it: cannot happen */
    const msgpack_object *o = kc_mp_root(&doc);
    for (uint32_t i = 0; kc_mp_is_array(o) && i < o->via.array.size; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        if (!kc_mp_is_array(e) || e->via.array.size != 2)
            continue;
        const msgpack_object *name = &e->via.array.ptr[0], *v = &e->via.array.ptr[1];
        int64_t pathlen;
        if (kc_mp_text_eq(name, "pathlen") && kc_mp_int(v, &pathlen)) {
            lua_pushnumber(L, (lua_Number)pathlen);
            lua_setfield(L, -2, "pathlen");
        } else if ((kc_mp_text_eq(name, "topics") || kc_mp_text_eq(name, "usages")) &&
                   kc_mp_is_array(v)) {
            lua_createtable(L, (int)v->via.array.size, 0);
            for (uint32_t j = 0; j < v->via.array.size; j++) {
                const uint8_t *p;
                size_t n;
                if (kc_mp_bytes(&v->via.array.ptr[j], &p, &n)) {
                    lua_pushlstring(L, (const char *)p, n);
                    lua_rawseti(L, -2, (int)j + 1);
                }
            }
            lua_setfield(L, -2, kc_mp_text_eq(name, "topics") ? "topics" : "usages");
        }
    }
    kc_mp_doc_free(&doc);
}

void kc_lua_push_chain_result(lua_State *L, const kc_chain_result *r)
{
    lua_createtable(L, 0, 16);
    if (!r->key.is_list && r->key.n == 1) {
        set_key(L, "key", &r->key.keys[0], false);
        set_key(L, "fingerprint", &r->key.keys[0], true);
        char text[300];
        lua_pushstring(L, kc_key_describe(&r->key.keys[0], text, sizeof text));
        lua_setfield(L, -2, "key_text");
    }
    push_key_list(L, &r->key);
    lua_setfield(L, -2, "keys");
    if (r->spks.n > 0) {
        set_key(L, "rot", &r->spks.keys[0], false);
        set_key(L, "rot_fingerprint", &r->spks.keys[0], true);
    }
    push_key_list(L, &r->spks);
    lua_setfield(L, -2, "signers");
    if (!r->self_signed) {
        lua_pushnumber(L, (lua_Number)r->rot_index + 1);
        lua_setfield(L, -2, "rot_index");
    }
    set_poison(L, &r->poison);
    lua_pushnumber(L, r->max_age);
    lua_setfield(L, -2, "expiry");
    lua_pushboolean(L, r->self_signed);
    lua_setfield(L, -2, "self_signed");
    lua_pushlstring(L, (const char *)r->extra.data, r->extra.len);
    lua_setfield(L, -2, "extra");
    lua_pushnumber(L, (lua_Number)r->n_extra);
    lua_setfield(L, -2, "n_extra");
    lua_pushstring(L, r->printable.data ? (const char *)r->printable.data : "");
    lua_setfield(L, -2, "printable");
}

/* A list of entries from the array at idx (nil: none = upstream's None).
 * The strings stay owned by the table. */
static const kc_bytes *check_list(lua_State *L, int idx, const char *what, kc_chain_list *out)
{
    if (lua_isnil(L, idx))
        return NULL;
    if (!lua_istable(L, idx))
        kc_lua_errorf(L, "chain.process: %s: expected an array of entries (byte strings), got %s",
                      what, luaL_typename(L, idx));
    size_t n = lua_objlen(L, idx);
    kc_bytes *e = lua_newuserdata(L, (n ? n : 1) * sizeof *e); /* freed with the call */
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, idx, (int)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            kc_lua_errorf(L, "chain.process: %s[%d]: expected a byte string, got %s", what,
                          (int)i + 1, luaL_typename(L, -1));
        e[i].p = (const uint8_t *)lua_tolstring(L, -1, &e[i].n);
        lua_pop(L, 1);
    }
    out->entries = e;
    out->n = n;
    return e;
}

static const char *opt_text_field(lua_State *L, int t, const char *name)
{
    lua_getfield(L, t, name);
    if (lua_isnil(L, -1))
        return NULL;
    if (lua_type(L, -1) != LUA_TSTRING)
        kc_lua_errorf(L, "chain.process: %s: expected a string, got %s", name,
                      luaL_typename(L, -1));
    return lua_tostring(L, -1); /* kept on the stack */
}

/* chain_process(chain, {topic=, usage=, allowlist=, denylist=, checktime=})
 *   -> info | nil, message, report */
static int l_process(lua_State *L)
{
    size_t n;
    const uint8_t *chain = (const uint8_t *)luaL_checklstring(L, 1, &n);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    else {
        lua_settop(L, 1);
        lua_newtable(L);
    }
    lua_settop(L, 2);
    const char *topic = opt_text_field(L, 2, "topic");   /* 3 */
    const char *usage = opt_text_field(L, 2, "usage");   /* 4 */
    lua_getfield(L, 2, "allowlist");                      /* 5 */
    lua_getfield(L, 2, "denylist");                       /* 6 */
    lua_getfield(L, 2, "checktime");                      /* 7 */
    double checktime = lua_isnil(L, 7) ? kc_clock_wall() : luaL_checknumber(L, 7);
    kc_chain_list allow = {0}, deny = {0};
    bool has_allow = check_list(L, 5, "allowlist", &allow) != NULL;
    bool has_deny = check_list(L, 6, "denylist", &deny) != NULL;
    kc_chain_result r;
    kc_err err;
    kc_status st = kc_chain_process(chain, n, topic, usage, has_allow ? &allow : NULL,
                                    has_deny ? &deny : NULL, checktime, &r, &err);
    if (st != KC_OK) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        lua_pushlstring(L, (const char *)r.report.data, r.report.len);
        kc_chain_result_free(&r);
        return 3;
    }
    kc_lua_push_chain_result(L, &r);
    kc_chain_result_free(&r);
    return 1;
}

/* chain_describe(chain) -> text | nil, message */
static int l_describe(lua_State *L)
{
    size_t n;
    const uint8_t *chain = (const uint8_t *)luaL_checklstring(L, 1, &n);
    kc_buf out = KC_BUF_INIT;
    kc_status st = kc_chain_describe(chain, n, &out);
    if (st != KC_OK) {
        kc_buf_free(&out);
        lua_pushnil(L);
        lua_pushstring(L, "chain.describe: not a chain (expected msgpack [bin(item), ...])");
        return 2;
    }
    lua_pushlstring(L, (const char *)out.data, out.len);
    kc_buf_free(&out);
    return 1;
}

/* chain_fingerprint(key_bytes) -> hex(SHA-256(key_bytes)); key_bytes is a
 * key's bytes() form (32 raw bytes for Ed25519). */
static int l_fingerprint(lua_State *L)
{
    size_t n;
    const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 1, &n);
    kc_key k;
    kc_err err;
    if (kc_key_from_bytes(&k, KC_SIGN_PK, p, n, &err) != KC_OK) {
        lua_pushnil(L);
        lua_pushfstring(L, "chain.fingerprint: not a signing public key: %s", err.msg);
        return 2;
    }
    push_key_hex(L, &k, true);
    kc_key_clear(&k);
    return 1;
}

/* chain_items(chain) -> { item, ... } (unverified) | nil, message */
static int l_items(lua_State *L)
{
    size_t n;
    const uint8_t *chain = (const uint8_t *)luaL_checklstring(L, 1, &n);
    kc_chain_items items;
    kc_err err;
    if (kc_chain_parse(&items, chain, n, &err) != KC_OK) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_createtable(L, (int)items.n, 0);
    for (size_t i = 0; i < items.n; i++) {
        lua_pushlstring(L, (const char *)items.item[i].p, items.item[i].n);
        lua_rawseti(L, -2, (int)i + 1);
    }
    kc_chain_items_free(&items);
    return 1;
}

/* chain_build({ item, ... }) -> mp([bin(item), ...]) */
static int l_build(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    size_t n = lua_objlen(L, 1);
    if (n > KC_CHAIN_MAX_ITEMS)
        return kc_lua_errorf(L, "chain.build: %d items: at most %d", (int)n, KC_CHAIN_MAX_ITEMS);
    kc_bytes items[KC_CHAIN_MAX_ITEMS];
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 1, (int)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            return kc_lua_errorf(L, "chain.build: item %d: expected a byte string, got %s",
                                 (int)i + 1, luaL_typename(L, -1));
        items[i].p = (const uint8_t *)lua_tolstring(L, -1, &items[i].n);
        lua_pop(L, 1); /* still referenced by the table */
    }
    kc_buf out = KC_BUF_INIT;
    kc_err err;
    if (kc_chain_build(items, n, &out, &err) != KC_OK) {
        kc_buf_free(&out);
        return kc_lua_error(L, &err);
    }
    lua_pushlstring(L, (const char *)out.data, out.len);
    kc_buf_free(&out);
    return 1;
}

void kc_lua_open_chain(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"chain_process", l_process},         {"chain_describe", l_describe},
        {"chain_fingerprint", l_fingerprint}, {"chain_items", l_items},
        {"chain_build", l_build},             {NULL, NULL},
    };
    luaL_register(L, NULL, fns);
}
