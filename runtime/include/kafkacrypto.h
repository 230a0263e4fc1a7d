/* kafkacrypto.h — public C API of libkafkacrypto.
 *
 * Message-layer encryption for Apache Kafka, wire- and file-compatible with
 * the Python kafkacrypto package (0.9.11.x, classical suite). */
#ifndef KAFKACRYPTO_H
#define KAFKACRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What the shared library exports: the library is built with
 * -fvisibility=hidden, so only declarations marked KC_EXPORT are its ABI
 * (tests/api/check_exports.sh compares the two). KC_MUST_CHECK marks calls
 * whose failure a caller must not ignore: a skipped check would let
 * unverified or undecrypted bytes through. */
#if defined(__GNUC__) || defined(__clang__)
#define KC_EXPORT __attribute__((visibility("default")))
#define KC_MUST_CHECK __attribute__((warn_unused_result))
#else
#define KC_EXPORT
#define KC_MUST_CHECK
#endif

#define KC_VERSION_STRING "0.1.0"

/* The library version, "MAJOR.MINOR.PATCH". */
KC_EXPORT const char *kc_version(void);

/* Initialises libsodium; safe to call more than once and from any thread.
 * Returns 0 on success. Every other entry point calls it as needed. */
KC_EXPORT int kc_init(void);

/* ---- status and errors -------------------------------------------------- */

/* Every entry point returns a kc_status. Functions that can explain a
 * failure also take a `kc_err *` (may be NULL) that receives a message a
 * person can act on: which file, field or topic, and what was expected.
 * Messages never contain secret material. */
typedef enum kc_status {
    KC_OK = 0,
    KC_ERR_INVALID,      /* malformed input or bad argument */
    KC_ERR_CRYPTO,       /* signature, MAC or key agreement failed */
    KC_ERR_UNSUPPORTED,  /* recognised but not implemented (post-quantum) */
    KC_ERR_NOTFOUND,     /* no such key, file, section or option */
    KC_ERR_DENIED,       /* refused by trust rules or policy */
    KC_ERR_EXPIRED,      /* a certificate or message is past its max_age */
    KC_ERR_IO,           /* file system or network error */
    KC_ERR_NOMEM,
    KC_ERR_BUSY,         /* locked by another process */
    KC_ERR_STATE         /* called in the wrong state (closed, not started) */
} kc_status;

#define KC_ERR_MSG_MAX 512

typedef struct kc_err {
    kc_status code;
    char msg[KC_ERR_MSG_MAX];
} kc_err;

/* A short English name for a status ("invalid input", "crypto failure"). */
KC_EXPORT const char *kc_status_str(kc_status code);

/* ---- byte buffers ---------------------------------------------------------- */

/* A growable byte buffer owned by the caller. Calls that produce bytes of
 * unknown length write into one and reuse its memory from call to call.
 * It may hold secrets: kc_buf_free() wipes before freeing. */
typedef struct kc_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} kc_buf;

#define KC_BUF_INIT {NULL, 0, 0}

/* Wipes and frees; the buffer is reusable afterwards. */
KC_EXPORT void kc_buf_free(kc_buf *b);

/* ---- typed configuration values ------------------------------------------- */

/* A value as upstream's Python code sees a config entry (spec §10.2): the
 * text "123" is an int, "1.5" a float, "True" a bool, "base64#..." bytes
 * (an invalid base64 body is NONE), anything else text. BIGINT is a Python
 * int outside int64, kept as its decimal digits. */
typedef enum kc_value_type {
    KC_VALUE_NONE = 0,
    KC_VALUE_BOOL,
    KC_VALUE_INT,
    KC_VALUE_BIGINT,
    KC_VALUE_FLOAT,
    KC_VALUE_TEXT,
    KC_VALUE_BYTES
} kc_value_type;

typedef struct kc_value {
    kc_value_type type;
    int64_t i;      /* BOOL (0 or 1), INT */
    double f;       /* FLOAT */
    uint8_t *data;  /* TEXT (UTF-8), BYTES, BIGINT ("-123..."); NUL-terminated when owned */
    size_t len;     /* bytes in data, without the NUL */
    bool owned;     /* data belongs to the value (library results) */
} kc_value;

/* Values built by these helpers borrow the caller's memory; values returned
 * by the library own theirs. kc_value_clear() is safe on both. */
static inline kc_value kc_value_none(void)
{
    kc_value v = {KC_VALUE_NONE, 0, 0.0, NULL, 0, false};
    return v;
}
static inline kc_value kc_value_bool(bool b)
{
    kc_value v = {KC_VALUE_BOOL, b ? 1 : 0, 0.0, NULL, 0, false};
    return v;
}
static inline kc_value kc_value_int(int64_t i)
{
    kc_value v = {KC_VALUE_INT, i, 0.0, NULL, 0, false};
    return v;
}
static inline kc_value kc_value_float(double f)
{
    kc_value v = {KC_VALUE_FLOAT, 0, f, NULL, 0, false};
    return v;
}
static inline kc_value kc_value_textn(const char *s, size_t n)
{
    kc_value v = {KC_VALUE_TEXT, 0, 0.0, (uint8_t *)(uintptr_t)s, n, false};
    return v;
}
KC_EXPORT kc_value kc_value_text(const char *s);
static inline kc_value kc_value_bytes(const void *p, size_t n)
{
    kc_value v = {KC_VALUE_BYTES, 0, 0.0, (uint8_t *)(uintptr_t)p, n, false};
    return v;
}

/* Wipes and frees an owned value; resets any value to NONE. */
KC_EXPORT void kc_value_clear(kc_value *v);
/* Python ==: numbers (bool, int, float) compare numerically, NaN equals
 * nothing, text never equals bytes. */
KC_EXPORT bool kc_value_equal(const kc_value *a, const kc_value *b);
/* The config-file text of a value (upstream's str_encode): "True", "42",
 * "1.5" (Python repr), text unchanged, bytes "base64#...". Returns a
 * malloc'd NUL-terminated string in *out. NONE is KC_ERR_INVALID. */
KC_EXPORT kc_status kc_value_to_text(const kc_value *v, char **out, kc_err *err);

/* An ordered mapping, as load_section returns it (keys are typed too). */
typedef struct kc_entry {
    kc_value key;
    kc_value value;
} kc_entry;

typedef struct kc_section {
    kc_entry *items;
    size_t n;
} kc_section;

KC_EXPORT void kc_section_clear(kc_section *s);
/* The value of a text key, or NULL. */
KC_EXPORT const kc_value *kc_section_get(const kc_section *s, const char *key);

/* ---- the node store: NODE.config ------------------------------------------------ */

/* The INI file upstream's CryptoStore / KafkaCryptoStore keep (spec §10).
 * The file stays exclusively locked (fcntl record lock, as Python's lockf)
 * while open; every store rewrites it atomically. Safe to share between
 * threads. */
typedef struct kc_store kc_store;

typedef struct kc_store_options {
    /* KafkaCryptoStore: Kafka sections in new files, the CA-file lookup
     * and the log_level settings on open. */
    bool kafka;
    /* With kafka: leave the library's log threshold alone. Otherwise it is
     * set from crypto.log_level (default WARNING), as upstream sets the
     * "kafkacrypto" logger's level. */
    bool keep_log_level;
    /* With kafka: CA bundles to try when kafka.ssl_cafile is empty, in
     * order, NULL-terminated. NULL means upstream's list. */
    const char *const *ca_files;
    /* New files trust upstream's public "temporary" provisioning root
     * (spec §6.11) only when this is set. Its secret is public, so by
     * default our new node files trust nothing until provisioned. */
    bool trust_temporary_rot;
} kc_store_options;

/* Opens (creating and initialising if missing and node_id is given) the
 * config file `path`, or "<node_id>.config" when path is NULL. A given
 * node_id must match the file's (else KC_ERR_INVALID) and is written into
 * [DEFAULT]; without one the file's node_id is used. Another process (or
 * another kc_store) holding the file gives KC_ERR_BUSY. opts may be NULL
 * (plain CryptoStore). */
KC_EXPORT KC_MUST_CHECK kc_status kc_store_open(kc_store **out, const char *path, const char *node_id,
                        const kc_store_options *opts, kc_err *err);
KC_EXPORT void kc_store_close(kc_store *s);

KC_EXPORT const char *kc_store_node_id(const kc_store *s);
KC_EXPORT const char *kc_store_path(const kc_store *s);

/* section NULL is the node section "<node_id>", otherwise "<node_id>-<section>".
 * Names are lower-cased as upstream's API does; values fall back to
 * [DEFAULT]. A missing value is KC_ERR_NOTFOUND (out is NONE); a value
 * upstream reads as None (an invalid "base64#...") is KC_OK with NONE. A
 * value whose '%' interpolation fails is KC_ERR_INVALID. */
KC_EXPORT kc_status kc_store_load_value(kc_store *s, const char *section, const char *name,
                              kc_value *out, kc_err *err);
/* The same with a typed name (bytes names become "base64#..." keys). */
KC_EXPORT kc_status kc_store_load_keyed(kc_store *s, const char *section, const kc_value *name,
                              kc_value *out, kc_err *err);

/* Stores value under name (value NULL or NONE deletes it) and rewrites the
 * file atomically. Text that the INI format cannot carry (a carriage
 * return, a lone '%') is KC_ERR_INVALID and changes nothing. */
KC_EXPORT kc_status kc_store_store_value(kc_store *s, const char *section, const char *name,
                               const kc_value *value, kc_err *err);
KC_EXPORT kc_status kc_store_store_keyed(kc_store *s, const char *section, const kc_value *name,
                               const kc_value *value, kc_err *err);
/* Several values of one section in one atomic rewrite (all or nothing). */
KC_EXPORT kc_status kc_store_store_values(kc_store *s, const char *section, size_t n,
                                const kc_value *names, const kc_value *values, kc_err *err);

/* Every option visible in the section (its own, then [DEFAULT]'s), decoded.
 * A missing section gives [DEFAULT]'s options when defaults is true, else
 * KC_ERR_NOTFOUND. With defaults false, options whose value equals
 * [DEFAULT]'s are left out (upstream's rule). */
KC_EXPORT kc_status kc_store_load_section(kc_store *s, const char *section, bool defaults,
                                kc_section *out, kc_err *err);

/* A path held as "file#<path>" in the node section (cryptokey, ratchet):
 * the path, a relative one resolved against the config file's directory
 * (not the working directory, unlike upstream: spec D1). When the option is
 * missing, "file#<node_id><default_suffix>" is stored and its path
 * returned. A provisioned node (it holds a chain) whose file is missing is
 * KC_ERR_NOTFOUND, with nothing written. *path is malloc'd. */
KC_EXPORT kc_status kc_store_file_option(kc_store *s, const char *name, const char *default_suffix,
                               char **path, kc_err *err);

/* ---- Kafka client configuration ------------------------------------------------- */

typedef enum kc_kafka_use { KC_KAFKA_CONSUMER, KC_KAFKA_PRODUCER } kc_kafka_use;

typedef struct kc_kafka_prop {
    char *name;   /* librdkafka property */
    char *value;
} kc_kafka_prop;

typedef struct kc_kafka_config {
    kc_kafka_prop *props;       /* in order, ready for rd_kafka_conf_set */
    size_t n;
    int64_t max_poll_records;   /* consumer, not a librdkafka property (default 500) */
    double produce_timeout;     /* producer, seconds (default 30) */
} kc_kafka_config;

/* Upstream's get_kafka_config(use, extra) (spec §10.5) followed by its
 * librdkafka wrapper's option mapping: sections kafka, kafka-<use>, and with
 * extra also kafka-<extra> and kafka-<extra>-<use>; an empty text later
 * unsets an earlier value; consumers get group.id <node_id> (or
 * "<node_id>.kafkacrypto" with extra "crypto") unless set. */
KC_EXPORT kc_status kc_store_kafka_config(kc_store *s, kc_kafka_use use, const char *extra,
                                kc_kafka_config *out, kc_err *err);
KC_EXPORT void kc_kafka_config_clear(kc_kafka_config *c);

/* ---- node identity keys: the NODE.crypto file ------------------------------ */

/* A node's long-term signing keys and the key of its opaque config values
 * (upstream's CryptoKey, spec §10.7). Secret keys never leave the library:
 * callers get public keys, signatures and wrapped/unwrapped values. Output
 * buffers: when `cap` is too small the call is KC_ERR_INVALID and *len
 * receives the size needed. */
typedef struct kc_cryptokey kc_cryptokey;

/* Opens the .crypto file at path, creating it if missing (mode 0600).
 * keytypes (NULL: no requirement) lists signing key types that must be
 * present — a missing type 1 is generated and the file rewritten; type 4
 * cannot be generated by this build (KC_ERR_UNSUPPORTED) — and restricts
 * the enabled keys to those types. Errors name the file and the field. */
KC_EXPORT KC_MUST_CHECK kc_status kc_cryptokey_open(kc_cryptokey **out, const char *path, const int *keytypes,
                            size_t n_keytypes, kc_err *err);
/* Wipes the secrets and frees. NULL is allowed. */
KC_EXPORT void kc_cryptokey_close(kc_cryptokey *ck);
/* Number of enabled signing keys; they are numbered 0..n-1 (idx). */
KC_EXPORT size_t kc_cryptokey_num_spk(const kc_cryptokey *ck);
/* Signing public key idx as a byte string (32 bytes for Ed25519). */
KC_EXPORT kc_status kc_cryptokey_spk(kc_cryptokey *ck, size_t idx, uint8_t *out, size_t cap, size_t *len,
                           kc_err *err);
/* The node's identity: all enabled public keys concatenated. */
KC_EXPORT kc_status kc_cryptokey_id_spk(kc_cryptokey *ck, uint8_t *out, size_t cap, size_t *len,
                              kc_err *err);
/* signature(64) || m with key idx; needs cap >= n + 64. */
KC_EXPORT KC_MUST_CHECK kc_status kc_cryptokey_sign_spk(kc_cryptokey *ck, size_t idx, const uint8_t *m, size_t n,
                                uint8_t *out, size_t cap, size_t *len, kc_err *err);
/* nonce(24) || secretbox(p) under the file's opaque-value key; cap >= n + 40. */
KC_EXPORT kc_status kc_cryptokey_wrap(kc_cryptokey *ck, const uint8_t *p, size_t n, uint8_t *out,
                            size_t cap, size_t *len, kc_err *err);
/* The inverse of wrap: KC_ERR_CRYPTO (upstream's None) if c was not wrapped
 * with this file's key. */
KC_EXPORT KC_MUST_CHECK kc_status kc_cryptokey_unwrap(kc_cryptokey *ck, const uint8_t *c, size_t n, uint8_t *out,
                              size_t cap, size_t *len, kc_err *err);
/* ==== Data path: ratchet, serializers, message objects ===================
 *
 * A producer opens its ratchet (`NODE.seed`), creates a serde with it and
 * serializes Kafka keys and values; a consumer creates a serde, is given
 * per-(root, key index) secrets by the key exchange (or
 * kc_serde_add_consumer_key) and deserializes into message objects. */

/* Which half of a Kafka message: the two use independent key generators. */
typedef enum kc_kind {
    KC_KIND_KEY = 0,
    KC_KIND_VALUE = 1
} kc_kind;

#define KC_SECRET_BYTES 32

/* ---- key indices (spec §3.3) -------------------------------------------- */

#define KC_KEYIDX_MAX_BYTES 64

typedef enum kc_keyidx_type {
    KC_KEYIDX_INT = 1,   /* short form: a msgpack integer */
    KC_KEYIDX_BYTES,     /* long form: 32 bytes (str or bin on the wire) */
    KC_KEYIDX_OTHER      /* anything else a peer sent; equals nothing */
} kc_keyidx_type;

typedef struct kc_keyidx {
    kc_keyidx_type type;
    bool negative;       /* INT: value is (int64_t)num if negative, else num */
    uint64_t num;
    size_t len;          /* BYTES */
    uint8_t bytes[KC_KEYIDX_MAX_BYTES];
} kc_keyidx;

/* ---- ratchet (spec §3.2–§3.4) -------------------------------------------
 *
 * The source of producer secrets. The file backend keeps upstream's
 * `.seed` file; other backends (HSM, TPM) implement kc_ratchet_ops. */

typedef struct kc_ratchet kc_ratchet;

typedef struct kc_ratchet_ops {
    const char *name;
    /* Moves to the next (index, secret) pair. When it returns KC_OK the new
     * current pair must never be handed out again, also after a crash (so
     * the advance is durable before it returns). */
    kc_status (*increment)(void *self, kc_err *err);
    /* §3.3 for the current pair: the per-root secret and the key index
     * (long form when node != NULL, short integer otherwise). */
    kc_status (*derive)(void *self, const uint8_t *root, size_t root_len,
                        const uint8_t *node, size_t node_len, kc_keyidx *ki,
                        uint8_t secret[KC_SECRET_BYTES], kc_err *err);
    /* Releases self. */
    void (*close)(void *self);
} kc_ratchet_ops;

/* Wraps a backend. The ratchet serialises calls to it with its own lock. */
KC_EXPORT kc_status kc_ratchet_new(const kc_ratchet_ops *ops, void *self, kc_ratchet **out,
                         kc_err *err);

/* The file backend. Creates the file ([0, 32 random bytes], mode 0600) if
 * it is missing, locks it against every other opener (KC_ERR_BUSY), and
 * advances it once, so that the file always holds the next unused pair.
 * escrow_pk: NULL (the default: no escrow), or the operator's 32-byte
 * X25519 public key: a newly created seed is then sealed to it and logged
 * as upstream does (spec §3.4). */
KC_EXPORT KC_MUST_CHECK kc_status kc_ratchet_open_file(const char *path, const uint8_t *escrow_pk,
                               kc_ratchet **out, kc_err *err);

KC_EXPORT kc_status kc_ratchet_increment(kc_ratchet *r, kc_err *err);
KC_EXPORT kc_status kc_ratchet_derive(kc_ratchet *r, const uint8_t *root, size_t root_len,
                            const uint8_t *node, size_t node_len, kc_keyidx *ki,
                            uint8_t secret[KC_SECRET_BYTES], kc_err *err);
/* Closes the backend (and unlocks the file). NULL is ignored. */
KC_EXPORT void kc_ratchet_close(kc_ratchet *r);

/* ---- message objects (spec §4.5) ----------------------------------------
 *
 * What a deserializer returns: the plaintext, or the raw received bytes
 * with a flag saying whether they may become decryptable once the key
 * arrives (then kc_message_is_cleartext(m, true) retries). A message object
 * can be reused for many deserializations; it keeps its buffers. */

typedef struct kc_message kc_message;
typedef struct kc_serde kc_serde;

KC_EXPORT kc_message *kc_message_new(void);
/* Wipes and frees. NULL is ignored. */
KC_EXPORT void kc_message_free(kc_message *m);
/* Makes m a cleartext message holding a copy of p (a serializer input). */
KC_EXPORT kc_status kc_message_set_cleartext(kc_message *m, const uint8_t *p, size_t n, kc_err *err);
/* Deserialized from a null Kafka key/value. */
KC_EXPORT bool kc_message_is_null(const kc_message *m);
/* Whether the plaintext is available. With retry, a message that may
 * become decryptable is deserialized again first (this can wait for the
 * key, see kc_serde_config). */
KC_EXPORT bool kc_message_is_cleartext(kc_message *m, bool retry);
KC_EXPORT bool kc_message_is_possibly_decryptable(const kc_message *m);
/* The plaintext (after an optional retry), or KC_ERR_STATE
 * "Message not decrypted!". *p stays valid until m changes. */
KC_EXPORT kc_status kc_message_get(kc_message *m, bool retry, const uint8_t **p, size_t *n,
                         kc_err *err);
/* The current bytes: the plaintext when decrypted, otherwise the raw bytes
 * as received (upstream's bytes(msg)). */
KC_EXPORT void kc_message_bytes(const kc_message *m, const uint8_t **p, size_t *n);
/* The topic and kind it was deserialized from ("" / KC_KIND_VALUE if none). */
KC_EXPORT const char *kc_message_topic(const kc_message *m);
KC_EXPORT kc_kind kc_message_kind(const kc_message *m);

/* ---- serializers and deserializers (spec §4) -----------------------------
 *
 * A serde holds a node's data-path state (producer key generations per
 * root, consumer keys per root and key index) behind one lock; it is safe
 * to use from several threads. */

/* Maps a topic to its root (spec §7.1). *root must stay valid until the
 * calling serde function returns: point into topic or into storage the
 * rule owns. */
typedef kc_status (*kc_root_fn)(void *ctx, const char *topic, size_t topic_len,
                                const char **root, size_t *root_len);
/* Called with the serde lock held: must not call back into the serde. */
typedef void (*kc_key_hook)(void *ctx, const char *root, size_t root_len,
                            const kc_keyidx *ki);

typedef struct kc_serde_config {
    kc_ratchet *ratchet;           /* producer secrets; NULL: consume only. Not owned. */
    const uint8_t *node_id;        /* get_id_spk(): long key indices (the default */
    size_t node_id_len;            /*   MGMT_LONG_KEYINDEX); NULL: short indices;
                                    *   length 0 (no signing key): encrypting fails */
    const char *topic_separator;   /* TOPIC_SEPARATOR, "." */
    kc_root_fn root_fn;            /* replaces the separator rule when set */
    void *root_ctx;
    double max_pgen_age;           /* CRYPTO_MAX_PGEN_AGE, 604800 s */
    /* Deserializer wait for a missing key (spec §4.4, B7). */
    int initial_wait_intervals;    /* DESER_INITIAL_WAIT_INTERVALS, 10 */
    double key_wait_interval;      /* 1 s */
    int max_key_wait_intervals;    /* 0: later misses do not wait (upstream) */
    void (*sleep_fn)(void *ctx, double seconds);  /* default: nanosleep */
    void *sleep_ctx;
    double (*now_fn)(void *ctx);   /* default: the wall clock, as time.time() */
    void *now_ctx;
    /* A new producer key index exists for root: serve root's requests and
     * persist the producer records (kc_serde_export_pgens). */
    kc_key_hook on_new_producer_key;
    /* A deserializer met (root, ki) without a key: request it. */
    kc_key_hook on_missing_key;
    void *hook_ctx;
    /* Saves the producer records (kc_serde_export_pgens, wrapped, stored):
     * called, without the serde lock, before a serializer returns the first
     * message of a new key index, so that a crash never loses a key a
     * consumer could still need. Its failure fails that serialization. */
    kc_status (*persist_fn)(void *ctx, kc_err *err);
    void *persist_ctx;
} kc_serde_config;

/* Fills in the defaults above. */
KC_EXPORT void kc_serde_config_init(kc_serde_config *c);
/* Copies what it needs from c (the ratchet is borrowed: close it after
 * the serde). */
KC_EXPORT kc_status kc_serde_new(const kc_serde_config *c, kc_serde **out, kc_err *err);
/* Releases the caller's reference; message objects that may still retry
 * keep the serde alive until they are freed. NULL is ignored. */
KC_EXPORT void kc_serde_free(kc_serde *s);

/* Encrypts value for topic: out = 0x01 || msgpack([ki, salt, box]).
 * value NULL (a null Kafka key/value) stays null: out is emptied and the
 * caller sends null. On any error out is emptied: never plaintext. value
 * must not point into out. */
KC_EXPORT KC_MUST_CHECK kc_status kc_serde_serialize(kc_serde *s, kc_kind kind, const char *topic,
                             const uint8_t *value, size_t len, kc_buf *out, kc_err *err);
/* A message object as input: a cleartext one is encrypted, any other
 * (already encrypted, or not kafkacrypto) is passed through unchanged. */
KC_EXPORT kc_status kc_serde_serialize_message(kc_serde *s, kc_kind kind, const char *topic,
                                     const kc_message *m, kc_buf *out, kc_err *err);
/* Decrypts or classifies data received on topic into out (spec §4.3).
 * data NULL gives a null message; data and topic may point into out. Malformed input is never an error: it
 * becomes a not-decryptable message; errors are reserved for bad
 * arguments and memory exhaustion. */
KC_EXPORT KC_MUST_CHECK kc_status kc_serde_deserialize(kc_serde *s, kc_kind kind, const char *topic,
                               const uint8_t *data, size_t len, kc_message *out,
                               kc_err *err);

/* ---- deserialization on several cores ------------------------------------
 *
 * A pool of worker threads that deserialize with one serde. Messages of
 * one (topic, partition) come back in the order they were submitted; those
 * of different partitions may overtake each other (a message waiting for
 * its key holds back its own partition only). Undecryptable and malformed
 * messages come back in their place like any other. At most max_in_flight
 * messages are submitted and not yet released, which bounds the memory in
 * flight; the input bytes are not copied. One thread submits and takes
 * results; the workers only deserialize. Without a pool everything runs on
 * the caller's thread, which is the faster choice for one core or small
 * workloads (see README, speed). */
typedef struct kc_serde_pool kc_serde_pool;

#define KC_SERDE_POOL_MAX_THREADS 64
#define KC_SERDE_POOL_MAX_IN_FLIGHT 65536

typedef struct kc_pool_result {
    void *user;          /* as given to kc_serde_pool_submit */
    int32_t partition;   /* as given */
    kc_message *msg;     /* the pool's object: valid until the next kc_serde_pool_next */
    kc_status status;    /* of kc_serde_deserialize (bad arguments, out of memory) */
    kc_err err;
} kc_pool_result;

KC_EXPORT KC_MUST_CHECK kc_status kc_serde_pool_new(kc_serde *s, int threads, size_t max_in_flight,
                                                    kc_serde_pool **out, kc_err *err);
/* Queues data received on (topic, partition). data is not copied: keep it
 * valid until its result has been handed back and the next
 * kc_serde_pool_next call. KC_ERR_BUSY when max_in_flight messages are
 * out: take results first. */
KC_EXPORT KC_MUST_CHECK kc_status kc_serde_pool_submit(kc_serde_pool *p, kc_kind kind,
                                                       const char *topic, int32_t partition,
                                                       const uint8_t *data, size_t len,
                                                       void *user, kc_err *err);
/* Releases the result handed back before, then hands back the next one
 * whose partition's earlier messages have all been handed back, waiting
 * up to timeout_ms (0: no wait, negative: no limit). KC_ERR_NOTFOUND if
 * none came in time, at once when nothing is in flight. While it waits,
 * the calling thread deserializes queued messages itself (so it may
 * return one message's deserialization after timeout_ms). */
KC_EXPORT kc_status kc_serde_pool_next(kc_serde_pool *p, int timeout_ms, kc_pool_result **out);
/* Messages submitted and not yet released (including the last result). */
KC_EXPORT size_t kc_serde_pool_in_flight(kc_serde_pool *p);
/* Stops the workers (waiting for the messages they are deserializing) and
 * frees the pool with every result not taken. NULL is ignored. */
KC_EXPORT void kc_serde_pool_free(kc_serde_pool *p);

/* Consumer key for (root, ki), as the key exchange delivers it; replaces
 * an earlier one and ends waits for it. */
KC_EXPORT kc_status kc_serde_add_consumer_key(kc_serde *s, const char *root, const kc_keyidx *ki,
                                    const uint8_t secret[KC_SECRET_BYTES], kc_err *err);

/* The periodic ratchet step (spec §7.10): advance the ratchet, drop
 * producer records older than max_pgen_age, and make every root derive a
 * new key index at its next message. Nothing changes if the advance fails. */
KC_EXPORT kc_status kc_serde_ratchet_step(kc_serde *s, kc_err *err);
/* Calls persist_fn if producer records were created since it last
 * succeeded. */
KC_EXPORT kc_status kc_serde_persist(kc_serde *s, kc_err *err);
/* True once after producer records were added (then persist them). */
KC_EXPORT bool kc_serde_take_new_pgens(kc_serde *s);
/* The plaintext of the `oldkeys` value (spec §10.4):
 * msgpack({"pgens": [[str(root), ki, bin(secret), f64(birth)], ...]}). */
KC_EXPORT kc_status kc_serde_export_pgens(kc_serde *s, kc_buf *out, size_t *count, kc_err *err);
/* Loads that structure: records younger than max_pgen_age become producer
 * records that are served to consumers but never used to encrypt. */
KC_EXPORT kc_status kc_serde_import_pgens(kc_serde *s, const uint8_t *p, size_t n, kc_err *err);

#ifdef __cplusplus
}
#endif

#endif
