/* The message parser and the deserializer on arbitrary bytes, with a
 * consumer that holds keys for the root "fuzz" under a long (32 x 0x11)
 * and a short (5) key index: never crash, never allocate without bound,
 * never report cleartext for bytes that did not authenticate. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kc_keyidx.h"
#include "kc_log.h"
#include "kc_message.h"
#include "kc_serde.h"

static kc_serde *consumer;
static kc_message *msg;
static msgpack_zone zone;

static void no_sleep(void *ctx, double s)
{
    (void)ctx;
    (void)s;
}

static void init(void)
{
    kc_log_set_level(KC_LOG_CRITICAL);
    kc_serde_config c;
    kc_serde_config_init(&c);
    c.sleep_fn = no_sleep;
    c.initial_wait_intervals = 2;
    if (kc_serde_new(&c, &consumer, NULL) != KC_OK)
        abort();
    uint8_t secret[32], b[32];
    memset(secret, 0x22, sizeof secret);
    memset(b, 0x11, sizeof b);
    kc_keyidx lk, sk;
    kc_keyidx_from_bytes(&lk, b, sizeof b);
    kc_keyidx_from_uint(&sk, 5);
    if (kc_serde_add_consumer_key(consumer, "fuzz", &lk, secret, NULL) != KC_OK ||
        kc_serde_add_consumer_key(consumer, "fuzz", &sk, secret, NULL) != KC_OK)
        abort();
    msg = kc_message_new();
    msgpack_zone_init(&zone, 256);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!consumer)
        init();
    kc_wire w, g;
    bool candidate = kc_wire_parse(data, size, &zone, &w, NULL) == KC_OK;
    if (candidate && w.ct_is_bytes && w.ct_len && !w.ct)
        __builtin_trap();
    /* the direct decoder of the common shape agrees with msgpack-c */
    msgpack_zone other;
    msgpack_zone_init(&other, 256);
    bool generic = kc_wire_parse_msgpack(data, size, &other, &g, NULL) == KC_OK;
    if (generic != candidate)
        __builtin_trap();
    if (candidate &&
        (w.ki_usable != g.ki_usable || w.ki.type != g.ki.type ||
         (w.ki_usable && !kc_keyidx_equal(&w.ki, &g.ki)) || w.salt.type != g.salt.type ||
         w.salt.len != g.salt.len || (w.salt.len && w.salt.p != g.salt.p) ||
         w.ct_is_bytes != g.ct_is_bytes ||
         (w.ct_is_bytes && (w.ct_len != g.ct_len || (w.ct_len && w.ct != g.ct)))))
        __builtin_trap();
    msgpack_zone_destroy(&other);
    for (int kind = KC_KIND_KEY; kind <= KC_KIND_VALUE; kind++) {
        if (kc_serde_deserialize(consumer, (kc_kind)kind, "fuzz.topic", data, size, msg, NULL) != KC_OK)
            __builtin_trap();
        const uint8_t *p;
        size_t n;
        kc_message_bytes(msg, &p, &n);
        if (kc_message_is_cleartext(msg, false)) {
            /* only an authenticated box can give cleartext */
            if (!candidate || !w.ct_is_bytes || n + 16 != w.ct_len)
                __builtin_trap();
        } else {
            if (n != size || (n && memcmp(p, data, n) != 0))
                __builtin_trap();
            if (kc_message_is_possibly_decryptable(msg) != candidate)
                __builtin_trap();
            (void)kc_message_is_cleartext(msg, true);  /* a retry */
        }
    }
    return 0;
}
