/* crypto.pack, crypto.unpack, crypto.bin and crypto.null: msgpack for
 * scripts, strict and bounded (lua/kafkacrypto/crypto.lua documents them). */
#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kc_lua.h"
#include "kc_lua_crypto_args.h"
#include "kc_mp.h"

static const char REG_NULL[] = "kafkacrypto.crypto.null";

#define PACK_DEPTH_MAX 32
#define PACK_MAX (16u << 20)
#define UNPACK_DEFAULT_MAX (1u << 20)
#define EXACT_INT_MAX 9007199254740992.0   /* 2^53 */

static bool is_null(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TLIGHTUSERDATA)
        return false;
    lua_getfield(L, LUA_REGISTRYINDEX, REG_NULL);
    bool same = lua_rawequal(L, idx, -1);
    lua_pop(L, 1);
    return same;
}

/* Packs the value at idx; on failure leaves a message on the stack and
 * returns false. `path` names the element for the message. */
static bool pack_value(lua_State *L, int idx, msgpack_packer *pk, int depth, const char *path)
{
    size_t n;
    const char *s;
    /* Checked as the output grows, not at the end: a table referenced many
     * times at each level (t = {u, u, ...}, u = {v, v, ...}) would
     * otherwise pack exponentially many bytes first. */
    if (((const kc_mp_out *)pk->data)->buf.len > PACK_MAX) {
        lua_pushfstring(L, "value: larger than %d bytes", (int)PACK_MAX);
        return false;
    }
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        msgpack_pack_nil(pk);
        return true;
    case LUA_TBOOLEAN:
        lua_toboolean(L, idx) ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        return true;
    case LUA_TNUMBER: {
        lua_Number v = lua_tonumber(L, idx);
        if (v == floor(v) && v >= -EXACT_INT_MAX && v <= EXACT_INT_MAX)
            v < 0 ? msgpack_pack_int64(pk, (int64_t)v) : msgpack_pack_uint64(pk, (uint64_t)v);
        else
            msgpack_pack_double(pk, v);
        return true;
    }
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &n);
        msgpack_pack_str_with_body(pk, s, n);
        return true;
    case LUA_TLIGHTUSERDATA:
        if (is_null(L, idx)) {
            msgpack_pack_nil(pk);
            return true;
        }
        break;
    case LUA_TTABLE:
        if ((s = kc_lua_crypto_test_bytes(L, idx, &n))) {
            kc_mp_pack_bin(pk, s, n);
            return true;
        }
        if (depth >= PACK_DEPTH_MAX) {
            lua_pushfstring(L, "%s: nested deeper than %d levels (a cycle?)", path,
                            PACK_DEPTH_MAX);
            return false;
        }
        if (!lua_checkstack(L, 4)) {
            lua_pushfstring(L, "%s: out of Lua stack", path);
            return false;
        }
        idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
        size_t len = lua_objlen(L, idx), total = 0;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            total++;
            lua_pop(L, 1);
        }
        char sub[96];
        if (total == len) { /* a sequence (or empty): an array */
            msgpack_pack_array(pk, len);
            for (size_t i = 1; i <= len; i++) {
                lua_rawgeti(L, idx, (int)i);
                snprintf(sub, sizeof sub, "%.60s[%d]", path, (int)i);
                bool ok = pack_value(L, -1, pk, depth + 1, sub);
                if (!ok) {
                    lua_remove(L, -2);
                    return false;
                }
                lua_pop(L, 1);
            }
            return true;
        }
        msgpack_pack_map(pk, total);
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            int t = lua_type(L, -2);
            if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TBOOLEAN) {
                const char *tn = kc_lua_crypto_type_of(L, -2);
                lua_pop(L, 2);
                lua_pushfstring(L, "%s: a map key of type %s", path, tn);
                return false;
            }
            snprintf(sub, sizeof sub, "%.60s.%.30s", path,
                     t == LUA_TSTRING ? lua_tostring(L, -2) : "?");
            if (!pack_value(L, -2, pk, depth + 1, sub) || !pack_value(L, -1, pk, depth + 1, sub)) {
                lua_replace(L, -3);
                lua_pop(L, 1);
                return false;
            }
            lua_pop(L, 1);
        }
        return true;
    default:
        break;
    }
    lua_pushfstring(L, "%s: cannot pack %s", path, kc_lua_crypto_type_of(L, idx));
    return false;
}

/* crypto.pack(value) -> msgpack bytes. Strings are str, crypto.bin(s) (or
 * kafkacrypto.bytes(s)) is bin, crypto.null is nil. */
static int l_pack(lua_State *L)
{
    lua_settop(L, 1);
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    bool ok = pack_value(L, 1, &mo.pk, 0, "value");
    if (ok && (kc_mp_out_status(&mo) != KC_OK || mo.buf.len > PACK_MAX)) {
        ok = false;
        lua_pushfstring(L, "value: larger than %d bytes or out of memory", (int)PACK_MAX);
    }
    if (!ok) {
        kc_mp_out_free(&mo);
        return kc_lua_errorf(L, "crypto.pack: argument 1 (%s)", lua_tostring(L, -1));
    }
    lua_pushlstring(L, (const char *)mo.buf.data, mo.buf.len);
    kc_mp_out_free(&mo);
    return 1;
}

static bool push_object(lua_State *L, const msgpack_object *o, const char **why)
{
    if (!lua_checkstack(L, 3)) {
        *why = "nested too deeply";
        return false;
    }
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        lua_getfield(L, LUA_REGISTRYINDEX, REG_NULL);
        return true;
    case MSGPACK_OBJECT_BOOLEAN:
        lua_pushboolean(L, o->via.boolean);
        return true;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if ((double)o->via.u64 > EXACT_INT_MAX) {
            *why = "an integer beyond 2^53 (not exact as a Lua number)";
            return false;
        }
        lua_pushnumber(L, (lua_Number)o->via.u64);
        return true;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        if ((double)o->via.i64 < -EXACT_INT_MAX) {
            *why = "an integer beyond -2^53 (not exact as a Lua number)";
            return false;
        }
        lua_pushnumber(L, (lua_Number)o->via.i64);
        return true;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        lua_pushnumber(L, o->via.f64);
        return true;
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN: { /* raw=True: both are bytes */
        const uint8_t *p;
        size_t n;
        kc_mp_bytes(o, &p, &n);
        lua_pushlstring(L, (const char *)p, n);
        return true;
    }
    case MSGPACK_OBJECT_ARRAY:
        lua_createtable(L, (int)o->via.array.size, 0);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (!push_object(L, &o->via.array.ptr[i], why))
                return false;
            lua_rawseti(L, -2, (int)i + 1);
        }
        return true;
    case MSGPACK_OBJECT_MAP:
        lua_createtable(L, 0, (int)o->via.map.size);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            bool nan = (k->type == MSGPACK_OBJECT_FLOAT32 || k->type == MSGPACK_OBJECT_FLOAT64) &&
                       isnan(k->via.f64);
            if (nan || k->type == MSGPACK_OBJECT_NIL || k->type == MSGPACK_OBJECT_ARRAY ||
                k->type == MSGPACK_OBJECT_MAP) { /* a Lua table cannot hold them as keys */
                *why = "a map key that is nil, NaN, an array or a map";
                return false;
            }
            if (!push_object(L, k, why) || !push_object(L, &o->via.map.ptr[i].val, why))
                return false;
            lua_rawset(L, -3);
        }
        return true;
    default:
        *why = "an ext value (not used by kafkacrypto)";
        return false;
    }
}

/* crypto.unpack(bytes[, max_bytes = 1 MiB]) -> value, or nil and the reason.
 * Exactly one object; str and bin both become strings (upstream's raw=True). */
static int l_unpack(lua_State *L)
{
    size_t n;
    const uint8_t *p = kc_lua_crypto_check_bytes(L, 1, "unpack", "data", &n);
    lua_Number max = UNPACK_DEFAULT_MAX;
    if (!lua_isnoneornil(L, 2)) {
        if (lua_type(L, 2) != LUA_TNUMBER || lua_tonumber(L, 2) < 1)
            return kc_lua_crypto_arg_error(L, "unpack", 2, "max_bytes", "a positive number");
        max = lua_tonumber(L, 2);
    }
    lua_settop(L, 2);
    if ((lua_Number)n > max) {
        lua_pushnil(L);
        lua_pushfstring(L, "msgpack: %d bytes, more than the limit of %d", (int)n, (int)max);
        return 2;
    }
    kc_mp_doc doc = {0};
    kc_err err;
    if (kc_mp_decode(&doc, p, n, "msgpack", &err) != KC_OK) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    const char *why = NULL;
    bool ok = push_object(L, kc_mp_root(&doc), &why);
    kc_mp_doc_free(&doc);
    if (!ok) {
        lua_settop(L, 2);
        lua_pushnil(L);
        lua_pushfstring(L, "msgpack: %s", why);
        return 2;
    }
    return 1;
}

/* crypto.bin(s): s marked as bytes for pack (same as kafkacrypto.bytes) */
static int l_bin(lua_State *L)
{
    size_t n;
    const char *p = (const char *)kc_lua_crypto_check_bytes(L, 1, "bin", "data", &n);
    kc_lua_push_bytes(L, p, n);
    return 1;
}

void kc_lua_msgpack_register(lua_State *L)
{
    static const luaL_Reg functions[] = {
        {"pack", l_pack}, {"unpack", l_unpack}, {"bin", l_bin}, {NULL, NULL}};
    kc_lua_bytes_init(L);   /* sandboxes have no core module to make it */
    luaL_register(L, NULL, functions);
    lua_getfield(L, LUA_REGISTRYINDEX, REG_NULL);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushlightuserdata(L, (void *)REG_NULL);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, REG_NULL);
    }
    lua_setfield(L, -2, "null");
}
