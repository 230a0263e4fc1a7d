/* Key parsing on arbitrary bytes: get_pks and every constructor, on the
 * bytes themselves and on their msgpack decoding. Never crash; whatever
 * parses must survive bytes() -> parse -> equal, and pack/describe. */
#include <stddef.h>
#include <stdint.h>

#include "kc_keys.h"
#include "kc_mp.h"

static void exercise(const kc_key *k)
{
    char text[256];
    kc_key_describe(k, text, sizeof text);
    kc_buf b = KC_BUF_INIT;
    if (kc_key_bytes(k, &b) != KC_OK)
        __builtin_trap();
    kc_key back;
    if (kc_key_from_bytes(&back, k->kind, b.data, b.len, NULL) != KC_OK || !kc_key_equal(&back, k))
        __builtin_trap();
    kc_key_clear(&back);
    kc_mp_out o;
    kc_mp_out_init(&o);
    kc_key_pack(&o.pk, k);
    kc_mp_out_free(&o);
    kc_key copy, kem;
    if (kc_key_copy(&copy, k) == KC_OK) {
        bool sign = k->kind == KC_SIGN_PK || k->kind == KC_SIGN_SK;
        if (!kc_key_equal(&copy, k) || kc_key_same_type(&copy, k) != sign)
            __builtin_trap();
        kc_key_clear(&copy);
    }
    if (kc_key_to_kem_pk(&kem, k) == KC_OK) {
        (void)kc_kem_esk_version(&kem);
        kc_key_clear(&kem);
    }
    kc_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const kc_key_kind kinds[] = {KC_SIGN_PK, KC_SIGN_SK, KC_KEM_PK, KC_KEM_SK};
    kc_key k;
    for (int i = 0; i < 4; i++)
        if (kc_key_from_bytes(&k, kinds[i], data, size, NULL) == KC_OK) {
            exercise(&k);
            kc_key_clear(&k);
        }
    kc_mp_doc doc;
    if (kc_mp_decode(&doc, data, size, "fuzz", NULL) != KC_OK)
        return 0;
    const msgpack_object *o = kc_mp_root(&doc);
    for (int i = 0; i < 4; i++)
        if (kc_key_from_object(&k, kinds[i], o, NULL) == KC_OK) {
            exercise(&k);
            kc_key_clear(&k);
        }
    kc_pks pks, copy;
    kc_err err;
    if (kc_get_pks(&pks, o, &err) == KC_OK) {
        for (size_t i = 0; i < pks.n; i++)
            exercise(&pks.keys[i]);
        kc_mp_out out;
        kc_mp_out_init(&out);
        kc_pks_pack(&out.pk, &pks);
        kc_mp_out_free(&out);
        if (kc_pks_copy(&copy, &pks) == KC_OK)
            kc_pks_clear(&copy);
        kc_pks_clear(&pks);
    }
    kc_mp_doc_free(&doc);
    return 0;
}
