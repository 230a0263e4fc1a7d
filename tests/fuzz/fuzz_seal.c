/* Opening arbitrary bytes as a sealed box (custom format, then libsodium's
 * fallback) never crashes and never yields output on failure; sealing the
 * input to the same key always opens to it. */
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kc_keys.h"
#include "kc_seal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static kc_key sk, pk;
    static int ready;
    if (!ready) {
        /* the recipient of tests/vectors/data/seal.json's first vectors */
        static const uint8_t secret[32] = {
            0xff, 0x93, 0x77, 0x60, 0x37, 0x84, 0xd3, 0xbe, 0x73, 0x72, 0x93, 0x4f, 0x7c, 0x7a, 0xf5, 0x36,
            0x98, 0xec, 0xab, 0xc8, 0xf0, 0x86, 0x9b, 0x97, 0xe6, 0x2e, 0xa1, 0xb4, 0x91, 0x5a, 0xc7, 0x29};
        if (sodium_init() < 0 || kc_key_from_bytes(&sk, KC_KEM_SK, secret, 32, NULL) != KC_OK ||
            kc_key_public(&pk, &sk) != KC_OK)
            __builtin_trap();
        ready = 1;
    }
    kc_buf out = KC_BUF_INIT, sealed = KC_BUF_INIT;
    kc_err err;
    if (kc_seal_open(&sk, data, size, &out, &err) != KC_OK && out.len != 0)
        __builtin_trap();
    if (kc_seal(&pk, data, size, &sealed, NULL) != KC_OK ||
        kc_seal_open(&sk, sealed.data, sealed.len, &out, NULL) != KC_OK || out.len != size ||
        (size && memcmp(out.data, data, size) != 0))
        __builtin_trap();
    kc_buf_free(&out);
    kc_buf_free(&sealed);
    return 0;
}
