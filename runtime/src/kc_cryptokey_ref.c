#include "kc_cryptokey_ref.h"

#include <stdlib.h>
#include <string.h>

#include "kc_cryptokey_pkcs11.h"

kc_status kc_cryptokey_open_ref(kc_cryptokey **out, const char *ref, const int *keytypes,
                                size_t n_keytypes, kc_err *err)
{
    if (!kc_pkcs11_is_uri(ref))
        return kc_cryptokey_open(out, ref, keytypes, n_keytypes, err);
    *out = NULL;
    for (size_t i = 0; keytypes && i < n_keytypes; i++)
        if (keytypes[i] != 1) {
            char *shown = kc_pkcs11_uri_shown(ref);
            kc_status st = kc_err_set(err, KC_ERR_UNSUPPORTED,
                                      "pkcs11 URI %s: a token key is Ed25519 (key type 1), "
                                      "not type %d", shown ? shown : "(out of memory)",
                                      keytypes[i]);
            free(shown);
            return st;
        }
    return kc_cryptokey_pkcs11_open(out, ref, false, err);
}

kc_status kc_cryptokey_open_config(kc_cryptokey **out, kc_store *s, const int *keytypes,
                                   size_t n_keytypes, kc_err *err)
{
    *out = NULL;
    kc_value v = kc_value_none();
    char *ref = NULL;
    kc_status st = KC_OK;
    if (kc_store_load_value(s, NULL, "cryptokey", &v, NULL) == KC_OK &&
        v.type == KC_VALUE_TEXT && kc_pkcs11_is_uri((const char *)v.data)) {
        if (!(ref = strndup((const char *)v.data, v.len)))
            st = kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    } else {
        st = kc_store_file_option(s, "cryptokey", ".crypto", &ref, err);
    }
    kc_value_clear(&v);
    if (st == KC_OK)
        st = kc_cryptokey_open_ref(out, ref, keytypes, n_keytypes, err);
    free(ref);
    return st;
}
