/* kc_cryptokey_ref.h — opens the cryptokey backend a node config names:
 * `cryptokey : file#PATH` (the .crypto file, the default) or
 * `cryptokey : pkcs11:...` (a key in a PKCS#11 token, kc_cryptokey_pkcs11.h). */
#ifndef KC_CRYPTOKEY_REF_H
#define KC_CRYPTOKEY_REF_H

#include <stddef.h>

#include "kc_cryptokey.h"
#include "kc_err.h"
#include "kc_store.h"

/* A .crypto path or a pkcs11: URI. keytypes as kc_cryptokey_open; a token
 * key is Ed25519 (type 1), so any other requested type is unsupported. */
kc_status kc_cryptokey_open_ref(kc_cryptokey **out, const char *ref, const int *keytypes,
                                size_t n_keytypes, kc_err *err);

/* The node's `cryptokey` option names a key in a token (a pkcs11: URI). */
bool kc_cryptokey_ref_is_token(kc_store *s);

/* The node's `cryptokey` option (a missing one becomes file#NODE.crypto,
 * remembered in the config, as upstream). */
kc_status kc_cryptokey_open_config(kc_cryptokey **out, kc_store *s, const int *keytypes,
                                   size_t n_keytypes, kc_err *err);

#endif
