/* `.seed` file contents (and the `oldkeys` structure, the other file-borne
 * input of the data path): never crash; whatever parses re-encodes to
 * something that parses to the same pair, or (oldkeys) to the same records.
 * A fresh serde per input: one kept for the whole run would gather every
 * record ever loaded (millions of runs), which no node does. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kc_log.h"
#include "kc_ratchet.h"
#include "kc_serde.h"

static double fixed_now(void *ctx)
{
    (void)ctx;
    return 1.7e9;  /* the same window for both loads */
}

static kc_serde *fresh_serde(void)
{
    kc_serde_config c;
    kc_serde_config_init(&c);
    c.now_fn = fixed_now;
    kc_serde *s;
    if (kc_serde_new(&c, &s, NULL) != KC_OK)
        abort();
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kc_log_set_level(KC_LOG_CRITICAL);
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
    /* oldkeys: loaded twice (the second load meets every record again),
     * saved, and the saved form loads to the same records. */
    kc_serde *a = fresh_serde(), *b = fresh_serde();
    kc_buf first = KC_BUF_INIT, again = KC_BUF_INIT;
    if (kc_serde_import_pgens(a, data, size, NULL) == KC_OK) {
        size_t n1, n2;
        if (kc_serde_import_pgens(a, data, size, NULL) != KC_OK ||
            kc_serde_export_pgens(a, &first, &n1, NULL) != KC_OK ||
            kc_serde_import_pgens(b, first.data, first.len, NULL) != KC_OK ||
            kc_serde_export_pgens(b, &again, &n2, NULL) != KC_OK || n1 != n2 ||
            first.len != again.len || memcmp(first.data, again.data, first.len) != 0)
            __builtin_trap();
    }
    kc_buf_free(&first);
    kc_buf_free(&again);
    kc_serde_free(a);
    kc_serde_free(b);
    return 0;
}
