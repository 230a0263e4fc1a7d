/* `.seed` file contents (and the `oldkeys` structure, the other file-borne
 * input of the data path): never crash; whatever parses re-encodes to
 * something that parses to the same pair. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kc_log.h"
#include "kc_ratchet.h"
#include "kc_serde.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static kc_serde *s;
    if (!s) {
        kc_log_set_level(KC_LOG_CRITICAL);
        kc_serde_config c;
        kc_serde_config_init(&c);
        if (kc_serde_new(&c, &s, NULL) != KC_OK)
            abort();
    }
    uint64_t idx, idx2;
    uint8_t secret[32], secret2[32];
    if (kc_seed_parse(data, size, "fuzz.seed", &idx, secret, NULL) == KC_OK) {
        kc_buf out = KC_BUF_INIT;
        if (kc_seed_encode(idx, secret, &out) != KC_OK ||
            kc_seed_parse(out.data, out.len, "fuzz.seed", &idx2, secret2, NULL) != KC_OK ||
            idx != idx2 || memcmp(secret, secret2, 32) != 0 || idx == UINT64_MAX)
            __builtin_trap();
        kc_buf_free(&out);
    }
    /* oldkeys: loaded records are never able to encrypt */
    (void)kc_serde_import_pgens(s, data, size, NULL);
    return 0;
}
