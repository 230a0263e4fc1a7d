/* Lua binding of what the provisioning tools need (spec §9): hidden
 * password input, password-derived signers (PasswordROT and
 * PasswordProvisioner) used through handles, certificates, a node's
 * .crypto and .seed files. lua/kafkacrypto/tools/provisioning.lua documents it.
 *
 * Secret keys stay in C (wiped when the handle is closed or collected).
 * Passwords come back to Lua as strings, which Lua cannot wipe: the tools
 * drop them as soon as the keys are derived. */
#include <lauxlib.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "kc_chain.h"
#include "kc_cryptokey.h"
#include "kc_cryptokey_file.h"
#include "kc_cryptokey_pkcs11.h"
#include "kc_cryptokey_ref.h"
#include "kc_file.h"
#include "kc_hex.h"
#include "kc_lua.h"
#include "kc_lua_class.h"
#include "kc_provision.h"
#include "kc_ratchet.h"
#include "kc_seal.h"

static const char SIGNER[] = "kafkacrypto.signer";

#define PASSWORD_MAX 1024

/* ---- hidden input ---------------------------------------------------------- */

/* Echo must come back if the user interrupts the prompt. */
static struct termios saved_termios;
static struct sigaction saved_int, saved_term;

static void restore_and_reraise(int sig)
{
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
    sigaction(SIGINT, &saved_int, NULL);
    sigaction(SIGTERM, &saved_term, NULL);
    raise(sig);
}

/* read_password(prompt) -> text | nil at end of input. The prompt goes to
 * stdout; on a terminal echo is off while the line is typed. The line is
 * read through C's stdin, which Lua's io.read shares. */
static int l_read_password(lua_State *L)
{
    const char *prompt = luaL_optstring(L, 1, "Password: ");
    fputs(prompt, stdout);
    fflush(stdout);
    char *line = sodium_init() < 0 ? NULL : sodium_malloc(PASSWORD_MAX + 2);
    if (!line)
        return kc_lua_errorf(L, "read_password: out of memory");
    int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_termios) == 0;
    if (tty) {
        struct termios quiet = saved_termios;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        quiet.c_lflag |= ECHONL;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = restore_and_reraise;
        sigaction(SIGINT, &sa, &saved_int);
        sigaction(SIGTERM, &sa, &saved_term);
        tcsetattr(STDIN_FILENO, TCSANOW, &quiet); /* keep what was typed ahead */
    }
    char *got = fgets(line, PASSWORD_MAX + 2, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_termios);
        sigaction(SIGINT, &saved_int, NULL);
        sigaction(SIGTERM, &saved_term, NULL);
    } else {
        fputs("\n", stdout);
    }
    size_t n = got ? strcspn(line, "\r\n") : 0;
    bool too_long = got && n > PASSWORD_MAX;
    if (too_long && !strchr(line, '\n')) /* drop the rest of the line */
        for (int c = getchar(); c != EOF && c != '\n'; c = getchar())
            ;
    if (got && !too_long)
        lua_pushlstring(L, line, n);
    sodium_memzero(line, PASSWORD_MAX + 2);
    sodium_free(line);
    if (too_long)
        return kc_lua_errorf(L, "password longer than %d characters", PASSWORD_MAX);
    if (!got)
        lua_pushnil(L);
    return 1;
}

/* ---- signers: password-derived keys behind a handle ------------------------ */

typedef struct lua_signer {
    bool live;
    kc_password_key k;
} lua_signer;

static lua_signer *new_signer(lua_State *L)
{
    return kc_lua_class_push(L, SIGNER, sizeof(lua_signer));
}

static lua_signer *check_signer(lua_State *L, int idx)
{
    lua_signer *s = luaL_checkudata(L, idx, SIGNER);
    if (!s->live)
        kc_lua_errorf(L, "signer is closed");
    return s;
}

static int check_keytype(lua_State *L, int idx)
{
    lua_Integer kt = luaL_optinteger(L, idx, KC_KEYTYPE_ED25519);
    return (int)kt;
}

/* password_rot(password[, keytype]) -> signer */
static int l_password_rot(lua_State *L)
{
    size_t n;
    const char *pw = luaL_checklstring(L, 1, &n);
    int keytype = check_keytype(L, 2);
    lua_signer *s = new_signer(L);
    kc_err err;
    if (kc_password_rot(pw, n, keytype, &s->k, &err) != KC_OK)
        return kc_lua_error(L, &err);
    s->live = true;
    return 1;
}

/* password_provisioners(password, rot_public_key[, keytype])
 *   -> {producer = signer, consumer = signer, prodcon = signer} */
static int l_password_provisioners(lua_State *L)
{
    size_t n, rn;
    const char *pw = luaL_checklstring(L, 1, &n);
    const uint8_t *rot = (const uint8_t *)luaL_checklstring(L, 2, &rn);
    int keytype = check_keytype(L, 3);
    kc_password_key keys[KC_PROVISIONER_COUNT];
    memset(keys, 0, sizeof keys);
    kc_err err;
    if (kc_password_provisioners(pw, n, rot, rn, keytype, keys, &err) != KC_OK)
        return kc_lua_error(L, &err);
    lua_createtable(L, 0, KC_PROVISIONER_COUNT);
    for (int i = 0; i < KC_PROVISIONER_COUNT; i++) {
        lua_signer *s = new_signer(L);
        s->k = keys[i]; /* moved: the handle wipes it */
        s->live = true;
        lua_setfield(L, -2, kc_provisioner_name((kc_provisioner)i));
    }
    sodium_memzero(keys, sizeof keys);
    return 1;
}

static void push_buf(lua_State *L, kc_buf *b)
{
    lua_pushlstring(L, b->data ? (const char *)b->data : "", b->len);
    kc_buf_free(b);
}

/* signer:public_key() -> bytes() form of the public key */
static int l_signer_public_key(lua_State *L)
{
    lua_signer *s = check_signer(L, 1);
    kc_buf b = KC_BUF_INIT;
    if (kc_key_bytes(&s->k.pk, &b) != KC_OK)
        return kc_lua_errorf(L, "out of memory");
    push_buf(L, &b);
    return 1;
}

/* signer:salt() -> the derivation's salt (public; upstream prints it) */
static int l_signer_salt(lua_State *L)
{
    lua_signer *s = check_signer(L, 1);
    lua_pushlstring(L, (const char *)s->k.salt, sizeof s->k.salt);
    return 1;
}

/* signer:sign(message) -> signature || message */
static int l_signer_sign(lua_State *L)
{
    lua_signer *s = check_signer(L, 1);
    size_t n;
    const uint8_t *m = (const uint8_t *)luaL_checklstring(L, 2, &n);
    kc_buf out = KC_BUF_INIT;
    kc_err err;
    if (kc_cert_sign(&s->k.sk, m, n, &out, &err) != KC_OK) {
        kc_buf_free(&out);
        return kc_lua_error(L, &err);
    }
    push_buf(L, &out);
    return 1;
}

/* signer:secret_hex() -> hex of the secret key (seed || pk). Only for
 * generate-chains, which prints provisioner secrets on purpose, as
 * upstream's tool does. */
static int l_signer_secret_hex(lua_State *L)
{
    lua_signer *s = check_signer(L, 1);
    char hex[2 * sizeof s->k.sk.x + 1];
    kc_hex(s->k.sk.x, s->k.sk.x_len, hex);
    lua_pushstring(L, hex);
    sodium_memzero(hex, sizeof hex);
    return 1;
}

static int l_signer_close(lua_State *L)
{
    lua_signer *s = luaL_checkudata(L, 1, SIGNER);
    if (s->live)
        kc_password_key_clear(&s->k);
    s->live = false;
    return 0;
}

/* ---- certificates ------------------------------------------------------------ */

static const char *const *check_strings(lua_State *L, int t, const char *what, size_t *n)
{
    if (!lua_istable(L, t))
        kc_lua_errorf(L, "cert: %s: expected a list of strings", what);
    *n = lua_objlen(L, t);
    const char **v = lua_newuserdata(L, (*n ? *n : 1) * sizeof *v); /* popped by caller */
    for (size_t i = 0; i < *n; i++) {
        lua_rawgeti(L, t, (int)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            kc_lua_errorf(L, "cert: %s[%d]: expected a string", what, (int)i + 1);
        v[i] = lua_tostring(L, -1); /* the list keeps it alive */
        lua_pop(L, 1);
    }
    return v;
}

/* cert{ max_age = 0, poison = {{"usages", {...}}, {"topics", {...}},
 *       {"pathlen", n}}, key = public key bytes } -> mp([max_age, bin(poison), key])
 * Poison entries keep the given order. */
static int l_cert(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_getfield(L, 1, "max_age");
    double max_age = luaL_optnumber(L, -1, 0);
    lua_getfield(L, 1, "key");
    size_t kn;
    const uint8_t *kb = (const uint8_t *)lua_tolstring(L, -1, &kn);
    if (!kb)
        return kc_lua_errorf(L, "cert: key: expected the public key's bytes");
    lua_getfield(L, 1, "poison"); /* 4 */
    size_t np = lua_istable(L, 4) ? lua_objlen(L, 4) : 0;
    if (np > KC_POISON_MAX_ENTRIES)
        return kc_lua_errorf(L, "cert: poison: at most %d entries", KC_POISON_MAX_ENTRIES);
    kc_poison_entry entries[KC_POISON_MAX_ENTRIES];
    for (size_t i = 0; i < np; i++) {
        luaL_checkstack(L, 8, "cert: poison");
        lua_rawgeti(L, 4, (int)i + 1);
        int e = lua_gettop(L);
        lua_rawgeti(L, e, 1);
        lua_rawgeti(L, e, 2);
        const char *name = lua_tostring(L, -2);
        if (!name || (strcmp(name, "usages") && strcmp(name, "topics") && strcmp(name, "pathlen")))
            return kc_lua_errorf(L, "cert: poison[%d]: expected {\"usages\"|\"topics\", {...}} or "
                                 "{\"pathlen\", n}", (int)i + 1);
        memset(&entries[i], 0, sizeof entries[i]);
        entries[i].name = name;
        if (!strcmp(name, "pathlen"))
            entries[i].pathlen = (int64_t)luaL_checkinteger(L, -1);
        else
            entries[i].values = check_strings(L, lua_gettop(L), name, &entries[i].n_values);
        /* leave the entry, its name, list and userdata on the stack: they
         * stay referenced until the certificate is built */
    }
    kc_key key;
    kc_err err;
    if (kc_key_from_bytes(&key, KC_SIGN_PK, kb, kn, &err) != KC_OK)
        return kc_lua_errorf(L, "cert: key: %s", err.msg);
    kc_buf poison = KC_BUF_INIT, out = KC_BUF_INIT;
    kc_pks pks = {false, 1, &key};
    kc_status st = kc_poison_build(entries, np, &poison, &err);
    if (st == KC_OK)
        st = kc_cert_build(max_age, poison.data, poison.len, &pks, NULL, 0, &out, &err);
    kc_key_clear(&key);
    kc_buf_free(&poison);
    if (st != KC_OK) {
        kc_buf_free(&out);
        return kc_lua_error(L, &err);
    }
    push_buf(L, &out);
    return 1;
}

/* rot_entry(public_key_bytes) -> mp([0, bin(0x90), key]) */
static int l_rot_entry(lua_State *L)
{
    size_t n;
    const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 1, &n);
    kc_key key;
    kc_err err;
    if (kc_key_from_bytes(&key, KC_SIGN_PK, p, n, &err) != KC_OK)
        return kc_lua_errorf(L, "rot_entry: not a signing public key: %s", err.msg);
    kc_buf out = KC_BUF_INIT;
    kc_status st = kc_rot_allowlist_entry(&key, &out, &err);
    kc_key_clear(&key);
    if (st != KC_OK) {
        kc_buf_free(&out);
        return kc_lua_error(L, &err);
    }
    push_buf(L, &out);
    return 1;
}

/* cert_keys(cert) -> {public key bytes, ...} of an unsigned certificate or
 * list entry, max_age | nil, message */
static int l_cert_keys(lua_State *L)
{
    size_t n;
    const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 1, &n);
    kc_cert c;
    kc_err err;
    if (kc_cert_parse(&c, p, n, &err) != KC_OK) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_createtable(L, (int)c.key.n, 0);
    for (size_t i = 0; i < c.key.n; i++) {
        kc_buf b = KC_BUF_INIT;
        if (kc_key_bytes(&c.key.keys[i], &b) == KC_OK) {
            lua_pushlstring(L, (const char *)b.data, b.len);
            lua_rawseti(L, -2, (int)i + 1);
        }
        kc_buf_free(&b);
    }
    lua_pushnumber(L, kc_cert_max_age(&c));
    kc_cert_free(&c);
    return 2;
}

/* role_usages(role) -> {usage, ...}, provisioner name | nil, message */
static int l_role_usages(lua_State *L)
{
    kc_role role;
    if (kc_role_parse(luaL_checkstring(L, 1), &role) != KC_OK) {
        lua_pushnil(L);
        lua_pushfstring(L, "role '%s': expected controller, producer, consumer, "
                        "consumer-limited, prodcon or prodcon-limited", lua_tostring(L, 1));
        return 2;
    }
    const char *const *u;
    size_t n = kc_role_usages(role, &u);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, u[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_pushstring(L, kc_provisioner_name(kc_role_provisioner(role)));
    return 2;
}

/* ---- text forms ---------------------------------------------------------------- */

/* unhex(text) / unbase64(text) -> bytes | nil (strict: kc_hex.h) */
static int decode_text(lua_State *L, kc_status (*decode)(const char *, size_t, kc_buf *))
{
    size_t n;
    const char *text = luaL_checklstring(L, 1, &n);
    kc_buf out = KC_BUF_INIT;
    if (decode(text, n, &out) != KC_OK) {
        kc_buf_free(&out);
        lua_pushnil(L);
        return 1;
    }
    push_buf(L, &out);
    return 1;
}
static int l_unhex(lua_State *L) { return decode_text(L, kc_unhex); }
static int l_unbase64(lua_State *L) { return decode_text(L, kc_base64_decode); }

/* ---- the node's .crypto and .seed -------------------------------------------- */

/* Pushes bytes() of public key idx. */
static kc_status push_spk(lua_State *L, kc_cryptokey *ck, size_t idx, kc_err *err)
{
    kc_key k = {0};
    kc_buf b = KC_BUF_INIT;
    kc_status st = kc_cryptokey_get_spk(ck, idx, &k, err);
    if (st == KC_OK && (st = kc_key_bytes(&k, &b)) != KC_OK)
        kc_err_set(err, st, "cryptokey: out of memory");
    if (st == KC_OK)
        lua_pushlstring(L, (const char *)b.data, b.len);
    kc_buf_free(&b);
    kc_key_clear(&k);
    return st;
}

/* cryptokey_keys(path or pkcs11: URI[, keytype]) -> {public key bytes, ...}
 * With keytype the file is created or given a key of that type if needed
 * (as upstream's CryptoKey(path, keytypes=[keytype])) and the keys of that
 * type are listed; without, the file is only read and all usable keys are
 * listed. A token's key is only read. */
static int l_cryptokey_keys(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    kc_cryptokey *ck = NULL;
    kc_err err;
    kc_status st;
    if (!lua_isnoneornil(L, 2)) {
        int kt = (int)luaL_checkinteger(L, 2);
        st = kc_cryptokey_open_ref(&ck, path, &kt, 1, &err);
    } else if (kc_pkcs11_is_uri(path)) {
        st = kc_cryptokey_pkcs11_open(&ck, path, false, &err);
    } else {
        kc_buf b = KC_BUF_INIT;
        st = kc_file_read(path, 1 << 20, &b, &err);
        if (st == KC_OK)
            st = kc_cryptokey_open_bytes(&ck, b.data, b.len, path, NULL, 0, &err);
        kc_buf_free(&b);
    }
    if (st != KC_OK)
        return kc_lua_error(L, &err);
    size_t n = kc_cryptokey_num_spk(ck);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n && st == KC_OK; i++)
        if ((st = push_spk(L, ck, i, &err)) == KC_OK)
            lua_rawseti(L, -2, (int)i + 1);
    kc_cryptokey_close(ck);
    if (st != KC_OK)
        return kc_lua_error(L, &err);
    return 1;
}

/* pkcs11_key(uri[, create]) -> public key bytes of the token's key,
 * created in the token first when create is true. */
static int l_pkcs11_key(lua_State *L)
{
    const char *uri = luaL_checkstring(L, 1);
    kc_cryptokey *ck = NULL;
    kc_err err;
    kc_status st = kc_cryptokey_pkcs11_open(&ck, uri, lua_toboolean(L, 2), &err);
    if (st == KC_OK)
        st = push_spk(L, ck, 0, &err);
    kc_cryptokey_close(ck);
    if (st != KC_OK)
        return kc_lua_error(L, &err);
    return 1;
}

static kc_status read_seed(const char *path, uint64_t *index, uint8_t secret[KC_SECRET_BYTES],
                           kc_err *err)
{
    kc_buf b = KC_BUF_INIT;
    kc_status st = kc_file_read(path, 4096, &b, err);
    if (st == KC_OK)
        st = kc_seed_parse(b.data, b.len, path, index, secret, err);
    kc_buf_free(&b);
    return st;
}

/* seed_init(path) -> created (bool), key index
 * A missing file gets [0, 32 random bytes] (mode 0600); an existing one is
 * checked and rewritten in upstream's encoding, as the tools do. */
static int l_seed_init(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    uint8_t secret[KC_SECRET_BYTES];
    uint64_t index = 0;
    bool created = !kc_file_exists(path);
    kc_err err;
    kc_status st = KC_OK;
    if (created)
        randombytes_buf(secret, sizeof secret);
    else
        st = read_seed(path, &index, secret, &err);
    kc_buf b = KC_BUF_INIT;
    if (st == KC_OK)
        st = kc_seed_encode(index, secret, &b);
    sodium_memzero(secret, sizeof secret);
    if (st == KC_OK)
        st = kc_file_replace(path, b.data, b.len, 0600, &err);
    kc_buf_free(&b);
    if (st != KC_OK)
        return kc_lua_error(L, &err);
    lua_pushboolean(L, created);
    lua_pushnumber(L, (lua_Number)index);
    return 2;
}

/* seed_escrow(path, escrow_public_key_bytes) -> sealed box of the seed's
 * secret for that key (upstream's escrow value), key index */
static int l_seed_escrow(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t n;
    const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 2, &n);
    kc_key rcpt;
    kc_err err;
    if (kc_key_from_bytes(&rcpt, KC_KEM_PK, p, n, &err) != KC_OK)
        return kc_lua_errorf(L, "escrow key: %s", err.msg);
    uint8_t secret[KC_SECRET_BYTES];
    uint64_t index = 0;
    kc_buf out = KC_BUF_INIT;
    kc_status st = read_seed(path, &index, secret, &err);
    if (st == KC_OK)
        st = kc_seal(&rcpt, secret, sizeof secret, &out, &err);
    sodium_memzero(secret, sizeof secret);
    kc_key_clear(&rcpt);
    if (st != KC_OK) {
        kc_buf_free(&out);
        return kc_lua_error(L, &err);
    }
    push_buf(L, &out);
    lua_pushnumber(L, (lua_Number)index);
    return 2;
}

void kc_lua_open_tools(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"public_key", l_signer_public_key}, {"salt", l_signer_salt},
        {"sign", l_signer_sign},             {"secret_hex", l_signer_secret_hex},
        {"close", l_signer_close},           {NULL, NULL},
    };
    static const luaL_Reg meta[] = {{"__gc", l_signer_close}, {NULL, NULL}};
    kc_lua_class_new(L, SIGNER, methods, meta);
    static const luaL_Reg fns[] = {
        {"read_password", l_read_password},
        {"password_rot", l_password_rot},
        {"password_provisioners", l_password_provisioners},
        {"cert", l_cert},
        {"rot_entry", l_rot_entry},
        {"cert_keys", l_cert_keys},
        {"role_usages", l_role_usages},
        {"unhex", l_unhex},
        {"unbase64", l_unbase64},
        {"cryptokey_keys", l_cryptokey_keys},
        {"pkcs11_key", l_pkcs11_key},
        {"seed_init", l_seed_init},
        {"seed_escrow", l_seed_escrow},
        {NULL, NULL},
    };
    luaL_register(L, NULL, fns);
}
