/* The NODE.config reader on arbitrary bytes: never crash; whatever parses
 * must write out, parse back to the same content and write the same bytes
 * again. Interpolation and value typing run on every option too. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kc_ini.h"
#include "kc_value.h"

static void read_every_option(const kc_ini *ini)
{
    for (size_t i = 0; i <= ini->n; i++) {
        const kc_ini_section *s = i == 0 ? &ini->defaults : ini->secs[i - 1];
        const kc_ini_option **opts;
        size_t n;
        if (kc_ini_options(ini, s, &opts, &n) != KC_OK)
            continue;
        for (size_t j = 0; j < n; j++) {
            kc_buf v = KC_BUF_INIT;
            kc_value key = kc_value_none(), val = kc_value_none();
            kc_value_decode(opts[j]->name, opts[j]->name_len, true, &key);
            if (kc_ini_get(ini, s, opts[j]->name, opts[j]->name_len, &v, NULL) == KC_OK)
                kc_value_decode(v.data, v.len, false, &val);
            kc_value_clear(&key);
            kc_value_clear(&val);
            kc_buf_free(&v);
        }
        free(opts);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kc_ini a, b;
    kc_ini_init(&a);
    kc_ini_init(&b);
    kc_buf w1 = KC_BUF_INIT, w2 = KC_BUF_INIT;
    if (kc_ini_parse(&a, data, size, "fuzz", NULL) == KC_OK) {
        read_every_option(&a);
        if (kc_ini_write(&a, &w1) != KC_OK)
            __builtin_trap();
        if (kc_ini_parse(&b, w1.data, w1.len, "rewritten", NULL) != KC_OK)
            __builtin_trap();
        if (!kc_ini_equal(&a, &b))
            __builtin_trap();
        if (kc_ini_write(&b, &w2) != KC_OK || w1.len != w2.len ||
            (w1.len && memcmp(w1.data, w2.data, w1.len) != 0))
            __builtin_trap();
    }
    kc_buf_free(&w1);
    kc_buf_free(&w2);
    kc_ini_free(&a);
    kc_ini_free(&b);
    return 0;
}
