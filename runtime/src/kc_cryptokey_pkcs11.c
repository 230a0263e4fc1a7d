#include "kc_cryptokey_pkcs11.h"

#include <errno.h>
#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "kc_ephemeral.h"
#include "kc_log.h"

#define LOGGER "kafkacrypto.cryptokey"
#define EK_BYTES crypto_secretbox_KEYBYTES
#define NONCE_BYTES crypto_secretbox_NONCEBYTES
#define WRAP_OVERHEAD (NONCE_BYTES + crypto_secretbox_MACBYTES)
#define PIN_MAX 256
#define MAX_SLOTS 64

/* Signed once per open to derive ek; never signed for anyone else. Starts
 * with a NUL byte so it is no msgpack value the node would sign. */
static const uint8_t EK_CONTEXT[] = "\0kafkacrypto pkcs11 opaque-value key v1\0";
#define EK_CONTEXT_LEN (sizeof EK_CONTEXT - 1)

/* DER of the Ed25519 curve: the OID 1.3.101.112, or the printable string
 * PKCS#11 3.0 also allows (some tokens know only one of them). */
static const uint8_t ED25519_OID[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
static const uint8_t ED25519_NAME[] = {0x13, 0x0c, 'e', 'd', 'w', 'a', 'r', 'd', 's',
                                       '2',  '5',  '5', '1', '9'};

typedef struct ck_p11 {
    pthread_mutex_t lock;
    char *shown;              /* the URI without any PIN, for messages */
    P11KitUri *uri;
    CK_FUNCTION_LIST *m;
    bool initialized;
    char *pin;                /* sodium_malloc'd, NUL-terminated; NULL: no login */
    CK_SESSION_HANDLE sess;
    bool have_session;
    CK_OBJECT_HANDLE priv;
    kc_key spk;               /* the token's public key, read at open */
    bool have_spk;
    uint8_t *ek;              /* sodium_malloc'd, noaccess between uses */
    kc_ephemeral *eph;
    bool down;                /* the token is gone (logged once) */
} ck_p11;

bool kc_pkcs11_is_uri(const char *s)
{
    return s && strncasecmp(s, "pkcs11:", 7) == 0;
}

/* A path or query attribute "pin-value" (with or without a value). */
static bool is_pin_value(const char *p, size_t n)
{
    return n >= 9 && strncasecmp(p, "pin-value", 9) == 0 && (n == 9 || p[9] == '=');
}

char *kc_pkcs11_uri_shown(const char *uri)
{
    char *out = malloc(strlen(uri) + 1);
    if (!out)
        return NULL;
    size_t len = 0;
    char sep = 0;           /* the separator before the current attribute */
    bool query_open = false; /* a '?' not written yet: its first attribute was dropped */
    for (const char *p = uri;;) {
        if (sep == 0 && kc_pkcs11_is_uri(p)) {
            memcpy(out, p, 7);
            len = 7;
            p += 7;
        }
        size_t n = strcspn(p, ";?&");
        if (is_pin_value(p, n)) {
            query_open |= sep == '?';
        } else {
            if (sep)
                out[len++] = query_open && sep == '&' ? '?' : sep;
            query_open = false;
            memcpy(out + len, p, n);
            len += n;
        }
        p += n;
        if (!*p)
            break;
        sep = *p++;
    }
    out[len] = 0;
    return out;
}

/* CKR_* name and number for messages. */
static const char *rv_str(CK_RV rv, char *buf, size_t cap)
{
    const char *s = p11_kit_strerror(rv);
    snprintf(buf, cap, "%s (0x%lx)", s ? s : "unknown error", (unsigned long)rv);
    return buf;
}

/* Errors that mean the session or the token went away: worth a re-open. */
static bool token_gone(CK_RV rv)
{
    return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
           rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_DEVICE_REMOVED ||
           rv == CKR_TOKEN_NOT_RECOGNIZED || rv == CKR_DEVICE_ERROR ||
           rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_KEY_HANDLE_INVALID ||
           rv == CKR_OBJECT_HANDLE_INVALID || rv == CKR_SLOT_ID_INVALID;
}

static void session_close(ck_p11 *k)
{
    if (k->have_session)
        k->m->C_CloseSession(k->sess);
    k->have_session = false;
}

static void ck_p11_free(ck_p11 *k)
{
    if (!k)
        return;
    kc_ephemeral_free(k->eph);
    if (k->m) {
        session_close(k);
        if (k->initialized)
            p11_kit_module_finalize(k->m);
        p11_kit_module_release(k->m);
    }
    if (k->uri)
        p11_kit_uri_free(k->uri);
    if (k->pin)
        sodium_free(k->pin);
    if (k->ek)
        sodium_free(k->ek);
    kc_key_clear(&k->spk);
    free(k->shown);
    pthread_mutex_destroy(&k->lock);
    free(k);
}

/* ---- opening: module, PIN, token, key --------------------------------------- */

static kc_status load_module(ck_p11 *k, kc_err *err)
{
    const char *path = p11_kit_uri_get_module_path(k->uri);
    if (!path)
        return kc_err_set(err, KC_ERR_INVALID,
                          "pkcs11 URI %s: names no module: add ?module-path=/path/to/module.so",
                          k->shown);
    if (access(path, R_OK) != 0)
        return kc_err_set(err, KC_ERR_NOTFOUND, "pkcs11 URI %s: module %s: %s", k->shown, path,
                          strerror(errno));
    k->m = p11_kit_module_load(path, 0);
    if (!k->m) {
        const char *why = p11_kit_message();
        return kc_err_set(err, KC_ERR_IO, "pkcs11 URI %s: cannot load module %s: %s", k->shown,
                          path, why ? why : "unknown error");
    }
    CK_RV rv = p11_kit_module_initialize(k->m);
    char b[96];
    if (rv != CKR_OK)
        return kc_err_set(err, KC_ERR_IO, "pkcs11 URI %s: module %s does not start: %s",
                          k->shown, path, rv_str(rv, b, sizeof b));
    k->initialized = true;
    return KC_OK;
}

/* pin-source=file:PATH (or a bare PATH), first line; else the environment. */
static kc_status load_pin(ck_p11 *k, kc_err *err)
{
    if (p11_kit_uri_get_pin_value(k->uri))
        return kc_err_set(err, KC_ERR_INVALID,
                          "pkcs11 URI %s: a pin-value in the URI is refused (URIs end up on "
                          "command lines and in NODE.config): use pin-source=file:PATH or $%s",
                          k->shown, KC_PKCS11_PIN_ENV);
    const char *src = p11_kit_uri_get_pin_source(k->uri);
    const char *env = getenv(KC_PKCS11_PIN_ENV);
    if (!src && !env)
        return KC_OK;
    k->pin = sodium_malloc(PIN_MAX + 1);
    if (!k->pin)
        return kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    memset(k->pin, 0, PIN_MAX + 1);
    if (!src) {
        if (strlen(env) > PIN_MAX)
            return kc_err_set(err, KC_ERR_INVALID, "pkcs11 URI %s: $%s: longer than %d "
                              "characters", k->shown, KC_PKCS11_PIN_ENV, PIN_MAX);
        memcpy(k->pin, env, strlen(env));
        return KC_OK;
    }
    const char *path = strncmp(src, "file:", 5) == 0 ? src + 5 : src;
    FILE *f = fopen(path, "r");
    if (!f)
        return kc_err_set(err, KC_ERR_NOTFOUND, "pkcs11 URI %s: pin-source %s: %s", k->shown,
                          path, strerror(errno));
    bool ok = fgets(k->pin, PIN_MAX + 1, f) != NULL;
    fclose(f);
    k->pin[strcspn(k->pin, "\r\n")] = 0;
    if (!ok || !*k->pin)
        return kc_err_set(err, KC_ERR_INVALID, "pkcs11 URI %s: pin-source %s: empty", k->shown,
                          path);
    return KC_OK;
}

/* The one token the URI matches (with a present token). */
static kc_status find_slot(ck_p11 *k, CK_SLOT_ID *slot, kc_err *err)
{
    CK_SLOT_ID slots[MAX_SLOTS];
    CK_ULONG n = MAX_SLOTS;
    char b[96];
    CK_RV rv = k->m->C_GetSlotList(CK_TRUE, slots, &n);
    if (rv != CKR_OK)
        return kc_err_set(err, KC_ERR_IO, "pkcs11 URI %s: cannot list the slots: %s", k->shown,
                          rv_str(rv, b, sizeof b));
    CK_SLOT_ID want = p11_kit_uri_get_slot_id(k->uri);
    size_t found = 0;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        if (want != (CK_SLOT_ID)-1 && slots[i] != want)
            continue;
        if (k->m->C_GetTokenInfo(slots[i], &ti) != CKR_OK ||
            !p11_kit_uri_match_token_info(k->uri, &ti))
            continue;
        if (found++ == 0)
            *slot = slots[i];
    }
    if (found == 0)
        return kc_err_set(err, KC_ERR_NOTFOUND, "pkcs11 URI %s: no token present matches",
                          k->shown);
    if (found > 1)
        return kc_err_set(err, KC_ERR_INVALID,
                          "pkcs11 URI %s: %zu tokens match: add token= or serial=", k->shown,
                          found);
    return KC_OK;
}

static kc_status check_mechanism(ck_p11 *k, CK_SLOT_ID slot, CK_MECHANISM_TYPE mech,
                                 CK_FLAGS need, const char *name, kc_err *err)
{
    CK_MECHANISM_INFO mi;
    CK_RV rv = k->m->C_GetMechanismInfo(slot, mech, &mi);
    if (rv != CKR_OK || (mi.ulMaxKeySize && mi.ulMaxKeySize < 255) || !(mi.flags & need))
        return kc_err_set(err, KC_ERR_UNSUPPORTED,
                          "pkcs11 URI %s: the token does not offer %s (PKCS#11 3.0 Ed25519)",
                          k->shown, name);
    return KC_OK;
}

static kc_status open_session(ck_p11 *k, CK_SLOT_ID slot, bool rw, kc_err *err)
{
    char b[96];
    CK_RV rv = k->m->C_OpenSession(slot, CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0), NULL,
                                   NULL, &k->sess);
    if (rv != CKR_OK)
        return kc_err_set(err, KC_ERR_IO, "pkcs11 URI %s: cannot open a session: %s", k->shown,
                          rv_str(rv, b, sizeof b));
    k->have_session = true;
    if (!k->pin) {
        CK_TOKEN_INFO ti;
        if (k->m->C_GetTokenInfo(slot, &ti) == CKR_OK && (ti.flags & CKF_LOGIN_REQUIRED))
            return kc_err_set(err, KC_ERR_DENIED,
                              "pkcs11 URI %s: the token needs a PIN: add "
                              "pin-source=file:PATH to the URI or set $%s",
                              k->shown, KC_PKCS11_PIN_ENV);
        return KC_OK;
    }
    rv = k->m->C_Login(k->sess, CKU_USER, (CK_UTF8CHAR *)k->pin, strlen(k->pin));
    if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN)
        return KC_OK;
    if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE)
        return kc_err_set(err, KC_ERR_DENIED, "pkcs11 URI %s: the token refused the PIN: %s",
                          k->shown, rv_str(rv, b, sizeof b));
    return kc_err_set(err, KC_ERR_DENIED, "pkcs11 URI %s: cannot log in: %s", k->shown,
                      rv_str(rv, b, sizeof b));
}

/* Objects of class cls and type EC_EDWARDS with the URI's label and id
 * (or the given id). Returns the count; up to cap handles in out. */
static CK_RV find(ck_p11 *k, CK_OBJECT_CLASS cls, const CK_ATTRIBUTE *id,
                  CK_OBJECT_HANDLE *out, CK_ULONG cap, CK_ULONG *count)
{
    CK_KEY_TYPE kt = CKK_EC_EDWARDS;
    CK_ATTRIBUTE tmpl[4] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_KEY_TYPE, &kt, sizeof kt}};
    CK_ULONG nt = 2;
    CK_ATTRIBUTE *label = p11_kit_uri_get_attribute(k->uri, CKA_LABEL);
    CK_ATTRIBUTE *uid = id ? (CK_ATTRIBUTE *)id : p11_kit_uri_get_attribute(k->uri, CKA_ID);
    if (label)
        tmpl[nt++] = *label;
    if (uid && uid->ulValueLen)
        tmpl[nt++] = *uid;
    *count = 0;
    CK_RV rv = k->m->C_FindObjectsInit(k->sess, tmpl, nt);
    if (rv != CKR_OK)
        return rv;
    rv = k->m->C_FindObjects(k->sess, out, cap, count);
    k->m->C_FindObjectsFinal(k->sess);
    return rv;
}

/* CKA_EC_POINT: the DER OCTET STRING of the 32 bytes (PKCS#11 3.0), or the
 * bare 32 bytes that some tokens return. */
static bool ec_point_key(const uint8_t *p, size_t n, kc_key *out)
{
    if (n == 34 && p[0] == 0x04 && p[1] == 32)
        p += 2, n -= 2;
    if (n != KC_SIGN_PK_BYTES)
        return false;
    memset(out, 0, sizeof *out);
    out->kind = KC_SIGN_PK;
    out->version = 1;
    memcpy(out->x, p, n);
    out->x_len = n;
    return true;
}

/* The public key object paired with the private key: same CKA_ID (or the
 * URI's label when the key has no id). */
static kc_status read_public(ck_p11 *k, kc_key *pk, kc_err *err)
{
    uint8_t idb[256];
    CK_ATTRIBUTE id = {CKA_ID, idb, sizeof idb};
    if (k->m->C_GetAttributeValue(k->sess, k->priv, &id, 1) != CKR_OK ||
        id.ulValueLen == CK_UNAVAILABLE_INFORMATION)
        id.ulValueLen = 0;
    CK_OBJECT_HANDLE h[2];
    CK_ULONG n;
    char b[96];
    CK_RV rv = find(k, CKO_PUBLIC_KEY, id.ulValueLen ? &id : NULL, h, 2, &n);
    if (rv != CKR_OK)
        return kc_err_set(err, KC_ERR_IO, "pkcs11 URI %s: cannot search the token: %s",
                          k->shown, rv_str(rv, b, sizeof b));
    if (n != 1)
        return kc_err_set(err, KC_ERR_NOTFOUND,
                          "pkcs11 URI %s: %s public key object pairs with the private key "
                          "(same id): cannot read the public key",
                          k->shown, n ? "more than one" : "no");
    uint8_t pt[64];
    CK_ATTRIBUTE a = {CKA_EC_POINT, pt, sizeof pt};
    rv = k->m->C_GetAttributeValue(k->sess, h[0], &a, 1);
    if (rv != CKR_OK || !ec_point_key(pt, a.ulValueLen, pk))
        return kc_err_set(err, KC_ERR_INVALID,
                          "pkcs11 URI %s: the public key's CKA_EC_POINT is not an Ed25519 key",
                          k->shown);
    return KC_OK;
}

static kc_status generate(ck_p11 *k, kc_err *err)
{
    CK_ATTRIBUTE *label = p11_kit_uri_get_attribute(k->uri, CKA_LABEL);
    CK_ATTRIBUTE *id = p11_kit_uri_get_attribute(k->uri, CKA_ID);
    if (!label && !id)
        return kc_err_set(err, KC_ERR_INVALID,
                          "pkcs11 URI %s: creating a key needs object= or id= in the URI, so "
                          "that the URI names it afterwards", k->shown);
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_MECHANISM mech = {CKM_EC_EDWARDS_KEY_PAIR_GEN, NULL, 0};
    CK_RV rv = CKR_GENERAL_ERROR;
    for (int form = 0; form < 2; form++) {
        CK_ATTRIBUTE pub[5] = {
            {CKA_TOKEN, &yes, sizeof yes},
            {CKA_VERIFY, &yes, sizeof yes},
            {CKA_EC_PARAMS, (void *)(form ? ED25519_NAME : ED25519_OID),
             form ? sizeof ED25519_NAME : sizeof ED25519_OID},
        };
        CK_ATTRIBUTE priv[8] = {
            {CKA_TOKEN, &yes, sizeof yes},     {CKA_PRIVATE, &yes, sizeof yes},
            {CKA_SENSITIVE, &yes, sizeof yes}, {CKA_EXTRACTABLE, &no, sizeof no},
            {CKA_SIGN, &yes, sizeof yes},
        };
        CK_ULONG npub = 3, npriv = 5;
        if (label)
            pub[npub++] = priv[npriv++] = *label;
        if (id)
            pub[npub++] = priv[npriv++] = *id;
        CK_OBJECT_HANDLE hpub, hpriv;
        rv = k->m->C_GenerateKeyPair(k->sess, &mech, pub, npub, priv, npriv, &hpub, &hpriv);
        if (rv != CKR_ATTRIBUTE_VALUE_INVALID && rv != CKR_CURVE_NOT_SUPPORTED &&
            rv != CKR_DOMAIN_PARAMS_INVALID)
            break;
    }
    char b[96];
    if (rv != CKR_OK)
        return kc_err_set(err, KC_ERR_IO, "pkcs11 URI %s: cannot create an Ed25519 key: %s",
                          k->shown, rv_str(rv, b, sizeof b));
    kc_log(KC_LOG_WARNING, LOGGER, "Created an Ed25519 key in the token: %s", k->shown);
    return KC_OK;
}

/* Finds the token, logs in, finds (or creates) the key and reads its public
 * key. On a re-open the key must be the one read at the first open. */
static kc_status connect_token(ck_p11 *k, bool create, kc_err *err)
{
    CK_SLOT_ID slot = 0;
    kc_status st = find_slot(k, &slot, err);
    if (st == KC_OK)
        st = check_mechanism(k, slot, CKM_EDDSA, CKF_SIGN, "CKM_EDDSA signing", err);
    if (st == KC_OK && create)
        st = check_mechanism(k, slot, CKM_EC_EDWARDS_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR,
                             "CKM_EC_EDWARDS_KEY_PAIR_GEN", err);
    if (st == KC_OK)
        st = open_session(k, slot, create, err);
    CK_OBJECT_HANDLE h[2];
    CK_ULONG n = 0;
    char b[96];
    CK_RV rv = CKR_OK;
    if (st == KC_OK && (rv = find(k, CKO_PRIVATE_KEY, NULL, h, 2, &n)) != CKR_OK)
        st = kc_err_set(err, KC_ERR_IO, "pkcs11 URI %s: cannot search the token: %s", k->shown,
                        rv_str(rv, b, sizeof b));
    if (st == KC_OK && create) {
        if (n)
            st = kc_err_set(err, KC_ERR_INVALID,
                            "pkcs11 URI %s: the token already holds such a key: use it "
                            "(without --pkcs11-create) or name another", k->shown);
        else if ((st = generate(k, err)) == KC_OK &&
                 (rv = find(k, CKO_PRIVATE_KEY, NULL, h, 2, &n)) != CKR_OK)
            st = kc_err_set(err, KC_ERR_IO, "pkcs11 URI %s: cannot search the token: %s",
                            k->shown, rv_str(rv, b, sizeof b));
    }
    if (st == KC_OK && n == 0)
        st = kc_err_set(err, KC_ERR_NOTFOUND,
                        "pkcs11 URI %s: no Ed25519 private key (CKK_EC_EDWARDS) matches", k->shown);
    if (st == KC_OK && n > 1)
        st = kc_err_set(err, KC_ERR_INVALID,
                        "pkcs11 URI %s: more than one Ed25519 private key matches: add id= or "
                        "object=", k->shown);
    kc_key pk = {0};
    if (st == KC_OK) {
        k->priv = h[0];
        st = read_public(k, &pk, err);
    }
    if (st == KC_OK && k->have_spk && sodium_memcmp(pk.x, k->spk.x, KC_SIGN_PK_BYTES) != 0)
        st = kc_err_set(err, KC_ERR_DENIED,
                        "pkcs11 URI %s: the token now holds a different key than at start",
                        k->shown);
    if (st == KC_OK && !k->have_spk) {
        k->spk = pk;
        k->have_spk = true;
        CK_BBOOL extractable = CK_TRUE, sensitive = CK_FALSE;
        CK_ATTRIBUTE a[2] = {{CKA_EXTRACTABLE, &extractable, sizeof extractable},
                             {CKA_SENSITIVE, &sensitive, sizeof sensitive}};
        if (k->m->C_GetAttributeValue(k->sess, k->priv, a, 2) == CKR_OK &&
            (extractable || !sensitive))
            kc_log(KC_LOG_WARNING, LOGGER,
                   "The private key of %s can leave the token (CKA_EXTRACTABLE or not "
                   "CKA_SENSITIVE); create keys with --pkcs11-create to keep them in", k->shown);
    }
    if (st != KC_OK)
        session_close(k);
    return st;
}

/* ---- operations ------------------------------------------------------------------ */

/* One signature with the session as it is. */
static CK_RV sign_raw(ck_p11 *k, const uint8_t *m, size_t n, uint8_t sig[KC_SIGNATURE_BYTES])
{
    CK_MECHANISM mech = {CKM_EDDSA, NULL, 0};
    CK_RV rv = k->m->C_SignInit(k->sess, &mech, k->priv);
    if (rv != CKR_OK)
        return rv;
    CK_ULONG len = KC_SIGNATURE_BYTES;
    rv = k->m->C_Sign(k->sess, (CK_BYTE *)m, n, sig, &len);
    if (rv == CKR_OK && len != KC_SIGNATURE_BYTES)
        rv = CKR_GENERAL_ERROR;
    return rv;
}

/* Signs, re-opening the session once when the token went away and came
 * back. Called with the lock held. */
static kc_status sign_locked(ck_p11 *k, const uint8_t *m, size_t n,
                             uint8_t sig[KC_SIGNATURE_BYTES], kc_err *err)
{
    char b[96];
    CK_RV rv = k->have_session ? sign_raw(k, m, n, sig) : CKR_SESSION_HANDLE_INVALID;
    if (rv != CKR_OK && token_gone(rv)) {
        session_close(k);
        kc_err cerr;
        if (connect_token(k, false, &cerr) != KC_OK) {
            if (!k->down)
                kc_log(KC_LOG_ERROR, LOGGER, "Token gone, not signing until it returns: %s",
                       cerr.msg);
            k->down = true;
            return kc_err_set(err, KC_ERR_STATE, "%s", cerr.msg);
        }
        rv = sign_raw(k, m, n, sig);
    }
    if (rv != CKR_OK) {
        if (!k->down)
            kc_log(KC_LOG_ERROR, LOGGER, "Signing with %s failed: %s", k->shown,
                   rv_str(rv, b, sizeof b));
        k->down = true;
        return kc_err_set(err, KC_ERR_STATE, "pkcs11 URI %s: signing failed: %s", k->shown,
                          rv_str(rv, b, sizeof b));
    }
    if (k->down)
        kc_log(KC_LOG_WARNING, LOGGER, "Token back, signing again: %s", k->shown);
    k->down = false;
    return KC_OK;
}

static size_t p_num_spk(void *self)
{
    (void)self;
    return 1;
}

static kc_status p_spk(void *self, size_t idx, kc_key *out)
{
    return kc_key_copy(out, &((ck_p11 *)self)->spk);
}

static kc_status p_sign(void *self, size_t idx, const uint8_t *m, size_t n, kc_buf *out,
                        kc_err *err)
{
    ck_p11 *k = self;
    if (n >= EK_CONTEXT_LEN && memcmp(m, EK_CONTEXT, EK_CONTEXT_LEN) == 0)
        return kc_err_set(err, KC_ERR_DENIED,
                          "pkcs11 URI %s: refusing to sign the opaque-value key's context",
                          k->shown);
    if (n > SIZE_MAX - KC_SIGNATURE_BYTES || kc_buf_reserve(out, KC_SIGNATURE_BYTES + n) != KC_OK)
        return kc_err_set(err, KC_ERR_NOMEM, "cryptokey: out of memory");
    pthread_mutex_lock(&k->lock);
    kc_status st = sign_locked(k, m, n, out->data, err);
    pthread_mutex_unlock(&k->lock);
    if (st != KC_OK)
        return st;
    memcpy(out->data + KC_SIGNATURE_BYTES, m, n);
    out->len = KC_SIGNATURE_BYTES + n;
    return KC_OK;
}

static kc_status p_get_epks(void *self, const char *topic, const char *usage, kc_epks *out,
                            kc_err *err)
{
    return kc_ephemeral_get_epks(((ck_p11 *)self)->eph, topic, usage, out, err);
}

static kc_status p_use_epks(void *self, const char *topic, const char *usage,
                            const kc_key *peers, size_t npeers, bool clear,
                            kc_kem_results *out, kc_err *err)
{
    return kc_ephemeral_use_epks(((ck_p11 *)self)->eph, topic, usage, peers, npeers, clear, out,
                                 err);
}

static kc_status p_wrap(void *self, const uint8_t *p, size_t n, kc_buf *out, kc_err *err)
{
    ck_p11 *k = self;
    pthread_mutex_lock(&k->lock);
    sodium_mprotect_readonly(k->ek);
    kc_status st = kc_cryptokey_secretbox_wrap(k->ek, p, n, out, err);
    sodium_mprotect_noaccess(k->ek);
    pthread_mutex_unlock(&k->lock);
    return st;
}

static kc_status p_unwrap(void *self, const uint8_t *c, size_t n, kc_buf *out)
{
    ck_p11 *k = self;
    pthread_mutex_lock(&k->lock);
    sodium_mprotect_readonly(k->ek);
    kc_status st = kc_cryptokey_secretbox_unwrap(k->ek, c, n, out);
    sodium_mprotect_noaccess(k->ek);
    pthread_mutex_unlock(&k->lock);
    return st;
}

static size_t p_ephemeral_versions(void *self, int *out, size_t cap)
{
    (void)self;
    if (cap)
        out[0] = 1;
    return 1;
}

static bool p_legacy(void *self)
{
    (void)self;
    return false;
}

static void p_close(void *self)
{
    ck_p11_free(self);
}

static const kc_cryptokey_ops pkcs11_ops = {
    .name = "pkcs11",
    .num_spk = p_num_spk,
    .spk = p_spk,
    .sign = p_sign,
    .get_epks = p_get_epks,
    .use_epks = p_use_epks,
    .wrap = p_wrap,
    .unwrap = p_unwrap,
    .ephemeral_versions = p_ephemeral_versions,
    .legacy = p_legacy,
    .close = p_close,
};

/* ek = BLAKE2b-256(signature over context || public key). */
static kc_status derive_ek(ck_p11 *k, kc_err *err)
{
    uint8_t msg[EK_CONTEXT_LEN + KC_SIGN_PK_BYTES], sig[KC_SIGNATURE_BYTES];
    memcpy(msg, EK_CONTEXT, EK_CONTEXT_LEN);
    memcpy(msg + EK_CONTEXT_LEN, k->spk.x, KC_SIGN_PK_BYTES);
    char b[96];
    CK_RV rv = sign_raw(k, msg, sizeof msg, sig);
    if (rv != CKR_OK)
        return kc_err_set(err, rv == CKR_MECHANISM_INVALID ? KC_ERR_UNSUPPORTED : KC_ERR_IO,
                          "pkcs11 URI %s: cannot sign with the key: %s", k->shown,
                          rv_str(rv, b, sizeof b));
    if (!(k->ek = sodium_malloc(EK_BYTES))) {
        sodium_memzero(sig, sizeof sig);
        return kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    }
    crypto_generichash(k->ek, EK_BYTES, sig, sizeof sig, NULL, 0);
    sodium_memzero(sig, sizeof sig);
    sodium_mprotect_noaccess(k->ek);
    return KC_OK;
}

kc_status kc_cryptokey_pkcs11_open(kc_cryptokey **out, const char *uri, bool create,
                                   kc_err *err)
{
    *out = NULL;
    if (!kc_pkcs11_is_uri(uri))
        return kc_err_set(err, KC_ERR_INVALID, "cryptokey: expected a pkcs11: URI");
    if (kc_init() != 0)
        return kc_err_set(err, KC_ERR_CRYPTO, "cryptokey: libsodium failed to start");
    ck_p11 *k = calloc(1, sizeof *k);
    if (!k)
        return kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&k->lock, NULL);
    kc_status st = KC_OK;
    if (!(k->shown = kc_pkcs11_uri_shown(uri)) || !(k->uri = p11_kit_uri_new()))
        st = kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    int rc = st == KC_OK ? p11_kit_uri_parse(uri, P11_KIT_URI_FOR_ANY, k->uri) : P11_KIT_URI_OK;
    if (rc != P11_KIT_URI_OK)
        st = kc_err_set(err, KC_ERR_INVALID, "pkcs11 URI %s: %s", k->shown,
                        p11_kit_uri_message(rc));
    if (st == KC_OK)
        st = load_pin(k, err);
    if (st == KC_OK)
        st = load_module(k, err);
    if (st == KC_OK)
        st = connect_token(k, create, err);
    if (st == KC_OK)
        st = derive_ek(k, err);
    if (st == KC_OK) {
        static const int v1[] = {1};
        st = kc_ephemeral_new(&k->eph, v1, 1, false, err);
    }
    if (st != KC_OK) {
        ck_p11_free(k);
        return st;
    }
    return kc_cryptokey_new(out, &pkcs11_ops, k, err);
}
