/* .crypto parsing from bytes (the loader without a path writes nothing):
 * never crash, never leak; a file that loads must support every operation. */
#include <stddef.h>
#include <stdint.h>

#include "kc_cryptokey.h"
#include "kc_cryptokey_file.h"
#include "kc_log.h"

static void quiet(void *ctx, kc_log_level level, const char *logger, const char *message)
{
    (void)ctx; (void)level; (void)logger; (void)message;
}

static void exercise(kc_cryptokey *ck)
{
    kc_buf b = KC_BUF_INIT, w = KC_BUF_INIT;
    if (kc_cryptokey_get_id_spk(ck, &b, NULL) != KC_OK)
        __builtin_trap();
    for (size_t i = 0; i < kc_cryptokey_num_spk(ck); i++)
        if (kc_cryptokey_sign(ck, i, (const uint8_t *)"m", 1, &b, NULL) != KC_OK)
            __builtin_trap();
    if (kc_cryptokey_wrap_opaque(ck, (const uint8_t *)"v", 1, &w, NULL) != KC_OK ||
        kc_cryptokey_unwrap_opaque(ck, w.data, w.len, &b) != KC_OK || b.len != 1)
        __builtin_trap();
    kc_epks e;
    if (kc_cryptokey_get_epks(ck, "t", "decrypt_keys", &e, NULL) != KC_OK || e.n == 0)
        __builtin_trap();
    kc_kem_results r;
    if (kc_cryptokey_use_epks(ck, "t", "decrypt_keys", e.keys, e.n, true, &r, NULL) != KC_OK ||
        r.n != e.n)
        __builtin_trap();
    kc_kem_results_clear(&r);
    kc_epks_clear(&e);
    kc_buf_free(&b);
    kc_buf_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kc_log_set_sink(quiet, NULL);
    static const int keytypes[] = {1};
    kc_cryptokey *ck;
    kc_err err;
    if (kc_cryptokey_open_bytes(&ck, data, size, "fuzz.crypto", NULL, 0, &err) == KC_OK) {
        exercise(ck);
        kc_cryptokey_close(ck);
    }
    if (kc_cryptokey_open_bytes(&ck, data, size, "fuzz.crypto", keytypes, 1, &err) == KC_OK) {
        exercise(ck);
        kc_cryptokey_close(ck);
    }
    return 0;
}
