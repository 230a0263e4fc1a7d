/* The `kafkacrypto.crypto` Lua module: primitives over opaque handles.
 * kc_lua_crypto.h says what a handle is; lua/kafkacrypto/crypto.lua
 * documents every function. */
#include "kc_lua_crypto.h"
#include "kc_lua_crypto_args.h"

#include <lauxlib.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "kc_cryptokey_file.h"
#include "kc_cryptokey_pkcs11.h"
#include "kc_file.h"
#include "kc_keyidx.h"
#include "kc_lua.h"
#include "kc_lua_class.h"
#include "kc_mp.h"
#include "kc_node.h"
#include "kc_secmem.h"

static const char SIGNING_KEY[] = "kafkacrypto.crypto.signing_key";
static const char X25519[] = "kafkacrypto.crypto.x25519";
static const char KEY[] = "kafkacrypto.crypto.key";
static const char KEYSET[] = "kafkacrypto.crypto.keyset";
static const char IDENTITY[] = "kafkacrypto.crypto.identity";

#define KEY_BYTES 32
#define NONCE_BYTES crypto_secretbox_NONCEBYTES
#define RANDOM_MAX 65536
#define EXACT_INT_MAX 9007199254740992.0   /* 2^53 */
#define CRYPTO_FILE_MAX (1u << 20)

typedef enum owner_kind { OWNER_BORROWED, OWNER_NODE, OWNER_IDENTITY } owner_kind;

typedef struct signing_key {
    kc_cryptokey *ck;     /* OWNER_BORROWED / OWNER_IDENTITY; a node's is looked up at each use */
    size_t idx;
    owner_kind owner;     /* the owner object is uservalue[1] */
} signing_key;

typedef struct identity {
    kc_cryptokey *ck;
} identity;

typedef struct x25519 {
    uint8_t *sk;          /* in kc_secmem; NULL once wiped */
    uint8_t pk[crypto_scalarmult_BYTES];
} x25519;

typedef struct key {
    uint8_t *k;           /* KEY_BYTES in kc_secmem; NULL once wiped */
} key;

typedef struct keyset {
    kc_exchange_keys keys;
} keyset;

/* ---- argument checks that name the function and the argument ------------------- */

static void *test_handle(lua_State *L, int idx, const char *tname)
{
    void *p = lua_touserdata(L, idx);
    if (!p || !lua_getmetatable(L, idx))
        return NULL;
    luaL_getmetatable(L, tname);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same ? p : NULL;
}

const char *kc_lua_crypto_type_of(lua_State *L, int idx)
{
    static const char *const names[][2] = {
        {SIGNING_KEY, "a signing key handle"}, {X25519, "an x25519 handle"},
        {KEY, "a key handle"},                 {KEYSET, "a keyset handle"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (test_handle(L, idx, names[i][0]))
            return names[i][1];
    return luaL_typename(L, idx);
}

int kc_lua_crypto_arg_error(lua_State *L, const char *fn, int idx, const char *arg, const char *expected)
{
    return kc_lua_errorf(L, "crypto.%s: argument %d (%s): expected %s, got %s", fn, idx, arg,
                         expected, kc_lua_crypto_type_of(L, idx));
}

static void *check_handle(lua_State *L, int idx, const char *tname, const char *fn,
                          const char *arg, const char *expected)
{
    void *p = test_handle(L, idx, tname);
    if (!p)
        kc_lua_crypto_arg_error(L, fn, idx, arg, expected);
    return p;
}

/* A Lua string or a kafkacrypto.bytes wrapper. */
const char *kc_lua_crypto_test_bytes(lua_State *L, int idx, size_t *n)
{
    if (lua_type(L, idx) == LUA_TSTRING)
        return lua_tolstring(L, idx, n);
    return kc_lua_wrapped_bytes(L, idx, n);
}

const uint8_t *kc_lua_crypto_check_bytes(lua_State *L, int idx, const char *fn, const char *arg,
                                  size_t *n)
{
    const char *p = kc_lua_crypto_test_bytes(L, idx, n);
    if (!p)
        kc_lua_crypto_arg_error(L, fn, idx, arg, "a string");
    return (const uint8_t *)p;
}

static const uint8_t *check_len(lua_State *L, int idx, const char *fn, const char *arg,
                                size_t len)
{
    size_t n;
    const uint8_t *p = kc_lua_crypto_check_bytes(L, idx, fn, arg, &n);
    if (n != len)
        kc_lua_errorf(L, "crypto.%s: argument %d (%s): expected %d bytes, got %d", fn, idx, arg,
                      (int)len, (int)n);
    return p;
}

static key *check_key(lua_State *L, int idx, const char *fn, const char *arg)
{
    key *k = check_handle(L, idx, KEY, fn, arg, "a key handle");
    if (!k->k)
        kc_lua_errorf(L, "crypto.%s: argument %d (%s): the key handle has been wiped", fn, idx,
                      arg);
    return k;
}

static x25519 *check_x25519(lua_State *L, int idx, const char *fn)
{
    x25519 *x = check_handle(L, idx, X25519, fn, "self", "an x25519 handle");
    if (!x->sk)
        kc_lua_errorf(L, "crypto.%s: the x25519 handle has been wiped", fn);
    return x;
}

static keyset *check_keyset(lua_State *L, int idx, const char *fn, const char *arg)
{
    return check_handle(L, idx, KEYSET, fn, arg, "a keyset handle");
}

static int raise_err(lua_State *L, const char *fn, const kc_err *err)
{
    return kc_lua_errorf(L, "crypto.%s: %s", fn, err->msg);
}

/* ---- handle construction --------------------------------------------------------- */

/* A key handle with fresh storage in kc_secmem, which (unlike a
 * sodium_malloc each) stays within a few mappings however many handles a
 * script holds before they are collected (raises on no memory). */
static key *new_key(lua_State *L)
{
    key *k = kc_lua_class_push(L, KEY, sizeof *k);
    if (!(k->k = kc_secmem_alloc(KEY_BYTES)))
        kc_lua_errorf(L, "crypto: out of memory for a key");
    return k;
}

/* ---- signing keys ----------------------------------------------------------------- */

void kc_lua_push_signing_key(lua_State *L, kc_cryptokey *ck, size_t idx)
{
    signing_key *sk = kc_lua_class_push(L, SIGNING_KEY, sizeof *sk);
    sk->ck = ck;
    sk->idx = idx;
    sk->owner = OWNER_BORROWED;
}

static kc_cryptokey *signing_ck(lua_State *L, const char *fn, signing_key **out)
{
    signing_key *sk = check_handle(L, 1, SIGNING_KEY, fn, "self", "a signing key handle");
    *out = sk;
    if (sk->owner != OWNER_NODE)
        return sk->ck;
    lua_getfenv(L, 1);
    lua_rawgeti(L, -1, 1);
    kc_node *n = kc_lua_check_node(L, lua_gettop(L)); /* raises once the node is closed */
    lua_pop(L, 2);
    return kc_node_cryptokey(n);
}

/* key:public() -> the public key's bytes (32 for Ed25519) */
static int l_sk_public(lua_State *L)
{
    signing_key *sk;
    kc_cryptokey *ck = signing_ck(L, "signing_key:public", &sk);
    kc_key pk = {0};
    kc_buf b = KC_BUF_INIT;
    kc_err err;
    kc_status st = kc_cryptokey_get_spk(ck, sk->idx, &pk, &err);
    if (st == KC_OK && (st = kc_key_bytes(&pk, &b)) != KC_OK)
        kc_err_set(&err, st, "out of memory");
    if (st == KC_OK)
        lua_pushlstring(L, (const char *)b.data, b.len);
    kc_key_clear(&pk);
    kc_buf_free(&b);
    return st == KC_OK ? 1 : raise_err(L, "signing_key:public", &err);
}

/* key:sign(msg) -> signature(64) .. msg, upstream's combined form */
static int l_sk_sign(lua_State *L)
{
    signing_key *sk;
    kc_cryptokey *ck = signing_ck(L, "signing_key:sign", &sk);
    size_t n;
    const uint8_t *m = kc_lua_crypto_check_bytes(L, 2, "signing_key:sign", "message", &n);
    kc_buf out = KC_BUF_INIT;
    kc_err err;
    if (kc_cryptokey_sign(ck, sk->idx, m, n, &out, &err) != KC_OK)
        return raise_err(L, "signing_key:sign", &err);
    lua_pushlstring(L, (const char *)out.data, out.len);
    kc_buf_free(&out);
    return 1;
}

static int l_sk_index(lua_State *L)
{
    signing_key *sk;
    signing_ck(L, "signing_key:index", &sk);
    lua_pushinteger(L, (lua_Integer)sk->idx + 1);
    return 1;
}

static int l_sk_tostring(lua_State *L)
{
    signing_key *sk = check_handle(L, 1, SIGNING_KEY, "tostring", "self", "a signing key handle");
    lua_pushfstring(L, "kafkacrypto signing key %d", (int)sk->idx + 1);
    return 1;
}

static int l_identity_gc(lua_State *L)
{
    identity *id = lua_touserdata(L, 1);
    kc_cryptokey_close(id->ck);
    id->ck = NULL;
    return 0;
}

/* crypto.signing_keys(node | ".crypto path" | "pkcs11:" URI) -> { key handle, ... } */
static int l_signing_keys(lua_State *L)
{
    kc_cryptokey *ck;
    owner_kind owner;
    if (lua_type(L, 1) == LUA_TUSERDATA) { /* a node (kc_lua_check_node says if not) */
        ck = kc_node_cryptokey(kc_lua_check_node(L, 1));
        owner = OWNER_NODE;
        lua_pushvalue(L, 1);
    } else if (lua_type(L, 1) == LUA_TSTRING) {
        /* read-only: never creates, upgrades or extends the file */
        const char *path = lua_tostring(L, 1);
        identity *id = kc_lua_class_push(L, IDENTITY, sizeof *id);
        kc_buf data = KC_BUF_INIT;
        kc_err err;
        kc_status st = KC_OK;
        if (kc_pkcs11_is_uri(path))
            st = kc_cryptokey_pkcs11_open(&id->ck, path, false, &err);
        else if ((st = kc_file_read(path, CRYPTO_FILE_MAX, &data, &err)) == KC_OK)
            st = kc_cryptokey_open_bytes(&id->ck, data.data, data.len, path, NULL, 0, &err);
        kc_buf_free(&data); /* wipes */
        if (st != KC_OK)
            return raise_err(L, "signing_keys", &err);
        ck = id->ck;
        owner = OWNER_IDENTITY;
    } else {
        return kc_lua_crypto_arg_error(L, "signing_keys", 1, "source", "a kafkacrypto node or a .crypto file name");
    }
    int owner_idx = lua_gettop(L);
    size_t n = kc_cryptokey_num_spk(ck);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        signing_key *sk = kc_lua_class_push(L, SIGNING_KEY, sizeof *sk);
        sk->ck = owner == OWNER_NODE ? NULL : ck;
        sk->idx = i;
        sk->owner = owner;
        lua_createtable(L, 1, 0);
        lua_pushvalue(L, owner_idx);
        lua_rawseti(L, -2, 1);
        lua_setfenv(L, -2);
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

/* crypto.verify(public_key, signed) -> message, or nil and the reason */
static int l_verify(lua_State *L)
{
    size_t pkn, n;
    const uint8_t *pkb = kc_lua_crypto_check_bytes(L, 1, "verify", "public_key", &pkn);
    const uint8_t *sm = kc_lua_crypto_check_bytes(L, 2, "verify", "signed", &n);
    kc_key pk;
    kc_err err;
    if (kc_key_from_bytes(&pk, KC_SIGN_PK, pkb, pkn, &err) != KC_OK)
        return kc_lua_errorf(L, "crypto.verify: argument 1 (public_key): %s", err.msg);
    const uint8_t *m;
    size_t mlen;
    kc_status st = kc_sign_open(&pk, sm, n, &m, &mlen, &err);
    kc_key_clear(&pk);
    if (st != KC_OK) {
        lua_pushnil(L);
        lua_pushfstring(L, "signature does not verify: %s", err.msg);
        return 2;
    }
    lua_pushlstring(L, (const char *)m, mlen);
    return 1;
}

/* ---- X25519 -------------------------------------------------------------------------- */

/* crypto.x25519() -> a fresh ephemeral key pair */
static int l_x25519(lua_State *L)
{
    x25519 *x = kc_lua_class_push(L, X25519, sizeof *x);
    if (!(x->sk = kc_secmem_alloc(crypto_scalarmult_SCALARBYTES)))
        return kc_lua_errorf(L, "crypto.x25519: out of memory");
    randombytes_buf(x->sk, crypto_scalarmult_SCALARBYTES);
    crypto_scalarmult_base(x->pk, x->sk);
    return 1;
}

static int l_x_public(lua_State *L)
{
    x25519 *x = check_x25519(L, 1, "x25519:public");
    lua_pushlstring(L, (const char *)x->pk, sizeof x->pk);
    return 1;
}

/* x:shared(peer_public) -> key handle with X25519(sk, peer) */
static int l_x_shared(lua_State *L)
{
    x25519 *x = check_x25519(L, 1, "x25519:shared");
    const uint8_t *peer = check_len(L, 2, "x25519:shared", "peer_public", crypto_scalarmult_BYTES);
    key *k = new_key(L);
    if (crypto_scalarmult(k->k, x->sk, peer) != 0)
        return kc_lua_errorf(L, "crypto.x25519:shared: argument 2 (peer_public): a low-order "
                             "point gives no shared key");
    return 1;
}

static int l_x_wipe(lua_State *L)
{
    x25519 *x = check_handle(L, 1, X25519, "x25519:wipe", "self", "an x25519 handle");
    kc_secmem_free(x->sk);
    x->sk = NULL;
    return 0;
}

static int l_x_tostring(lua_State *L)
{
    x25519 *x = check_handle(L, 1, X25519, "tostring", "self", "an x25519 handle");
    if (!x->sk)
        lua_pushliteral(L, "kafkacrypto x25519 key pair (wiped)");
    else
        lua_pushliteral(L, "kafkacrypto x25519 key pair");
    return 1;
}

/* ---- symmetric keys ------------------------------------------------------------------ */

/* crypto.key() -> a fresh random key */
static int l_key(lua_State *L)
{
    randombytes_buf(new_key(L)->k, KEY_BYTES);
    return 1;
}

/* BLAKE2b personalisations: a derived key or a key-material box key is never
 * the output of crypto.blake2b (which uses none), so a script cannot compute
 * the bytes of either. */
static const uint8_t PERSONAL_DERIVE[16] = "kc-derive";
static const uint8_t PERSONAL_KEYBOX[16] = "kc-keymaterial";

static void personal_hash(uint8_t out[KEY_BYTES], const uint8_t *m, size_t n, const key *k,
                          const uint8_t personal[16])
{
    crypto_generichash_blake2b_salt_personal(out, KEY_BYTES, m, n, k->k, KEY_BYTES, NULL,
                                             personal);
}

/* key:derive(context) -> key handle BLAKE2b-256(context, key, personal "kc-derive") */
static int l_key_derive(lua_State *L)
{
    key *k = check_key(L, 1, "key:derive", "self");
    size_t n;
    const uint8_t *ctx = kc_lua_crypto_check_bytes(L, 2, "key:derive", "context", &n);
    key *d = new_key(L);
    personal_hash(d->k, ctx, n, k, PERSONAL_DERIVE);
    return 1;
}

static int l_key_wipe(lua_State *L)
{
    key *k = check_handle(L, 1, KEY, "key:wipe", "self", "a key handle");
    kc_secmem_free(k->k);
    k->k = NULL;
    return 0;
}

static int l_key_tostring(lua_State *L)
{
    key *k = check_handle(L, 1, KEY, "tostring", "self", "a key handle");
    lua_pushstring(L, k->k ? "kafkacrypto key" : "kafkacrypto key (wiped)");
    return 1;
}

/* What a box holds. Key material is sealed under a subkey of the key
 * (personal "kc-keymaterial"), so secretbox_open never opens a sealed key or
 * keyset, and open_key/open_keys never accept content a script chose. */
typedef enum box_kind { BOX_DATA, BOX_KEYS } box_kind;

static void box_key(const key *k, box_kind kind, uint8_t out[KEY_BYTES])
{
    if (kind == BOX_KEYS)
        personal_hash(out, NULL, 0, k, PERSONAL_KEYBOX);
    else
        memcpy(out, k->k, KEY_BYTES);
}

/* Pushes nonce || secretbox(p). Nothing secret is held when the push may
 * raise (out of memory): the caller wipes p first if it must. */
static uint8_t *seal(const key *k, box_kind kind, const uint8_t *p, size_t n, size_t *len)
{
    *len = NONCE_BYTES + crypto_secretbox_MACBYTES + n;
    uint8_t *out = malloc(*len), bk[KEY_BYTES];
    if (!out)
        return NULL;
    box_key(k, kind, bk);
    randombytes_buf(out, NONCE_BYTES);
    crypto_secretbox_easy(out + NONCE_BYTES, p, n, out, bk);
    sodium_memzero(bk, sizeof bk);
    return out;
}

static int push_sealed(lua_State *L, uint8_t *sealed, size_t len, const char *fn)
{
    if (!sealed)
        return kc_lua_errorf(L, "crypto.%s: out of memory", fn);
    lua_pushlstring(L, (const char *)sealed, len);
    free(sealed); /* ciphertext only: a leak on a raise above would expose nothing */
    return 1;
}

/* Opens nonce || box into sodium_malloc'd memory (*plain, *n); false if it
 * does not open. */
static bool open_sealed(const key *k, box_kind kind, const uint8_t *c, size_t cn,
                        uint8_t **plain, size_t *n)
{
    *plain = NULL;
    *n = 0;
    if (cn < NONCE_BYTES + crypto_secretbox_MACBYTES)
        return false;
    *n = cn - NONCE_BYTES - crypto_secretbox_MACBYTES;
    *plain = sodium_malloc(*n ? *n : 1);
    uint8_t bk[KEY_BYTES];
    box_key(k, kind, bk);
    bool ok = *plain && crypto_secretbox_open_easy(*plain, c + NONCE_BYTES, cn - NONCE_BYTES, c,
                                                   bk) == 0;
    sodium_memzero(bk, sizeof bk);
    if (ok)
        return true;
    if (*plain)
        sodium_free(*plain);
    *plain = NULL;
    return false;
}

static int push_open_failure(lua_State *L, size_t cn)
{
    lua_pushnil(L);
    if (cn < NONCE_BYTES + crypto_secretbox_MACBYTES)
        lua_pushfstring(L, "sealed data too short: %d bytes, at least %d expected", (int)cn,
                        (int)(NONCE_BYTES + crypto_secretbox_MACBYTES));
    else
        lua_pushliteral(L, "does not open with this key (tampered, or another key)");
    return 2;
}

/* crypto.secretbox_seal(key, plaintext) -> nonce .. box */
static int l_seal(lua_State *L)
{
    key *k = check_key(L, 1, "secretbox_seal", "key");
    size_t n;
    const uint8_t *p = kc_lua_crypto_check_bytes(L, 2, "secretbox_seal", "plaintext", &n);
    size_t len;
    uint8_t *sealed = seal(k, BOX_DATA, p, n, &len);
    return push_sealed(L, sealed, len, "secretbox_seal");
}

/* crypto.secretbox_open(key, sealed) -> plaintext, or nil and the reason */
static int l_open(lua_State *L)
{
    key *k = check_key(L, 1, "secretbox_open", "key");
    size_t cn, n;
    const uint8_t *c = kc_lua_crypto_check_bytes(L, 2, "secretbox_open", "sealed", &cn);
    uint8_t *plain;
    if (!open_sealed(k, BOX_DATA, c, cn, &plain, &n))
        return push_open_failure(L, cn);
    lua_pushlstring(L, (const char *)plain, n); /* data a script sealed: not secret here */
    sodium_free(plain);
    return 1;
}

/* crypto.seal_key(key, other) -> other's bytes sealed under key */
static int l_seal_key(lua_State *L)
{
    key *k = check_key(L, 1, "seal_key", "key");
    key *o = check_key(L, 2, "seal_key", "sealed_key");
    size_t len;
    uint8_t *sealed = seal(k, BOX_KEYS, o->k, KEY_BYTES, &len);
    return push_sealed(L, sealed, len, "seal_key");
}

/* crypto.open_key(key, sealed) -> key handle, or nil and the reason */
static int l_open_key(lua_State *L)
{
    key *k = check_key(L, 1, "open_key", "key");
    size_t cn, n;
    const uint8_t *c = kc_lua_crypto_check_bytes(L, 2, "open_key", "sealed", &cn);
    key *o = new_key(L); /* first: nothing may raise once plain is held */
    uint8_t *plain;
    if (!open_sealed(k, BOX_KEYS, c, cn, &plain, &n))
        return push_open_failure(L, cn);
    if (n != KEY_BYTES) {
        sodium_free(plain);
        lua_pushnil(L);
        lua_pushfstring(L, "sealed data holds %d bytes, not a %d-byte key", (int)n, KEY_BYTES);
        return 2;
    }
    memcpy(o->k, plain, KEY_BYTES);
    sodium_free(plain); /* wipes */
    return 1;
}

/* ---- keysets --------------------------------------------------------------------------- */

void kc_lua_push_keyset(lua_State *L, kc_exchange_keys *keys)
{
    keyset *ks = kc_lua_class_push(L, KEYSET, sizeof *ks);
    ks->keys = *keys;
    memset(keys, 0, sizeof *keys);
}

kc_exchange_keys *kc_lua_test_keyset(lua_State *L, int idx)
{
    keyset *ks = test_handle(L, idx, KEYSET);
    return ks ? &ks->keys : NULL;
}

void kc_lua_push_keyidx(lua_State *L, const kc_keyidx *ki)
{
    if (ki->type == KC_KEYIDX_BYTES)
        lua_pushlstring(L, (const char *)ki->bytes, ki->len);
    else if (ki->type == KC_KEYIDX_INT)
        lua_pushnumber(L, ki->negative ? (lua_Number)(int64_t)ki->num : (lua_Number)ki->num);
    else
        lua_pushnil(L);
}

/* ks:indices() -> { key index, ... } (public: they name keys, they are not keys) */
static int l_ks_indices(lua_State *L)
{
    keyset *ks = check_keyset(L, 1, "keyset:indices", "self");
    lua_createtable(L, (int)ks->keys.n, 0);
    for (size_t i = 0; i < ks->keys.n; i++) {
        kc_lua_push_keyidx(L, &ks->keys.items[i].ki);
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

/* crypto.keyset{ key index, ... } -> a keyset of fresh random keys */
static int l_keyset(lua_State *L)
{
    if (!lua_istable(L, 1))
        return kc_lua_crypto_arg_error(L, "keyset", 1, "indices", "a list of key indices");
    size_t n = lua_objlen(L, 1);
    if (n < 1 || n > KC_EXCHANGE_MAX_KEYS)
        return kc_lua_errorf(L, "crypto.keyset: argument 1 (indices): expected 1 to %d key "
                             "indices, got %d", KC_EXCHANGE_MAX_KEYS, (int)n);
    keyset *ks = kc_lua_class_push(L, KEYSET, sizeof *ks);
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, (int)i);
        kc_keyidx ki;
        lua_Number v = lua_tonumber(L, -1);
        size_t len;
        const char *p = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        if (lua_type(L, -1) == LUA_TNUMBER && v == floor(v) && fabs(v) <= EXACT_INT_MAX)
            kc_keyidx_from_int(&ki, (int64_t)v);
        else if (p)
            kc_keyidx_from_bytes(&ki, (const uint8_t *)p, len);
        else
            ki.type = KC_KEYIDX_OTHER;
        lua_pop(L, 1);
        bool dup = false;
        for (size_t j = 0; j < ks->keys.n && !dup; j++)
            dup = kc_keyidx_equal(&ks->keys.items[j].ki, &ki);
        if (ki.type == KC_KEYIDX_OTHER || dup)
            return kc_lua_errorf(L, "crypto.keyset: argument 1 (indices): entry %d: expected an "
                                 "integer or a string of at most %d bytes, each once", (int)i,
                                 KC_KEYIDX_MAX_BYTES);
        uint8_t secret[KC_SECRET_BYTES];
        randombytes_buf(secret, sizeof secret);
        kc_status st = kc_exchange_keys_add(&ks->keys, &ki, secret);
        sodium_memzero(secret, sizeof secret);
        if (st != KC_OK)
            return kc_lua_errorf(L, "crypto.keyset: out of memory");
    }
    return 1;
}

static int l_ks_len(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)check_keyset(L, 1, "keyset:len", "self")->keys.n);
    return 1;
}

static int l_ks_wipe(lua_State *L)
{
    kc_exchange_keys_clear(&check_keyset(L, 1, "keyset:wipe", "self")->keys);
    return 0;
}

static int l_ks_tostring(lua_State *L)
{
    keyset *ks = check_keyset(L, 1, "tostring", "self");
    lua_pushfstring(L, "kafkacrypto keyset (%d keys)", (int)ks->keys.n);
    return 1;
}

/* crypto.seal_keys(key, keyset) -> nonce .. secretbox(mp([ki, bin(S), ...])),
 * the plaintext of upstream's reply box (spec §7.4), under the key-material
 * subkey */
static int l_seal_keys(lua_State *L)
{
    key *k = check_key(L, 1, "seal_keys", "key");
    keyset *ks = check_keyset(L, 2, "seal_keys", "keyset");
    if (ks->keys.n == 0)
        return kc_lua_errorf(L, "crypto.seal_keys: argument 2 (keyset): it is empty");
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    msgpack_pack_array(&mo.pk, 2 * ks->keys.n);
    for (size_t i = 0; i < ks->keys.n; i++) {
        kc_keyidx_pack(&mo.pk, &ks->keys.items[i].ki);
        kc_mp_pack_bin(&mo.pk, ks->keys.items[i].secret, KC_SECRET_BYTES);
    }
    size_t len = 0;
    uint8_t *sealed = kc_mp_out_status(&mo) == KC_OK ? seal(k, BOX_KEYS, mo.buf.data, mo.buf.len,
                                                            &len)
                                                     : NULL;
    kc_mp_out_free(&mo); /* wipes, before anything can raise */
    return push_sealed(L, sealed, len, "seal_keys");
}

/* The (ki, secret) pairs of an opened keyset box; false with a reason. */
static bool parse_keys(const uint8_t *p, size_t n, kc_exchange_keys *out, const char **why)
{
    kc_mp_doc doc = {0};
    bool ok = kc_mp_decode(&doc, p, n, "keyset", NULL) == KC_OK;
    const msgpack_object *o = ok ? kc_mp_root(&doc) : NULL;
    *why = "not a msgpack array of (key index, 32-byte key) pairs";
    ok = ok && o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size >= 2 &&
         o->via.array.size % 2 == 0 && o->via.array.size <= 2 * KC_EXCHANGE_MAX_KEYS;
    for (uint32_t i = 0; ok && i < o->via.array.size; i += 2) {
        kc_keyidx ki;
        const uint8_t *s;
        ok = kc_keyidx_from_mp(&ki, &o->via.array.ptr[i]) && ki.type != KC_KEYIDX_OTHER &&
             kc_mp_bytes_len(&o->via.array.ptr[i + 1], KC_SECRET_BYTES, &s);
        for (size_t j = 0; ok && j < out->n; j++)
            if (kc_keyidx_equal(&out->items[j].ki, &ki)) {
                ok = false;
                *why = "a key index appears twice";
            }
        if (ok && kc_exchange_keys_add(out, &ki, s) != KC_OK) {
            ok = false;
            *why = "out of memory";
        }
    }
    if (doc.live)
        kc_mp_doc_free(&doc);
    if (!ok)
        kc_exchange_keys_clear(out);
    return ok;
}

/* crypto.open_keys(key, sealed) -> keyset handle, or nil and the reason */
static int l_open_keys(lua_State *L)
{
    key *k = check_key(L, 1, "open_keys", "key");
    size_t cn, n;
    const uint8_t *c = kc_lua_crypto_check_bytes(L, 2, "open_keys", "sealed", &cn);
    keyset *ks = kc_lua_class_push(L, KEYSET, sizeof *ks); /* first: nothing may raise once plain is held */
    uint8_t *plain;
    if (!open_sealed(k, BOX_KEYS, c, cn, &plain, &n))
        return push_open_failure(L, cn);
    const char *why;
    bool ok = parse_keys(plain, n, &ks->keys, &why);
    sodium_free(plain);
    if (!ok) {
        lua_pushnil(L);
        lua_pushfstring(L, "opened, but %s", why);
        return 2;
    }
    return 1;
}

static int l_ks_gc(lua_State *L)
{
    keyset *ks = lua_touserdata(L, 1);
    kc_exchange_keys_clear(&ks->keys);
    return 0;
}

/* ---- hashes and random bytes --------------------------------------------------------------- */

static int l_sha256(lua_State *L)
{
    size_t n;
    const uint8_t *p = kc_lua_crypto_check_bytes(L, 1, "sha256", "data", &n);
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, p, n);
    lua_pushlstring(L, (const char *)h, sizeof h);
    return 1;
}

/* crypto.blake2b(data[, size = 32][, key handle]) */
static int l_blake2b(lua_State *L)
{
    size_t n;
    const uint8_t *p = kc_lua_crypto_check_bytes(L, 1, "blake2b", "data", &n);
    lua_Number size = 32;
    if (!lua_isnoneornil(L, 2)) {
        if (lua_type(L, 2) != LUA_TNUMBER)
            return kc_lua_crypto_arg_error(L, "blake2b", 2, "size", "a number");
        size = lua_tonumber(L, 2);
        if (size != floor(size) || size < crypto_generichash_BYTES_MIN ||
            size > crypto_generichash_BYTES_MAX)
            return kc_lua_errorf(L, "crypto.blake2b: argument 2 (size): expected an integer "
                                 "from %d to %d", crypto_generichash_BYTES_MIN,
                                 crypto_generichash_BYTES_MAX);
    }
    const key *k = lua_isnoneornil(L, 3) ? NULL : check_key(L, 3, "blake2b", "key");
    uint8_t h[crypto_generichash_BYTES_MAX];
    crypto_generichash(h, (size_t)size, p, n, k ? k->k : NULL, k ? KEY_BYTES : 0);
    lua_pushlstring(L, (const char *)h, (size_t)size);
    return 1;
}

static int l_random(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TNUMBER)
        return kc_lua_crypto_arg_error(L, "random", 1, "n", "a number");
    lua_Number n = lua_tonumber(L, 1);
    if (n != floor(n) || n < 1 || n > RANDOM_MAX)
        return kc_lua_errorf(L, "crypto.random: argument 1 (n): expected an integer from 1 to %d",
                             RANDOM_MAX);
    uint8_t *p = lua_newuserdata(L, (size_t)n);
    randombytes_buf(p, (size_t)n);
    lua_pushlstring(L, (const char *)p, (size_t)n);
    return 1;
}

/* crypto.equal(a, b): constant-time comparison of two strings */
static int l_equal(lua_State *L)
{
    size_t an, bn;
    const uint8_t *a = kc_lua_crypto_check_bytes(L, 1, "equal", "a", &an);
    const uint8_t *b = kc_lua_crypto_check_bytes(L, 2, "equal", "b", &bn);
    lua_pushboolean(L, an == bn && (an == 0 || sodium_memcmp(a, b, an) == 0));
    return 1;
}

/* ---- registration ------------------------------------------------------------------------------ */

static int l_x_gc(lua_State *L)
{
    x25519 *x = lua_touserdata(L, 1);
    kc_secmem_free(x->sk);
    x->sk = NULL;
    return 0;
}

static int l_key_gc(lua_State *L)
{
    key *k = lua_touserdata(L, 1);
    kc_secmem_free(k->k);
    k->k = NULL;
    return 0;
}

/* Handles hide their metatable: getmetatable() from Lua gives a string. */
static void new_class(lua_State *L, const char *tname, const luaL_Reg *methods,
                      const luaL_Reg *meta)
{
    kc_lua_class_new(L, tname, methods, meta);
    luaL_getmetatable(L, tname);
    lua_pushliteral(L, "kafkacrypto.crypto handle");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
}

void kc_lua_push_crypto(lua_State *L)
{
    static const luaL_Reg sk_methods[] = {
        {"public", l_sk_public}, {"sign", l_sk_sign}, {"index", l_sk_index}, {NULL, NULL}};
    static const luaL_Reg x_methods[] = {
        {"public", l_x_public}, {"shared", l_x_shared}, {"wipe", l_x_wipe}, {NULL, NULL}};
    static const luaL_Reg key_methods[] = {
        {"derive", l_key_derive}, {"wipe", l_key_wipe}, {NULL, NULL}};
    static const luaL_Reg ks_methods[] = {
        {"indices", l_ks_indices}, {"wipe", l_ks_wipe}, {NULL, NULL}};
    static const luaL_Reg functions[] = {
        {"signing_keys", l_signing_keys}, {"verify", l_verify},
        {"x25519", l_x25519},             {"key", l_key},
        {"secretbox_seal", l_seal},       {"secretbox_open", l_open},
        {"seal_key", l_seal_key},         {"open_key", l_open_key},
        {"seal_keys", l_seal_keys},       {"open_keys", l_open_keys},
        {"keyset", l_keyset},
        {"sha256", l_sha256},             {"blake2b", l_blake2b},
        {"random", l_random},             {"equal", l_equal},
        {NULL, NULL},
    };
    if (kc_init() != 0) /* sodium_malloc needs libsodium initialised */
        kc_lua_errorf(L, "crypto: libsodium failed to initialise");
    static const luaL_Reg sk_meta[] = {{"__tostring", l_sk_tostring}, {NULL, NULL}};
    static const luaL_Reg x_meta[] = {
        {"__gc", l_x_gc}, {"__tostring", l_x_tostring}, {NULL, NULL}};
    static const luaL_Reg key_meta[] = {
        {"__gc", l_key_gc}, {"__tostring", l_key_tostring}, {NULL, NULL}};
    static const luaL_Reg ks_meta[] = {
        {"__gc", l_ks_gc}, {"__tostring", l_ks_tostring}, {"__len", l_ks_len}, {NULL, NULL}};
    static const luaL_Reg identity_meta[] = {{"__gc", l_identity_gc}, {NULL, NULL}};
    new_class(L, SIGNING_KEY, sk_methods, sk_meta);
    new_class(L, X25519, x_methods, x_meta);
    new_class(L, KEY, key_methods, key_meta);
    new_class(L, KEYSET, ks_methods, ks_meta);
    new_class(L, IDENTITY, NULL, identity_meta);
    lua_createtable(L, 0, 20);
    luaL_register(L, NULL, functions);
    kc_lua_msgpack_register(L);
}

void kc_lua_open_crypto(lua_State *L)
{
    kc_lua_push_crypto(L);
    lua_setfield(L, -2, "crypto");
}
