#include "kc_provision.h"

#include <sodium.h>
#include <string.h>

#include "kc_chain.h"
#include "kc_hex.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- derivations ------------------------------------------------------------------ */

void kc_password_key_clear(kc_password_key *k)
{
    kc_key_clear(&k->sk);
    kc_key_clear(&k->pk);
    sodium_memzero(k->salt, sizeof k->salt);
}

static kc_status check_keytype(int keytype, kc_err *err)
{
    if (keytype == KC_KEYTYPE_ED25519)
        return KC_OK;
    if (keytype == KC_KEYTYPE_ED25519_SLHDSA)
        return kc_err_set(err, KC_ERR_UNSUPPORTED,
                          "key type 4 (Ed25519+SLH-DSA-SHAKE-128f) is not supported by this "
                          "classical build; use key type 1 (Ed25519)");
    return kc_err_set(err, KC_ERR_INVALID, "key type %d: expected 1 (Ed25519)", keytype);
}

/* salt = SHA256(prefix || data), without copying data (a password). */
static void salt_of(const void *prefix, size_t prefix_len, const void *data, size_t len,
                    uint8_t salt[KC_PWHASH_SALT_BYTES])
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, prefix, prefix_len);
    crypto_hash_sha256_update(&st, data, len);
    crypto_hash_sha256_final(&st, salt);
    sodium_memzero(&st, sizeof st);
}

static kc_status derive(const char *password, size_t password_len, const char *what,
                        kc_password_key *out, kc_err *err)
{
    uint8_t seed[crypto_sign_SEEDBYTES];
    if (crypto_pwhash_scryptsalsa208sha256(seed, sizeof seed, password, password_len,
                                           out->salt, KC_PWHASH_OPSLIMIT,
                                           (size_t)KC_PWHASH_MEMLIMIT) != 0) {
        sodium_memzero(seed, sizeof seed);
        return kc_err_set(err, KC_ERR_NOMEM, "%s: scrypt needs 16 MiB of memory, which is not available",
                          what);
    }
    kc_status st = kc_sign_keypair_from_seed(&out->pk, &out->sk, seed);
    sodium_memzero(seed, sizeof seed);
    if (st != KC_OK)
        return kc_err_set(err, st, "%s: key derivation failed", what);
    return KC_OK;
}

kc_status kc_password_rot(const char *password, size_t password_len, int keytype,
                          kc_password_key *out, kc_err *err)
{
    memset(out, 0, sizeof *out);
    kc_status st = check_keytype(keytype, err);
    if (st != KC_OK || (st = kc_init() == 0 ? KC_OK : KC_ERR_CRYPTO) != KC_OK)
        return st;
    static const char prefix[] = "Root of Trust";
    salt_of(prefix, sizeof prefix - 1, password, password_len, out->salt);
    st = derive(password, password_len, "root of trust", out, err);
    if (st != KC_OK)
        kc_password_key_clear(out);
    return st;
}

static const char *const provisioner_names[KC_PROVISIONER_COUNT] = {"producer", "consumer",
                                                                    "prodcon"};

const char *kc_provisioner_name(kc_provisioner p)
{
    return (unsigned)p < KC_PROVISIONER_COUNT ? provisioner_names[p] : "?";
}

static bool is_hex_text(const uint8_t *p, size_t n)
{
    if (n % 2)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f') ||
              (p[i] >= 'A' && p[i] <= 'F')))
            return false;
    return true;
}

kc_status kc_password_provisioners(const char *password, size_t password_len,
                                   const uint8_t *rot, size_t rot_len, int keytype,
                                   kc_password_key out[KC_PROVISIONER_COUNT], kc_err *err)
{
    memset(out, 0, sizeof(kc_password_key) * KC_PROVISIONER_COUNT);
    kc_status st = check_keytype(keytype, err);
    if (st != KC_OK || (st = kc_init() == 0 ? KC_OK : KC_ERR_CRYPTO) != KC_OK)
        return st;
    /* upstream tries unhexlify(rot) first and keeps the raw bytes if that fails */
    kc_buf unhexed = KC_BUF_INIT;
    if (is_hex_text(rot, rot_len) &&
        kc_unhex((const char *)rot, rot_len, &unhexed) == KC_OK) {
        rot = unhexed.data;
        rot_len = unhexed.len;
    }
    for (int i = 0; i < KC_PROVISIONER_COUNT && st == KC_OK; i++) {
        const char *name = provisioner_names[i];
        salt_of(name, strlen(name), rot, rot_len, out[i].salt);
        st = derive(password, password_len, name, &out[i], err);
    }
    kc_buf_free(&unhexed);
    if (st != KC_OK)
        for (int i = 0; i < KC_PROVISIONER_COUNT; i++)
            kc_password_key_clear(&out[i]);
    return st;
}

/* ---- roles -------------------------------------------------------------------------- */

static const char *const u_request[] = {"key-encrypt-request"};
static const char *const u_encrypt[] = {"key-encrypt"};
static const char *const u_consumer[] = {"key-encrypt-request", "key-encrypt-subscribe"};
static const char *const u_subscribe[] = {"key-encrypt-subscribe"};
static const char *const u_prodcon[] = {"key-encrypt", "key-encrypt-request",
                                        "key-encrypt-subscribe"};
static const char *const u_prodcon_limited[] = {"key-encrypt", "key-encrypt-subscribe"};

static const struct role_info {
    const char *name;
    kc_provisioner signer;
    const char *const *usages;
    size_t nusages;
} roles[KC_ROLE_COUNT] = {
    [KC_ROLE_CONTROLLER] = {"controller", KC_PROVISIONER_CONSUMER, u_request, COUNT(u_request)},
    [KC_ROLE_PRODUCER] = {"producer", KC_PROVISIONER_PRODUCER, u_encrypt, COUNT(u_encrypt)},
    [KC_ROLE_CONSUMER] = {"consumer", KC_PROVISIONER_CONSUMER, u_consumer, COUNT(u_consumer)},
    [KC_ROLE_CONSUMER_LIMITED] = {"consumer-limited", KC_PROVISIONER_CONSUMER, u_subscribe,
                                  COUNT(u_subscribe)},
    [KC_ROLE_PRODCON] = {"prodcon", KC_PROVISIONER_PRODCON, u_prodcon, COUNT(u_prodcon)},
    [KC_ROLE_PRODCON_LIMITED] = {"prodcon-limited", KC_PROVISIONER_PRODCON, u_prodcon_limited,
                                 COUNT(u_prodcon_limited)},
};

const char *kc_role_name(kc_role r)
{
    return (unsigned)r < KC_ROLE_COUNT ? roles[r].name : "?";
}

kc_status kc_role_parse(const char *name, kc_role *out)
{
    for (int i = 0; i < KC_ROLE_COUNT; i++)
        if (name && strcmp(name, roles[i].name) == 0) {
            *out = (kc_role)i;
            return KC_OK;
        }
    return KC_ERR_INVALID;
}

kc_provisioner kc_role_provisioner(kc_role r)
{
    return roles[(unsigned)r < KC_ROLE_COUNT ? r : KC_ROLE_CONSUMER].signer;
}

size_t kc_role_usages(kc_role r, const char *const **usages)
{
    if ((unsigned)r >= KC_ROLE_COUNT) {
        *usages = NULL;
        return 0;
    }
    *usages = roles[r].usages;
    return roles[r].nusages;
}

size_t kc_provisioner_usages(kc_provisioner p, const char *const **usages)
{
    static const kc_role same_name[KC_PROVISIONER_COUNT] = {KC_ROLE_PRODUCER, KC_ROLE_CONSUMER,
                                                            KC_ROLE_PRODCON};
    if ((unsigned)p >= KC_PROVISIONER_COUNT) {
        *usages = NULL;
        return 0;
    }
    return kc_role_usages(same_name[p], usages);
}

/* ---- certificates ------------------------------------------------------------------------ */

/* mp([max_age, bin(mp(poison)), pk]) with poison [["usages", U]] +
 * [["topics", T]] if T is not empty + [["pathlen", p]] if p != -1, the
 * order upstream's tools write. */
static kc_status cert_content(double max_age, const char *const *usages, size_t nusages,
                              const char *const *topics, size_t ntopics, int pathlen,
                              const kc_key *pk, kc_buf *out, kc_err *err)
{
    kc_poison_entry entries[3];
    size_t n = 0;
    entries[n++] = (kc_poison_entry){.name = "usages", .values = usages, .n_values = nusages};
    if (ntopics > 0)
        entries[n++] = (kc_poison_entry){.name = "topics", .values = topics, .n_values = ntopics};
    if (pathlen != -1)
        entries[n++] = (kc_poison_entry){.name = "pathlen", .pathlen = pathlen};
    kc_buf poison = KC_BUF_INIT;
    kc_status st = kc_poison_build(entries, n, &poison, err);
    if (st == KC_OK)
        st = kc_chain_entry_build(max_age, poison.data, poison.len, pk, out, err);
    kc_buf_free(&poison);
    return st;
}

kc_status kc_provisioner_cert(kc_provisioner p, const kc_key *prov_pk, kc_buf *out, kc_err *err)
{
    const char *const *usages;
    size_t n = kc_provisioner_usages(p, &usages);
    if (n == 0)
        return kc_err_set(err, KC_ERR_INVALID, "provisioner %d: expected producer, consumer or "
                          "prodcon", (int)p);
    return cert_content(0, usages, n, NULL, 0, -1, prov_pk, out, err);
}

kc_status kc_node_cert(kc_role role, double max_age, const char *const *topics, size_t ntopics,
                       int pathlen, const kc_key *node_pk, kc_buf *out, kc_err *err)
{
    const char *const *usages;
    size_t n = kc_role_usages(role, &usages);
    if (n == 0)
        return kc_err_set(err, KC_ERR_INVALID, "role %d: not a node role", (int)role);
    return cert_content(max_age, usages, n, topics, ntopics, pathlen, node_pk, out, err);
}

kc_status kc_rot_allowlist_entry(const kc_key *rot_pk, kc_buf *out, kc_err *err)
{
    static const uint8_t empty_poison = 0x90; /* mp([]) */
    return kc_chain_entry_build(0, &empty_poison, 1, rot_pk, out, err);
}
