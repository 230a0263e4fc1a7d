/* A producer answering arbitrary key requests (encrypt_keys): raw bytes,
 * or fuzzed leaves correctly signed by a provisioned consumer. */
#include "exchange_fixture.h"

static fx_node consumer, producer;
static kc_exchange_keys keys;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fx_init();
    fx_node_make(&consumer, "fuzz consumer", KC_ROLE_CONSUMER);
    fx_node_make(&producer, "fuzz producer", KC_ROLE_PRODUCER);
    kc_keyidx ki;
    uint8_t s[32] = {7};
    kc_keyidx_from_int(&ki, 3);
    kc_exchange_keys_add(&keys, &ki, s);
    if (getenv("FUZZ_WRITE_SEEDS")) {
        kc_exchange_msgs req = {0};
        if (kc_exchange_signed_epks(consumer.x, "sensor", &req, NULL) != KC_OK)
            abort();
        fx_write_seeds(&req.items[0].value);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kc_buf msg = fx_message(&consumer, data, size);
    kc_exchange_msgs out = {0};
    if (kc_exchange_encrypt_keys(producer.x, "sensor", &keys, msg.data, msg.len, &out, NULL) ==
            KC_OK && out.n == 0)
        __builtin_trap(); /* success always produces a reply */
    kc_exchange_msgs_clear(&out);
    kc_buf_free(&msg);
    return 0;
}
