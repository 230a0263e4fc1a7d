/* kc_provision.h — password provisioning derivations and the unsigned
 * certificates the provisioning tools write (spec §9.1, §9.2).
 *
 * PasswordROT and PasswordProvisioner derive Ed25519 keys from passwords
 * with crypto_pwhash_scryptsalsa208sha256 (opslimit 524288, memlimit
 * 16 MiB — libsodium's INTERACTIVE values, as upstream). Intermediate seeds
 * and the buffers that held passwords are wiped; the caller owns (and
 * should wipe) the password it passes in. Nothing here logs.
 *
 * Certificates are returned unsigned as msgpack bytes (built with kc_chain's
 * builders); sign them with kc_cert_sign. */
#ifndef KC_PROVISION_H
#define KC_PROVISION_H

#include <stddef.h>
#include <stdint.h>

#include "kc_buf.h"
#include "kc_err.h"
#include "kc_keys.h"

#define KC_PWHASH_OPSLIMIT 524288ULL
#define KC_PWHASH_MEMLIMIT 16777216ULL
#define KC_PWHASH_SALT_BYTES 32

/* tools/simple-provision.py's node-certificate lifetime, also written as
 * crypto.maxage: 10 years in seconds. */
#define KC_SIMPLE_PROVISION_LIFETIME 316224000

/* Upstream's key types: 1 = Ed25519; 4 = Ed25519 + SLH-DSA-SHAKE-128f
 * (KC_ERR_UNSUPPORTED in this classical build). */
#define KC_KEYTYPE_ED25519 1
#define KC_KEYTYPE_ED25519_SLHDSA 4

/* ---- derivations ------------------------------------------------------------ */

typedef struct kc_password_key {
    uint8_t salt[KC_PWHASH_SALT_BYTES];  /* public: upstream prints it */
    kc_key pk;
    kc_key sk;                           /* sk.x = seed || pk */
} kc_password_key;

/* Wipes the secret key. */
void kc_password_key_clear(kc_password_key *k);

/* PasswordROT: salt = SHA256("Root of Trust" || password). */
kc_status kc_password_rot(const char *password, size_t password_len, int keytype,
                          kc_password_key *out, kc_err *err);

typedef enum kc_provisioner {
    KC_PROVISIONER_PRODUCER = 0,
    KC_PROVISIONER_CONSUMER,
    KC_PROVISIONER_PRODCON,
    KC_PROVISIONER_COUNT
} kc_provisioner;

const char *kc_provisioner_name(kc_provisioner p);

/* PasswordProvisioner: for each provisioner name, salt = SHA256(name ||
 * rot) where rot is the ROT's bytes() form — or, as upstream, the bytes a
 * hex text decodes to when rot is valid hex. */
kc_status kc_password_provisioners(const char *password, size_t password_len,
                                   const uint8_t *rot, size_t rot_len, int keytype,
                                   kc_password_key out[KC_PROVISIONER_COUNT], kc_err *err);

/* ---- roles and certificates --------------------------------------------------------- */

typedef enum kc_role {
    KC_ROLE_CONTROLLER = 0,
    KC_ROLE_PRODUCER,
    KC_ROLE_CONSUMER,
    KC_ROLE_CONSUMER_LIMITED,
    KC_ROLE_PRODCON,
    KC_ROLE_PRODCON_LIMITED,
    KC_ROLE_COUNT
} kc_role;

/* "controller", "producer", "consumer", "consumer-limited", "prodcon",
 * "prodcon-limited" (upstream's names). */
const char *kc_role_name(kc_role r);
kc_status kc_role_parse(const char *name, kc_role *out);
/* The provisioner key that signs this role's node certificates. */
kc_provisioner kc_role_provisioner(kc_role r);
/* The usages of the role's node certificate; returns their count. */
size_t kc_role_usages(kc_role r, const char *const **usages);
/* The usages of a provisioner certificate (those of the role of that name). */
size_t kc_provisioner_usages(kc_provisioner p, const char *const **usages);

/* The provisioner certificate simple-provision has the ROT sign:
 * mp([0, bin(mp([["usages", U]])), prov_pk]) with U the usages of the role
 * of the same name (no expiry, topics or pathlen). */
kc_status kc_provisioner_cert(kc_provisioner p, const kc_key *prov_pk, kc_buf *out,
                              kc_err *err);

/* A node certificate mp([max_age, bin(mp(poison)), node_pk]) with poison
 * [["usages", role usages]] + [["topics", T]] if T is not empty +
 * [["pathlen", p]] if p != -1; signed later by kc_role_provisioner(role).
 * max_age 0 (never expires) is packed as the integer 0, any other value as
 * a float64, as upstream's tools do. */
kc_status kc_node_cert(kc_role role, double max_age, const char *const *topics,
                       size_t ntopics, int pathlen, const kc_key *node_pk, kc_buf *out,
                       kc_err *err);

/* The allowlist entry of a root of trust: mp([0, bin(0x90), pk]). (The
 * temporary root's entry is kc_chain_temporary_rot_entry.) */
kc_status kc_rot_allowlist_entry(const kc_key *rot_pk, kc_buf *out, kc_err *err);

#endif
