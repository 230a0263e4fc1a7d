/* kc_message.h — encrypted data messages (spec §4.1, §4.3) and the message
 * object a deserializer returns (§4.5).
 *
 * Wire: 0x01 || msgpack([ki, bin(salt16), bin(secretbox(plaintext))]), the
 * nonce derived, never sent. Parsing classifies exactly as upstream:
 *   - empty, first byte != 0x01, not exactly one msgpack object as
 *     msgpack-python (raw=True, strict_map_key) would accept it, or an object
 *     whose Python len() is not 3: "not kafkacrypto" (never decryptable);
 *   - a map of 3 entries: also "not kafkacrypto" (project decision B6;
 *     upstream lets a KeyError escape);
 *   - any other object of length 3 (the array, but also a 3-byte str/bin,
 *     whose "elements" are integers) is a candidate: every later failure
 *     makes it "decryptable later".
 * Known difference: msgpack-c nests at most 32 levels, msgpack-python 1024;
 * a deeper (garbage) object is "not kafkacrypto" here, "decryptable later"
 * upstream. Both are not cleartext. */
#ifndef KC_MESSAGE_H
#define KC_MESSAGE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kafkacrypto.h"
#include "kc_any.h"
#include "kc_keygen.h"

#define KC_WIRE_MARKER 0x01

/* A parsed candidate. Pointers refer to the parsed input. */
typedef struct kc_wire {
    kc_keyidx ki;
    bool ki_usable;   /* an int or byte string: something a key can be stored under */
    kc_any salt;      /* BYTES, or OTHER (then the generator's counter is used) */
    const uint8_t *ct;
    size_t ct_len;
    bool ct_is_bytes;
} kc_wire;

/* KC_OK: a candidate in *w. KC_ERR_INVALID: not a kafkacrypto message
 * (err says why, for debugging). zone is scratch space, cleared first;
 * no allocation happens once it has grown to fit. */
kc_status kc_wire_parse(const uint8_t *p, size_t n, msgpack_zone *zone, kc_wire *w,
                        kc_err *err);

/* The same through msgpack-c only (kc_wire_parse decodes the common shape
 * directly and falls back to this); exposed so that tests can compare. */
kc_status kc_wire_parse_msgpack(const uint8_t *p, size_t n, msgpack_zone *zone, kc_wire *w,
                                kc_err *err);

/* out := 0x01 || msgpack([ki, bin(salt), bin(secretbox(pt, nonce, key))]).
 * pt must not point into out. */
kc_status kc_wire_seal(kc_buf *out, const kc_keyidx *ki, const uint8_t salt[KC_KEYGEN_SALTBYTES],
                       const uint8_t key[KC_KEYGEN_KEYBYTES],
                       const uint8_t nonce[KC_KEYGEN_NONCEBYTES], const uint8_t *pt, size_t len,
                       kc_err *err);

/* out := the plaintext, or false on a short box or a MAC failure (out
 * then unchanged in content, emptied). Allocates only to grow out. */
bool kc_wire_open(const uint8_t *ct, size_t ct_len, const uint8_t key[KC_KEYGEN_KEYBYTES],
                  const uint8_t nonce[KC_KEYGEN_NONCEBYTES], kc_buf *out);

/* ---- the message object ------------------------------------------------- */

struct kc_message {
    kc_buf bytes;       /* plaintext when cleartext, else the raw bytes */
    bool null;
    bool cleartext;
    bool decryptable;
    kc_kind kind;
    kc_serde *deser;    /* a reference, held only while a retry is possible */
    kc_buf topic;       /* NUL-terminated, for retries */
    msgpack_zone zone;  /* parse scratch, reused */
    bool zone_live;
};

void kc_message_init(kc_message *m);
/* Moves from's contents (and its retry reference) into to, replacing to's;
 * each keeps its own parse zone, so a scratch object deserialized into
 * again and again allocates none. from is left empty. */
void kc_message_move(kc_message *to, kc_message *from);
void kc_message_clear(kc_message *m);
void kc_message_set_null(kc_message *m);
/* Upstream's fromEncryptedBytes: empty raw is never decryptable; with a
 * deserializer and topic the flag is kept and a retry becomes possible. */
kc_status kc_message_set_encrypted(kc_message *m, const uint8_t *raw, size_t n,
                                   kc_serde *deser, kc_kind kind, const char *topic,
                                   size_t topic_len, bool decryptable);
/* m->bytes already holds the plaintext: become cleartext. */
void kc_message_mark_cleartext(kc_message *m);
/* The parse scratch zone (initialised on first use); NULL if out of memory. */
msgpack_zone *kc_message_zone(kc_message *m);

#endif
