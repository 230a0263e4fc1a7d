/* Lua binding of the data path: serializer and deserializer objects over a
 * kc_serde, message objects (spec §4.5), and a standalone serde without key
 * exchange for tests and pre-shared setups. lua/kafkacrypto/init.lua
 * (message objects) and serde.lua document the Lua API.
 *
 * No secret ever becomes a Lua value: objects hold C handles, and keys move
 * between serdes only in C (share_keys_with). */
#include <lauxlib.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "kc_cryptokey.h"
#include "kc_lua.h"
#include "kc_lua_class.h"
#include "kc_message.h"
#include "kc_ratchet.h"
#include "kc_serde.h"

static const char SERIALIZER[] = "kafkacrypto.serializer";
static const char DESERIALIZER[] = "kafkacrypto.deserializer";
static const char MESSAGE[] = "kafkacrypto.message";
static const char STANDALONE[] = "kafkacrypto.core.standalone";

static const char *const KIND_NAMES[] = {"key", "value"};

typedef struct lua_serde {
    kc_serde *s;
    kc_kind kind;
    kc_buf out;   /* serializer output, reused (ciphertext: nothing to wipe) */
    kc_message scratch;  /* deserializer: parses into it, keeps its zone */
} lua_serde;

typedef struct lua_standalone {
    kc_serde *s;
    kc_ratchet *ratchet;   /* NULL: consume only */
} lua_standalone;

/* ---- message objects ------------------------------------------------------ */

static kc_message *test_message(lua_State *L, int idx)
{
    kc_message *m = lua_touserdata(L, idx);
    if (!m || !lua_getmetatable(L, idx))
        return NULL;
    luaL_getmetatable(L, MESSAGE);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same ? m : NULL;
}

static kc_message *check_message(lua_State *L, int idx)
{
    kc_message *m = test_message(L, idx);
    if (!m)
        kc_lua_errorf(L, "expected a message object, got %s", luaL_typename(L, idx));
    return m;
}

static kc_message *new_message(lua_State *L)
{
    kc_message *m = kc_lua_class_push(L, MESSAGE, sizeof *m);
    kc_message_init(m);
    return m;
}

/* kafkacrypto.message(bytes): a cleartext message (upstream's
 * KafkaCryptoMessage(msg)), e.g. to send again. */
static int l_message(lua_State *L)
{
    size_t n;
    const char *p = luaL_checklstring(L, 1, &n);
    kc_err err;
    if (kc_message_set_cleartext(new_message(L), (const uint8_t *)p, n, &err) != KC_OK)
        return kc_lua_error(L, &err);
    return 1;
}

static int l_is_deserializer(lua_State *L)
{
    lua_pushboolean(L, kc_lua_to_deserializer(L, 1, NULL) != NULL);
    return 1;
}

static int l_is_serializer(lua_State *L)
{
    lua_pushboolean(L, luaL_testudata(L, 1, SERIALIZER) != NULL);
    return 1;
}

static int l_is_message(lua_State *L)
{
    lua_pushboolean(L, test_message(L, 1) != NULL);
    return 1;
}

static bool opt_retry(lua_State *L, int idx)
{
    return lua_isnoneornil(L, idx) || lua_toboolean(L, idx);
}

static int l_is_cleartext(lua_State *L)
{
    lua_pushboolean(L, kc_message_is_cleartext(check_message(L, 1), opt_retry(L, 2)));
    return 1;
}

static int l_is_possibly_decryptable(lua_State *L)
{
    lua_pushboolean(L, kc_message_is_possibly_decryptable(check_message(L, 1)));
    return 1;
}

static int l_get_message(lua_State *L)
{
    const uint8_t *p;
    size_t n;
    kc_err err;
    if (kc_message_get(check_message(L, 1), opt_retry(L, 2), &p, &n, &err) != KC_OK)
        return kc_lua_raise(L, "KafkaCryptoMessageError", "%s", err.msg);
    lua_pushlstring(L, (const char *)p, n);
    return 1;
}

/* msg:bytes() and tostring(msg): upstream's bytes(msg). */
static int l_message_bytes(lua_State *L)
{
    const uint8_t *p;
    size_t n;
    kc_message_bytes(check_message(L, 1), &p, &n);
    lua_pushlstring(L, p ? (const char *)p : "", n);
    return 1;
}

static int l_message_gc(lua_State *L)
{
    kc_message_clear(check_message(L, 1));
    return 0;
}

/* ---- serializers and deserializers ------------------------------------------------ */

static const char *check_topic(lua_State *L, int idx)
{
    size_t n;
    const char *t = lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, &n) : NULL;
    if (!t || n == 0 || strlen(t) != n)
        kc_lua_errorf(L, "expected a topic name, got %s", luaL_typename(L, idx));
    return t;
}

void kc_lua_push_serializer(lua_State *L, kc_serde *serde, kc_kind kind, bool deserializer,
                            int owner)
{
    if (owner < 0 && owner > LUA_REGISTRYINDEX)
        owner = lua_gettop(L) + owner + 1;
    lua_serde *ls = kc_lua_class_push(L, deserializer ? DESERIALIZER : SERIALIZER, sizeof *ls);
    kc_message_init(&ls->scratch);
    ls->s = kc_serde_ref(serde);
    ls->kind = kind;
    if (owner) {   /* the environment table keeps the owner reachable */
        lua_createtable(L, 1, 0);
        lua_pushvalue(L, owner);
        lua_rawseti(L, -2, 1);
        lua_setfenv(L, -2);
    }
}

kc_serde *kc_lua_to_deserializer(lua_State *L, int idx, kc_kind *kind)
{
    lua_serde *ls = luaL_testudata(L, idx, DESERIALIZER);
    if (ls && kind)
        *kind = ls->kind;
    return ls ? ls->s : NULL;
}

void kc_lua_push_message_moved(lua_State *L, kc_message *m)
{
    kc_message_move(new_message(L), m);
}

static lua_serde *check_serde(lua_State *L, int idx)
{
    lua_serde *ls = lua_touserdata(L, idx);
    if (ls && lua_getmetatable(L, idx)) {
        luaL_getmetatable(L, SERIALIZER);
        luaL_getmetatable(L, DESERIALIZER);
        int ok = lua_rawequal(L, -1, -3) || lua_rawequal(L, -2, -3);
        lua_pop(L, 3);
        if (ok)
            return ls;
    }
    kc_lua_errorf(L, "expected a kafkacrypto serializer or deserializer");
    return NULL;
}

const uint8_t *kc_lua_serialize_arg(lua_State *L, int ser_idx, const char *topic, int value_idx,
                                    size_t *n)
{
    lua_serde *ls = luaL_checkudata(L, ser_idx, SERIALIZER);
    kc_err err;
    kc_status st;
    kc_message *m;
    if (lua_isnoneornil(L, value_idx)) {
        return NULL;
    } else if (lua_type(L, value_idx) == LUA_TSTRING) {
        size_t vn;
        const char *v = lua_tolstring(L, value_idx, &vn);
        st = kc_serde_serialize(ls->s, ls->kind, topic, (const uint8_t *)v, vn, &ls->out, &err);
    } else if ((m = test_message(L, value_idx))) {
        if (kc_message_is_null(m))
            return NULL;
        st = kc_serde_serialize_message(ls->s, ls->kind, topic, m, &ls->out, &err);
    } else {
        kc_lua_raise(L, "KafkaCryptoSerializeError",
                     "Passed value is not bytes or a KafkaCryptoMessage (a %s to topic %s)",
                     luaL_typename(L, value_idx), topic);
        return NULL;
    }
    if (st != KC_OK)
        kc_lua_raise(L, "KafkaCryptoSerializeError", "%s", err.msg);
    *n = ls->out.len;
    return ls->out.data;
}

/* ser:serialize(topic, value) -> wire bytes or nil (spec §4.2) */
static int l_serialize(lua_State *L)
{
    luaL_checkudata(L, 1, SERIALIZER);
    size_t n;
    const uint8_t *p = kc_lua_serialize_arg(L, 1, check_topic(L, 2), 3, &n);
    if (p)
        lua_pushlstring(L, (const char *)p, n);
    else
        lua_pushnil(L);
    return 1;
}

void kc_lua_push_deserialized(lua_State *L, int deser_idx, const char *topic, const uint8_t *p,
                              size_t n)
{
    lua_serde *ls = luaL_checkudata(L, deser_idx, DESERIALIZER);
    kc_err err;
    if (!p) {
        lua_pushnil(L);
        return;
    }
    /* parsed in the scratch object (no parse zone per message), then
     * moved into a new message object */
    if (kc_serde_deserialize(ls->s, ls->kind, topic, p, n, &ls->scratch, &err) != KC_OK)
        kc_lua_error(L, &err);
    kc_message_move(new_message(L), &ls->scratch);
}

/* deser:deserialize(topic, bytes | message) -> message object or nil (spec
 * §4.3). A message object is deserialized again from its raw bytes, in
 * place, and returned (upstream README's later retry: it follows the wait
 * for its key index, never adds one, kc_waits.h); a cleartext one is
 * returned as it is. */
static int l_deserialize(lua_State *L)
{
    lua_serde *ls = luaL_checkudata(L, 1, DESERIALIZER);
    const char *topic = check_topic(L, 2);
    kc_err err;
    kc_message *m;
    const uint8_t *data;
    size_t n;
    bool again = false;
    if (lua_isnoneornil(L, 3)) {
        lua_pushnil(L);
        return 1;
    } else if (lua_type(L, 3) == LUA_TSTRING) {
        data = (const uint8_t *)lua_tolstring(L, 3, &n);
        kc_lua_push_deserialized(L, 1, topic, data, n);
        return 1;
    } else if ((m = test_message(L, 3))) {
        lua_settop(L, 3);
        if (kc_message_is_null(m) || kc_message_is_cleartext(m, false))
            return 1;
        kc_message_bytes(m, &data, &n);   /* the serde copes with data inside m */
        again = true;
    } else {
        return kc_lua_errorf(L, "deserialize: expected bytes (a string), nil or a message "
                             "object, got %s", luaL_typename(L, 3));
    }
    if ((again ? kc_serde_deserialize_again : kc_serde_deserialize)(ls->s, ls->kind, topic, data,
                                                                    n, m, &err) != KC_OK)
        return kc_lua_error(L, &err);
    return 1;
}

static int l_serde_tostring(lua_State *L)
{
    lua_serde *ls = check_serde(L, 1);
    lua_getmetatable(L, 1);
    luaL_getmetatable(L, SERIALIZER);
    lua_pushfstring(L, "kafkacrypto %s %s", KIND_NAMES[ls->kind],
                    lua_rawequal(L, -1, -2) ? "serializer" : "deserializer");
    return 1;
}

static int l_serde_gc(lua_State *L)
{
    lua_serde *ls = check_serde(L, 1);
    kc_serde_unref(ls->s);
    ls->s = NULL;
    kc_buf_free(&ls->out);
    kc_message_clear(&ls->scratch);
    return 0;
}

/* ---- standalone serde (no key exchange) ------------------------------------------ */

static const char *opt_string_field(lua_State *L, int t, const char *name)
{
    lua_getfield(L, t, name);
    const char *v = NULL;
    if (lua_type(L, -1) == LUA_TSTRING)
        v = lua_tostring(L, -1);
    else if (!lua_isnil(L, -1))
        kc_lua_errorf(L, "standalone: %s: expected a file path", name);
    lua_pop(L, 1);   /* the options table keeps the string alive */
    return v;
}

/* get_id_spk of a .crypto file, for long key indices (§3.3). A file
 * without signing keys (a new one) gets an Ed25519 key. */
static kc_status node_id_of(const char *path, kc_buf *id, kc_err *err)
{
    static const int ed25519[] = {1};
    kc_cryptokey *ck = NULL;
    kc_status st = kc_cryptokey_open(&ck, path, NULL, 0, err);
    if (st == KC_OK && kc_cryptokey_num_spk(ck) == 0) {
        kc_cryptokey_close(ck);
        ck = NULL;
        st = kc_cryptokey_open(&ck, path, ed25519, 1, err);
    }
    if (st == KC_OK)
        st = kc_cryptokey_get_id_spk(ck, id, err);
    kc_cryptokey_close(ck);
    return st;
}

/* core.limit_key_wait(seconds | nil): kc_serde_limit_key_wait for this
 * thread (nil: no bound). Consumer:poll sets and clears it. */
static int l_limit_key_wait(lua_State *L)
{
    kc_serde_limit_key_wait(lua_isnoneornil(L, 1) ? -1 : luaL_checknumber(L, 1) < 0 ? 0
                                                                              : lua_tonumber(L, 1));
    return 0;
}

/* core.count_hold(deserializer, topic, "held"|"released"|"expired"): a
 * consumer's hold reports to the node's per-root counters. */
static int l_count_hold(lua_State *L)
{
    kc_serde *s = kc_lua_to_deserializer(L, 1, NULL);
    const char *topic = luaL_checkstring(L, 2);
    static const char *const what[] = {"held", "released", "expired", NULL};
    static const kc_serde_count counts[] = {KC_SERDE_HELD, KC_SERDE_RELEASED, KC_SERDE_EXPIRED};
    int i = luaL_checkoption(L, 3, NULL, what);
    if (s)
        kc_serde_count_hold(s, topic, counts[i]);
    return 0;
}

/* core.standalone{seed=, crypto=}. Its deserializers never wait for a
 * missing key (spec §4.4): keys only come from share_keys_with, on this
 * thread, so waiting could not help. */
static int l_standalone(lua_State *L)
{
    if (!lua_isnoneornil(L, 1))
        luaL_checktype(L, 1, LUA_TTABLE);
    else {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    const kc_tunables *t = &kc_lua_settings(L)->tunables;
    const char *seed = opt_string_field(L, 1, "seed");
    const char *crypto = opt_string_field(L, 1, "crypto");
    kc_serde_config c;
    kc_serde_config_init(&c);
    c.max_pgen_age = t->crypto_max_pgen_age;
    c.initial_wait_intervals = 0;
    kc_lua_serde_root(L, &c);

    lua_standalone *sa = kc_lua_class_push(L, STANDALONE, sizeof *sa);
    kc_err err;
    kc_buf id = KC_BUF_INIT;
    kc_status st = KC_OK;
    if (crypto && t->mgmt_long_keyindex && (st = node_id_of(crypto, &id, &err)) == KC_OK) {
        c.node_id = id.len ? id.data : (const uint8_t *)""; /* no key: refuses to encrypt */
        c.node_id_len = id.len;
    }
    if (st == KC_OK && seed)
        st = kc_ratchet_open_file(seed, NULL, &sa->ratchet, &err);
    c.ratchet = sa->ratchet;
    if (st == KC_OK)
        st = kc_serde_new(&c, &sa->s, &err);
    kc_buf_free(&id);
    if (st != KC_OK)
        return kc_lua_error(L, &err);   /* __gc closes what was opened */
    return 1;
}

static lua_standalone *check_standalone(lua_State *L, int idx)
{
    lua_standalone *sa = luaL_checkudata(L, idx, STANDALONE);
    if (!sa->s)
        kc_lua_errorf(L, "standalone serde is not initialised");
    return sa;
}

static int push_standalone_serde(lua_State *L, kc_kind kind, bool deser)
{
    kc_lua_push_serializer(L, check_standalone(L, 1)->s, kind, deser, 1);
    return 1;
}
static int l_key_serializer(lua_State *L) { return push_standalone_serde(L, KC_KIND_KEY, false); }
static int l_value_serializer(lua_State *L) { return push_standalone_serde(L, KC_KIND_VALUE, false); }
static int l_key_deserializer(lua_State *L) { return push_standalone_serde(L, KC_KIND_KEY, true); }
static int l_value_deserializer(lua_State *L) { return push_standalone_serde(L, KC_KIND_VALUE, true); }

/* Producer records of one root, copied out under the source's lock so that
 * they can be added to any serde (even the same one) afterwards. */
typedef struct shared_key {
    kc_keyidx ki;
    uint8_t secret[KC_SECRET_BYTES];
} shared_key;

typedef struct key_list {
    shared_key *keys;   /* sodium_malloc'd */
    size_t n, cap;
} key_list;

static void count_key(void *ctx, const kc_keyidx *ki, const uint8_t *secret, double birth,
                      bool can_encrypt)
{
    ((key_list *)ctx)->cap++;
}

static void copy_key(void *ctx, const kc_keyidx *ki, const uint8_t *secret, double birth,
                     bool can_encrypt)
{
    key_list *l = ctx;
    if (l->n == l->cap)
        return;
    l->keys[l->n].ki = *ki;
    memcpy(l->keys[l->n].secret, secret, KC_SECRET_BYTES);
    l->n++;
}

/* from:share_keys_with(to, root) -> number of keys: what a key exchange
 * would deliver, inside the process. */
static int l_share_keys_with(lua_State *L)
{
    lua_standalone *from = check_standalone(L, 1), *to = check_standalone(L, 2);
    const char *root = luaL_checkstring(L, 3);
    key_list l = {NULL, 0, 0};
    kc_serde_foreach_pgen(from->s, root, count_key, &l);
    if (l.cap && !(l.keys = sodium_malloc(l.cap * sizeof *l.keys)))
        return kc_lua_errorf(L, "share_keys_with: out of memory");
    kc_serde_foreach_pgen(from->s, root, copy_key, &l);
    kc_err err;
    kc_status st = KC_OK;
    for (size_t i = 0; i < l.n && st == KC_OK; i++)
        st = kc_serde_add_consumer_key(to->s, root, &l.keys[i].ki, l.keys[i].secret, &err);
    if (l.keys)
        sodium_free(l.keys);   /* wipes */
    if (st != KC_OK)
        return kc_lua_error(L, &err);
    lua_pushinteger(L, (lua_Integer)l.n);
    return 1;
}

static int l_standalone_gc(lua_State *L)
{
    lua_standalone *sa = luaL_checkudata(L, 1, STANDALONE);
    kc_serde_free(sa->s);   /* messages may keep it; they never use the ratchet */
    sa->s = NULL;
    kc_ratchet_close(sa->ratchet);
    sa->ratchet = NULL;
    return 0;
}

/* ---- registration ------------------------------------------------------------------ */

void kc_lua_open_serde(lua_State *L)
{
    static const luaL_Reg message[] = {
        {"is_cleartext", l_is_cleartext},
        {"is_possibly_decryptable", l_is_possibly_decryptable},
        {"get_message", l_get_message},
        {"bytes", l_message_bytes},
        {NULL, NULL},
    };
    static const luaL_Reg message_meta[] = {
        {"__tostring", l_message_bytes}, {"__gc", l_message_gc}, {NULL, NULL},
    };
    static const luaL_Reg serializer[] = {{"serialize", l_serialize}, {NULL, NULL}};
    static const luaL_Reg deserializer[] = {{"deserialize", l_deserialize}, {NULL, NULL}};
    static const luaL_Reg serde_meta[] = {
        {"__tostring", l_serde_tostring}, {"__gc", l_serde_gc}, {NULL, NULL},
    };
    static const luaL_Reg standalone[] = {
        {"key_serializer", l_key_serializer},
        {"value_serializer", l_value_serializer},
        {"key_deserializer", l_key_deserializer},
        {"value_deserializer", l_value_deserializer},
        {"share_keys_with", l_share_keys_with},
        {NULL, NULL},
    };
    static const luaL_Reg standalone_meta[] = {{"__gc", l_standalone_gc}, {NULL, NULL}};
    kc_lua_class_new(L, MESSAGE, message, message_meta);
    kc_lua_class_new(L, SERIALIZER, serializer, serde_meta);
    kc_lua_class_new(L, DESERIALIZER, deserializer, serde_meta);
    kc_lua_class_new(L, STANDALONE, standalone, standalone_meta);
    static const luaL_Reg fns[] = {
        {"message", l_message}, {"is_message", l_is_message}, {"standalone", l_standalone},
        {"is_deserializer", l_is_deserializer}, {"is_serializer", l_is_serializer},
        {"limit_key_wait", l_limit_key_wait}, {"count_hold", l_count_hold}, {NULL, NULL},
    };
    luaL_register(L, NULL, fns);
}
