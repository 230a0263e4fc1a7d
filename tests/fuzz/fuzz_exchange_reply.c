/* A consumer with an outstanding request reading arbitrary key replies
 * (decrypt_keys): raw bytes, or fuzzed leaves correctly signed by a
 * provisioned producer. */
#include "exchange_fixture.h"

static fx_node consumer, producer;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fx_init();
    fx_node_make(&consumer, "fuzz consumer", KC_ROLE_CONSUMER);
    fx_node_make(&producer, "fuzz producer", KC_ROLE_PRODUCER);
    kc_exchange_msgs req = {0};
    if (kc_exchange_signed_epks(consumer.x, "sensor", &req, NULL) != KC_OK)
        abort();
    if (getenv("FUZZ_WRITE_SEEDS")) {
        kc_exchange_keys keys = {0};
        kc_exchange_msgs rep = {0};
        kc_keyidx ki;
        uint8_t s[32] = {7};
        kc_keyidx_from_int(&ki, 3);
        kc_exchange_keys_add(&keys, &ki, s);
        if (kc_exchange_encrypt_keys(producer.x, "sensor", &keys, req.items[0].value.data,
                                     req.items[0].value.len, &rep, NULL) != KC_OK)
            abort();
        fx_write_seeds(&rep.items[0].value);
    }
    kc_exchange_msgs_clear(&req);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kc_buf msg = fx_message(&producer, data, size);
    kc_exchange_keys out = {0};
    kc_status st = kc_exchange_decrypt_keys(consumer.x, "sensor", msg.data, msg.len, &out, NULL);
    if (st != KC_OK && out.n != 0)
        __builtin_trap(); /* a refusal delivers nothing */
    if (st == KC_OK) { /* the request was answered: ask again for the next input */
        kc_exchange_msgs req = {0};
        kc_exchange_signed_epks(consumer.x, "sensor", &req, NULL);
        kc_exchange_msgs_clear(&req);
    }
    kc_exchange_keys_clear(&out);
    kc_buf_free(&msg);
    return 0;
}
