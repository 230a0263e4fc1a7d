/* kc_chain_impl.h — what the files of the trust layer share, and nothing
 * outside them uses: message helpers, Python-like number comparisons, the
 * parsed form of a poison and the certificate fields. The layer's API is
 * kc_chain.h; its files are
 *   kc_chain_util.c       message helpers and numbers
 *   kc_poison.c           poisons: parse, pack, build, describe
 *   kc_cert.c             certificates and chains: parse, build, sign, describe
 *   kc_chain_temporary.c  upstream's temporary root of trust (§6.11)
 *   kc_chain.c            the trust decision (process_chain, §6.3-6.9) */
#ifndef KC_CHAIN_IMPL_H
#define KC_CHAIN_IMPL_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kc_buf.h"
#include "kc_chain.h"
#include "kc_keys.h"
#include "kc_mp.h"

#define KC_WHY_MAX 320
#define KC_TAG_MAX 16

/* ---- messages ---------------------------------------------------------------- */

/* snprintf for messages that may be cut short (they end in "..."). */
void kc_whyf(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

bool kc_bytes_eq(const kc_bytes *a, const kc_bytes *b);

bool kc_bytes_is(const kc_bytes *a, const char *s);

/* First 4 bytes of a key in hex (and its version when not 1): enough for
 * an operator to tell keys apart. */
const char *kc_key_tag(const kc_key *k, char out[KC_TAG_MAX]);

const char *kc_pks_tag(const kc_pks *p, char out[KC_TAG_MAX]);

/* "2026-01-01T00:00:00Z" (fraction shown when present), "never" for 0. */
const char *kc_time_str(double t, char out[48]);

/* Appends text, escaping what a log line should not carry (control
 * characters, quotes, and every non-ASCII byte unless the text is UTF-8). */
void kc_put_text(kc_buf *b, const kc_bytes *s, size_t max);

void kc_put_fmt(kc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* NUL-terminated copy of a buffer's text (for messages). */
const char *kc_buf_str(kc_buf *b);

/* Hands a packer's bytes to out (replacing its content) and frees it. */
kc_status kc_mp_out_take(kc_mp_out *mo, kc_buf *out);

bool kc_num_ok(const msgpack_object *o);

bool kc_num_is_int(const msgpack_object *o);

double kc_num_d(const msgpack_object *o);

bool kc_num_lt(const msgpack_object *a, const msgpack_object *b);

bool kc_num_is_zero(const msgpack_object *o);

bool kc_num_gt_zero(const msgpack_object *o);

void kc_pack_num(msgpack_packer *pk, const msgpack_object *o);

/* How upstream re-packs a value it decoded with raw=True: str becomes bin,
 * float32 becomes float64, integers take their smallest form. */
void kc_repack(msgpack_packer *pk, const msgpack_object *o);

/* ---- poisons ------------------------------------------------------------------- */

typedef enum kc_pname { KC_P_TOPICS, KC_P_USAGES, KC_P_PATHLEN } kc_pname;
extern const char *const kc_pnames[];

/* A list of strings; `none` is Python's None (no restriction). */
typedef struct kc_strlist {
    bool none;
    size_t n;
    const kc_bytes *v;
} kc_strlist;

typedef struct kc_pentry {
    kc_pname name;
    kc_strlist list;      /* topics, usages */
    bool pathlen_none; /* pathlen: None */
    int64_t pathlen;
} kc_pentry;

typedef struct kc_parsed_poison {
    kc_mp_doc doc;
    size_t n;
    kc_pentry e[KC_POISON_MAX_ENTRIES];
    kc_bytes *pool;
} kc_parsed_poison;

void kc_poison_free(kc_parsed_poison *p);

/* Decodes and checks a packed poison: an array of [name, value, ...] with
 * a known name; lists of UTF-8 strings or None; pathlen an integer or None. */
kc_status kc_poison_parse(kc_parsed_poison *out, const kc_bytes *packed, char *why, size_t whylen);

/* The accumulated poison as upstream re-packs it: names str, strings bin. */
kc_status kc_poison_pack(const kc_strlist *topics, const kc_strlist *usages, bool has_pathlen,
                         int64_t pathlen, kc_buf *out);

void kc_put_strlist(kc_buf *b, const kc_strlist *l);

/* "[topics: ['a'], usages: ['b'], pathlen: 1]" */
void kc_put_poison(kc_buf *b, const kc_bytes *packed);

/* ---- certificates ---------------------------------------------------------------- */

/* [max_age, poison, key, ...] fields other than the key. */
kc_status kc_cert_fields(const msgpack_object *o, msgpack_object *age, kc_bytes *poison,
                         char *why, size_t whylen);

kc_status kc_cert_key_field(const msgpack_object *o, kc_pks *key, char *why, size_t whylen);

void kc_put_cert(kc_buf *b, const msgpack_object *age, const kc_bytes *poison,
                 const kc_pks *key);

#endif
