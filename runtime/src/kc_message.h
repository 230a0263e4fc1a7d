/* kc_message.h — the message object a deserializer returns (spec §4.5);
 * its bytes on the wire: kc_wire.h. */
#ifndef KC_MESSAGE_H
#define KC_MESSAGE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kafkacrypto.h"
#include "kc_any.h"
#include "kc_keygen.h"
#include "kc_wire.h"

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
