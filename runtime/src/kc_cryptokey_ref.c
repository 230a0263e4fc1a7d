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

/* The token URI of the cryptokey option (malloc'd), or NULL. */
static char *token_uri(kc_store *s)
{
    kc_value v = kc_value_none();
    char *uri = NULL;
    if (kc_store_load_value(s, NULL, "cryptokey", &v, NULL) == KC_OK &&
        v.type == KC_VALUE_TEXT && kc_pkcs11_is_uri((const char *)v.data))
        uri = strndup((const char *)v.data, v.len);
    kc_value_clear(&v);
    return uri;
}

bool kc_cryptokey_ref_is_token(kc_store *s)
{
    char *uri = token_uri(s);
    free(uri);
    return uri != NULL;
}

kc_status kc_cryptokey_open_config(kc_cryptokey **out, kc_store *s, const int *keytypes,
                                   size_t n_keytypes, kc_err *err)
{
    *out = NULL;
    char *ref = token_uri(s);
    kc_status st = ref ? KC_OK : kc_store_file_option(s, "cryptokey", ".crypto", &ref, err);
    if (st == KC_OK)
        st = kc_cryptokey_open_ref(out, ref, keytypes, n_keytypes, err);
    free(ref);
    return st;
}
