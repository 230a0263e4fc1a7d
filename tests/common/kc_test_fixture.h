/* kc_test_fixture.h — the set-up the exchange and node tests share: a test
 * root of trust with a provisioner, exchange parties held in memory, and
 * provisioned node directories. Keys come from labels, so every run uses
 * the same ones. A fixture that cannot be made aborts the program with the
 * reason: that is a bug in the test, not a result. */
#ifndef KC_TEST_FIXTURE_H
#define KC_TEST_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>

#include "kc_cryptokey.h"
#include "kc_exchange.h"
#include "kc_keys.h"
#include "kc_provision.h"

/* The Ed25519 pair whose seed is sha256(label). */
void tc_seeded(kc_key *pk, kc_key *sk, const char *label);

/* A root of trust and a PRODCON provisioner (the ROT signs its cert). */
typedef struct tc_pki {
    kc_key rot_pk, rot_sk, prov_pk, prov_sk;
    kc_buf rot_entry; /* the allowlist entry of rot_pk (empty poison) */
} tc_pki;

void tc_pki_init(tc_pki *pki, const char *rot_label, const char *prov_label);
void tc_pki_clear(tc_pki *pki);

/* mp([bin(ROT-signed provisioner cert), bin(provisioner-signed node cert)]):
 * pk's chain for role on root (NULL: no topic), max_age 0 for no expiry. */
kc_buf tc_chain(const tc_pki *pki, kc_role role, double max_age, const char *root,
                const kc_key *pk);

/* An exchange party: an in-memory version-2 cryptokey (keys from
 * "LABEL/0", "LABEL/1"; exchange key {1}) and an exchange that trusts the
 * PKI's root, with a role chain for each key unless role is -1. */
#define TC_PARTY_KEYS 2
typedef struct tc_party {
    kc_key pk[TC_PARTY_KEYS], sk[TC_PARTY_KEYS];
    size_t nkeys;
    kc_cryptokey *ck;
    kc_exchange *x;
} tc_party;

typedef struct tc_party_options {
    int role;             /* a kc_role, or -1: unprovisioned */
    const char *root;     /* of the chains; NULL: no topic */
    double max_age;       /* of the chains; 0: never expires */
    size_t nkeys;         /* 1 to TC_PARTY_KEYS; 0 means 1 */
    bool legacy;          /* the cryptokey's "use legacy" flag */
    const kc_bytes *deny; /* the exchange's denylist */
    size_t ndeny;
    double (*now_fn)(void *ctx); /* the exchange's clock; NULL: the real one */
    const char *file;     /* a .crypto file to open (made with one new key if
                             missing) instead of the in-memory one; sk unknown */
} tc_party_options;

void tc_party_make(tc_party *p, const tc_pki *pki, const char *label, const tc_party_options *o);
void tc_party_free(tc_party *p);

/* DIR/NODE.config, NODE.crypto (one Ed25519 key) and NODE.seed of a node
 * provisioned from C: trust's root in its allowlist, a chain for role on
 * root made by signer (trust, or another PKI for a node that is not to be
 * trusted), crypto_sub_interval 1 s (tests do not wait a minute between
 * request rounds). Returns the config's path (free it). */
char *tc_node_dir(const char *dir, const char *node, kc_role role, const char *root,
                  const tc_pki *trust, const tc_pki *signer);

/* The same files as the simple-provision tool writes them (root of trust
 * from rot_password, all topics, pathlen as given): the config's path. */
char *tc_provision(const char *dir, const char *node, kc_role role, const char *rot_password,
                   int pathlen);

#endif
