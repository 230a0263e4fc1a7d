/* kc_chainserver.h — upstream's chain server (spec §8.2): re-issues
 * short-lived certificates for the nodes listed in section `chainkeys`,
 * with rights and lifetimes decided by a kc_grant_fn (policies: issue_chain).
 *
 * The Kafka side (pushing on `chains`, the interval loop) is the script's
 * (lua/kafkacrypto/authorities/chainserver.lua); this holds the node files, signs and
 * validates. Deliberate differences from upstream:
 *  - a chainkeys key with no signing key of the same type is refused
 *    (upstream falls back to the last key, which cannot verify);
 *  - the grant may change the certificate's poison (upstream copies it);
 *    an unchanged grant keeps the original poison bytes. */
#ifndef KC_CHAINSERVER_H
#define KC_CHAINSERVER_H

#include "kc_buf.h"
#include "kc_err.h"
#include "kc_grant.h"

typedef struct kc_chainserver kc_chainserver;

typedef struct kc_chainserver_settings {
    double interval_secs;     /* default 300 */
    double lifetime;          /* default 604800 */
    double refresh_fraction;  /* default 0.143 */
    double flush_time;        /* default 2.0 */
} kc_chainserver_settings;

/* Opens the node files of config_path and checks each stored chain against
 * the allowlist and its signing key (fatal otherwise, as upstream). issue
 * decides each grant (policies: kc_policy_issue_grant; NULL: the proposal
 * as it is); the caller keeps issue_ctx alive until kc_chainserver_close. */
KC_MUST_CHECK kc_status kc_chainserver_open(kc_chainserver **out, const char *config_path,
                                            kc_grant_fn issue, void *issue_ctx, kc_err *err);
void kc_chainserver_close(kc_chainserver *cs);

const kc_chainserver_settings *kc_chainserver_settings_of(const kc_chainserver *cs);

/* One chainkeys entry. */
typedef struct kc_chainkey {
    char *name;
    double max_age;           /* of the unsigned certificate */
    char key_hex[256];        /* hex of bytes(key) */
} kc_chainkey;

/* The entries of section chainkeys, in file order (*out malloc'd; free
 * with kc_chainkeys_free). A missing section is KC_ERR_NOTFOUND. */
kc_status kc_chainserver_entries(kc_chainserver *cs, kc_chainkey **out, size_t *n,
                                 kc_err *err);
void kc_chainkeys_free(kc_chainkey *k, size_t n);

/* Re-issues entry `name` at time now: asks the policies, signs the new
 * certificate with our key of the same type, appends it to our chain and
 * validates the result. On KC_OK: chain (for topic chains), key (bytes()
 * of the node's key: the Kafka key) and cert (the new unsigned certificate,
 * to store with kc_chainserver_store once pushed). KC_ERR_DENIED: refused
 * by policy; other errors: the entry or the result is not valid. */
kc_status kc_chainserver_renew(kc_chainserver *cs, const char *name, double now, kc_buf *chain,
                               kc_buf *key, kc_buf *cert, kc_err *err);

/* Stores cert as chainkeys[name]. */
kc_status kc_chainserver_store(kc_chainserver *cs, const char *name, const uint8_t *cert,
                               size_t n, kc_err *err);

#endif
