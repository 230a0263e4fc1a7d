/* Built against an installed kafkacrypto (pkg-config) by test_install.sh:
 * encrypts with a ratchet in DIR and decrypts with the derived key, using
 * kafkacrypto.h alone. Prints "ok VERSION" and exits 0, or says what failed. */
#include <kafkacrypto.h>
#include <stdio.h>
#include <string.h>

static int fail(const char *what, const kc_err *err)
{
    fprintf(stderr, "install_probe: %s: %s\n", what, err->msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2 || kc_init() != 0)
        return 2;
    char seed[4096];
    snprintf(seed, sizeof seed, "%s/probe.seed", argv[1]);
    const uint8_t node[32] = {7};
    kc_err err = {0};
    kc_ratchet *r;
    if (kc_ratchet_open_file(seed, NULL, &r, &err) != KC_OK)
        return fail("ratchet", &err);
    kc_serde_config pc, cc;
    kc_serde_config_init(&pc);
    pc.ratchet = r;
    pc.node_id = node;
    pc.node_id_len = sizeof node;
    kc_serde_config_init(&cc);
    cc.initial_wait_intervals = 0;
    kc_serde *producer, *consumer;
    kc_buf wire = KC_BUF_INIT;
    kc_keyidx ki;
    uint8_t secret[KC_SECRET_BYTES];
    if (kc_serde_new(&pc, &producer, &err) != KC_OK || kc_serde_new(&cc, &consumer, &err) != KC_OK)
        return fail("serde", &err);
    if (kc_serde_serialize(producer, KC_KIND_VALUE, "probe.data", (const uint8_t *)"hello", 5,
                           &wire, &err) != KC_OK)
        return fail("serialize", &err);
    if (kc_ratchet_derive(r, (const uint8_t *)"probe", 5, node, sizeof node, &ki, secret,
                          &err) != KC_OK ||
        kc_serde_add_consumer_key(consumer, "probe", &ki, secret, &err) != KC_OK)
        return fail("key", &err);
    kc_message *m = kc_message_new();
    const uint8_t *p;
    size_t n;
    if (!m || kc_serde_deserialize(consumer, KC_KIND_VALUE, "probe.data", wire.data, wire.len, m,
                                   &err) != KC_OK ||
        kc_message_get(m, false, &p, &n, &err) != KC_OK)
        return fail("deserialize", &err);
    if (n != 5 || memcmp(p, "hello", 5) != 0) {
        fprintf(stderr, "install_probe: decrypted bytes differ\n");
        return 1;
    }
    printf("ok %s\n", kc_version());
    kc_message_free(m);
    kc_buf_free(&wire);
    kc_serde_free(producer);
    kc_serde_free(consumer);
    kc_ratchet_close(r);
    return 0;
}
