/* kc_chain.h — certificates, chains, poisons and the trust decision
 * (spec §6), compatible with upstream's kafkacrypto/chain.py.
 *
 *   certificate   mp([max_age, bin(mp(poison)), key, extra...])
 *   signed item   signature(64) || mp(certificate)
 *   chain         mp([bin(item_1), ..., bin(item_n)])   item_1 signed by a ROT
 *   list entry    mp([max_age, bin(mp(poison)), key])   allowlist / denylist
 *   poison        [[name, value], ...]  name "topics" | "usages" | "pathlen"
 *
 * kc_chain_process() is upstream's process_chain() with the project's
 * decisions: regex choices always use re.match semantics (B1, kc_regex.h);
 * a malformed structure fails only the root of trust being tried (B9); the
 * signing keys returned include a single-key leaf (B18). It never crashes
 * on arbitrary bytes in the chain or the lists, and its work is bounded:
 * at most KC_CHAIN_MAX_ITEMS items, KC_POISON_MAX_ENTRIES entries per
 * poison, KC_POISON_MAX_VALUES strings per list, KC_CHAIN_MAX_REGEX regex
 * evaluations per call; beyond that the chain fails with a clear reason.
 *
 * Failures say, for every root of trust tried, which chain item failed and
 * why (the root whose chain got furthest comes first).
 *
 * Implemented by kc_poison.c (poisons), kc_cert.c (certificates and
 * chains), kc_chain_temporary.c (the temporary root) and kc_chain.c (the
 * decision); kc_chain_impl.h is what they share.
 *
 * Deliberate differences from upstream (all fail closed or follow a project
 * decision of spec Appendix B):
 *  - B1: a regex choice is matched (re.match, bytes semantics) whether the
 *    wanted value came from the caller or a certificate; upstream raises a
 *    TypeError for str queries, also in intersect_certs for regex usages,
 *    and a UnicodeDecodeError for a multi-byte first character.
 *  - B9: a malformed root entry or allowlist entry fails that root only;
 *    upstream lets some of those errors abort the whole call.
 *  - Poisons are checked as a whole when read: an unknown name, a non-list
 *    or non-UTF-8 string value, a non-integer pathlen fail the chain even
 *    where upstream would not have reached them (it checks lazily and
 *    accepts a float pathlen); a boolean max_age is not a number.
 *  - A malformed chain (not a list, an item that is not a byte string, no
 *    items, too many) is reported once, not once per root.
 *  - The limits above, and a regex that exceeds its match limits, which
 *    counts as no match (upstream has no limits).
 *  - Garbage in a list is not skipped: a lookup that reaches a malformed
 *    entry fails the root being tried (as upstream, which raises). */
#ifndef KC_CHAIN_H
#define KC_CHAIN_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kc_buf.h"
#include "kc_err.h"
#include "kc_keys.h"
#include "kc_mp.h"

#define KC_CHAIN_MAX_ITEMS 16
#define KC_POISON_MAX_ENTRIES 16
#define KC_POISON_MAX_VALUES 64
#define KC_POISON_MAX_VALUE_LEN 1024
#define KC_CHAIN_MAX_REGEX 1024

/* A byte string that someone else owns. */
typedef struct kc_bytes {
    const uint8_t *p;
    size_t n;
} kc_bytes;

/* An allowlist or denylist: entries as stored (mp([max_age, poison, key])).
 * A NULL list pointer is upstream's None. */
typedef struct kc_chain_list {
    const kc_bytes *entries;
    size_t n;
} kc_chain_list;

/* ---- certificates --------------------------------------------------------- */

/* A decoded certificate or list entry. Byte strings and `extra` point into
 * the input, which must outlive it. */
typedef struct kc_cert {
    kc_mp_doc doc;
    msgpack_object max_age;     /* an integer or float, as encoded */
    kc_bytes poison;            /* the packed poison */
    kc_pks key;
    const msgpack_object *extra; /* elements 3.. */
    size_t n_extra;
} kc_cert;

/* Parses mp([max_age, poison, key, ...]): max_age a number, poison a byte
 * string, key as get_pks (§5.2). The poison's content is not checked here. */
kc_status kc_cert_parse(kc_cert *c, const uint8_t *p, size_t n, kc_err *err);
void kc_cert_free(kc_cert *c);
/* max_age as a double (0 = never expires). */
double kc_cert_max_age(const kc_cert *c);

/* mp([max_age, bin(poison), key, extra...]). max_age 0 is packed as the
 * integer 0 ("never"), anything else as float64, as upstream writes them.
 * Each extra is one complete msgpack object, appended as is. */
kc_status kc_cert_build(double max_age, const uint8_t *poison, size_t poison_len,
                        const kc_pks *key, const kc_bytes *extra, size_t n_extra,
                        kc_buf *out, kc_err *err);
/* An allowlist/denylist entry: mp([max_age, bin(poison), key]). */
kc_status kc_chain_entry_build(double max_age, const uint8_t *poison, size_t poison_len,
                               const kc_key *key, kc_buf *out, kc_err *err);
/* A signed item: signer's signature over the certificate, sig || cert. */
kc_status kc_cert_sign(const kc_key *sk, const uint8_t *cert, size_t n, kc_buf *item,
                       kc_err *err);

/* ---- poisons ---------------------------------------------------------------- */

/* One poison entry to build: "topics"/"usages" with `values`, or "pathlen". */
typedef struct kc_poison_entry {
    const char *name;
    const char *const *values;
    size_t n_values;
    int64_t pathlen;
} kc_poison_entry;

/* mp([[name, value], ...]) with names and strings as msgpack str, in the
 * given order (protocol leaves use topics, usages, pathlen). */
kc_status kc_poison_build(const kc_poison_entry *entries, size_t n, kc_buf *out,
                          kc_err *err);

/* ---- chains ----------------------------------------------------------------- */

/* The items of a chain (str- or bin-typed), pointing into the input. */
typedef struct kc_chain_items {
    kc_mp_doc doc;
    kc_bytes item[KC_CHAIN_MAX_ITEMS];
    size_t n;
} kc_chain_items;

kc_status kc_chain_parse(kc_chain_items *items, const uint8_t *chain, size_t n, kc_err *err);
void kc_chain_items_free(kc_chain_items *items);

/* mp([bin(item)...]) of the given items. */
kc_status kc_chain_build(const kc_bytes *items, size_t n, kc_buf *out, kc_err *err);
/* `chain` (may be empty: no items yet) plus one more item, into out. Items
 * of the input are re-emitted as bin (legacy str items are accepted). */
kc_status kc_chain_append(const uint8_t *chain, size_t n, const uint8_t *item,
                          size_t item_len, kc_buf *out, kc_err *err);

/* A readable description of every item of a chain (not verified), for logs:
 * "[Key: (Ed25519, ab..), Timestamp: 0, Poison: [...]] [...]". */
kc_status kc_chain_describe(const uint8_t *chain, size_t n, kc_buf *out);

/* The fingerprint (lowercase hex SHA-256 of the key's bytes, as keyinfo
 * shows it) of the signing key that signed the chain's last item, as the
 * item before certifies it: who sent a request or reply, for logs. Not
 * verified; "unknown" and KC_ERR_INVALID when unreadable. */
kc_status kc_chain_signer_fingerprint(const uint8_t *chain, size_t n, char out[65]);

/* The certificate of the chain's last item, not verified (its byte
 * strings point into chain): what a receiver may look at before paying for
 * the verification. Free with kc_cert_free. KC_ERR_INVALID if unreadable. */
kc_status kc_chain_leaf_unverified(const uint8_t *chain, size_t n, kc_cert *leaf);

/* Project decision B2: the minimum non-zero max_age over the chain's items
 * (0 = never expires), read without verifying signatures. */
kc_status kc_chain_min_expiry(const uint8_t *chain, size_t n, double *out, kc_err *err);
/* B2: may a chain expiring at new_max_age replace one expiring at
 * current_max_age? Yes unless it expires earlier; 0 (never) is the latest. */
bool kc_chain_expiry_not_earlier(double new_max_age, double current_max_age);

/* ---- the temporary provisioning root of trust (§6.11) ------------------------ */

/* Its Ed25519 seed is public by design: every new upstream config trusts it
 * until provisioning removes it. */
extern const uint8_t kc_chain_temporary_rot_seed[32];
/* Its key pair, derived from the seed (sk is secret only in name). */
kc_status kc_chain_temporary_rot_keys(kc_key *pk, kc_key *sk);
/* The allowlist entry mp([0, bin(mp([["pathlen",2]])), bin(pk)]). */
kc_status kc_chain_temporary_rot_entry(kc_buf *out);
/* True when an allowlist entry certifies the temporary ROT key. */
bool kc_chain_entry_is_temporary_rot(const uint8_t *entry, size_t n);

typedef enum kc_temporary_kind {
    KC_TEMPORARY_REQUEST, /* usages key-encrypt-request, key-encrypt-subscribe */
    KC_TEMPORARY_REPLY    /* usage key-encrypt */
} kc_temporary_kind;

/* Signs m with a key the caller holds (a secret kc_key, or one kept inside
 * a cryptokey backend): out = signature || m. */
typedef kc_status (*kc_sign_fn)(void *ctx, const uint8_t *m, size_t n, kc_buf *out,
                                kc_err *err);
/* A kc_sign_fn whose ctx is a `const kc_key *` signing secret key. */
kc_status kc_chain_sign_with_key(void *sk, const uint8_t *m, size_t n, kc_buf *out,
                                 kc_err *err);

/* What a node with an empty chain for its signing key fabricates (§6.11):
 * `chain` = mp([bin(temporary-signed intermediate)]) to which the caller
 * appends its leaf, and `provision` = the blob logged for the operator,
 * mp([bin(mp([0, bin(0x90), spk])), bin(sign_spk(intermediate))]), where
 * `sign` signs with the node key of spk.
 * The intermediate is mp([now + maxage, bin(poison), spk]) with the poison
 * [["topics",[root]],["usages",[...]],["pathlen",1]]. */
kc_status kc_chain_temporary(kc_sign_fn sign, void *sign_ctx, const kc_key *spk,
                             const char *root, kc_temporary_kind kind, double now,
                             double maxage, kc_buf *chain, kc_buf *provision, kc_err *err);

/* ---- validation ------------------------------------------------------------------ */

typedef struct kc_chain_result {
    double max_age;           /* accumulated minimum; 0 = never expires */
    bool max_age_is_int;      /* as upstream would re-pack it */
    kc_buf poison;            /* the accumulated poison, re-packed as upstream */
    kc_pks key;               /* leaf key(s); denylisted list members dropped */
    kc_buf extra;             /* mp([leaf elements 3..]) re-packed as upstream */
    kc_mp_doc extra_doc;      /* extra decoded; the objects below point into it */
    const msgpack_object *extras;
    size_t n_extra;
    kc_buf packed;            /* mp(result certificate): upstream's pk, re-packed */
    kc_pks spks;              /* signing keys met, ROT first (a list) */
    size_t rot_index;         /* allowlist index of the ROT that validated */
    bool self_signed;         /* accepted as a self-signed denylist pair (§6.9) */
    kc_buf printable;         /* accumulated steps, readable, for logs */
    kc_buf report;            /* on failure: one line per ROT tried */
} kc_chain_result;

void kc_chain_result_free(kc_chain_result *r);

/* Upstream's process_chain(chain, topic, usage, allowlist, denylist,
 * checktime). topic/usage NULL = no check. On success fills `out` (free it
 * with kc_chain_result_free). On failure returns KC_ERR_CRYPTO (signature),
 * KC_ERR_EXPIRED, KC_ERR_DENIED (denylist, topic, usage, pathlen) or
 * KC_ERR_INVALID (malformed) — the kind of the root of trust that got
 * furthest — with a summary in err and every root's reason in out->report
 * (out may be NULL; it is then not filled). */
KC_MUST_CHECK kc_status kc_chain_process(const uint8_t *chain, size_t n, const char *topic,
                           const char *usage, const kc_chain_list *allowlist,
                           const kc_chain_list *denylist, double checktime,
                           kc_chain_result *out, kc_err *err);

/* ---- building blocks of the decision (exposed for tests and policies) ------------ */

/* multimatch(wanted, choices) (§6.3) on byte strings; NULL wanted matches
 * everything, NULL choices nothing. Regex limits count as "no match". */
bool kc_multimatch(const kc_bytes *wanted, const kc_bytes *choices, size_t n_choices,
                   bool choices_none);

/* validate_poison(name, value, poison) (§6.6) over a packed poison: the
 * first entry of that name decides. For "pathlen" pass value_pathlen. */
kc_status kc_validate_poison(const char *name, const char *value, int64_t value_pathlen,
                             const uint8_t *poison, size_t poison_len, bool *ok, kc_err *err);

/* key_in_list(k, entries) (§6.7): index of the first entry certifying a
 * signing key equal to k, or -1. A malformed entry met before a match is
 * an error (as upstream, it cannot be skipped silently). */
kc_status kc_key_in_list(const kc_key *k, const kc_chain_list *list, long *index,
                         kc_err *err);

#endif
