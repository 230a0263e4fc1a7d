/* kc_cryptokey_pkcs11.h — a cryptokey backend whose Ed25519 signing key
 * lives in a PKCS#11 v3.0 token (an HSM, a smartcard, SoftHSM).
 *
 * The key is named by an RFC 7512 URI, e.g.
 *
 *   pkcs11:token=kc;object=node1;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so
 *          &pin-source=file:/etc/kafkacrypto/node1.pin
 *
 * token/manufacturer/serial/model/slot-id pick the token, object (CKA_LABEL)
 * and id (CKA_ID) the key; module-path names the PKCS#11 module (required:
 * we load exactly what the URI says). The PIN comes from pin-source (a file,
 * first line) or else $KAFKACRYPTO_PKCS11_PIN; a pin-value inside the URI is
 * refused, because URIs end up in argv and in NODE.config.
 *
 * Signing is CKM_EDDSA with a non-extractable private key of type
 * CKK_EC_EDWARDS; the public key is read from the token (CKA_EC_POINT of the
 * public key object with the same CKA_ID, or label). Nothing here ever asks
 * the token for private key bytes.
 *
 * The key that wraps opaque values (upstream's ek) is not stored anywhere:
 * it is BLAKE2b of the token's Ed25519 signature over a fixed context and
 * the public key. Ed25519 (RFC 8032) signatures are deterministic, so the
 * same token key gives the same ek on every open, and nobody without the
 * token can compute it. The backend refuses to sign any message that
 * starts with that context, so the signature is never published.
 *
 * A token that goes away (CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT,
 * CKR_SESSION_HANDLE_INVALID, ...) makes signing fail with a logged error
 * naming the URI; the next signature re-opens the session (after checking
 * the token still holds the same public key) and logs the recovery.
 *
 * Ephemeral keys are version 1 only and legacy is false, as in a new
 * upstream .crypto file. */
#ifndef KC_CRYPTOKEY_PKCS11_H
#define KC_CRYPTOKEY_PKCS11_H

#include <stdbool.h>
#include <stddef.h>

#include "kc_cryptokey.h"
#include "kc_err.h"

#define KC_PKCS11_PIN_ENV "KAFKACRYPTO_PKCS11_PIN"

/* Does s look like a pkcs11: URI (rather than a file# reference)? */
bool kc_pkcs11_is_uri(const char *s);

/* The URI as it may be shown: any pin-value attribute removed. malloc'd. */
char *kc_pkcs11_uri_shown(const char *uri);

/* Opens the key the URI names. With create, a key pair is generated in the
 * token (CKA_SENSITIVE, not CKA_EXTRACTABLE) and it is an error if a
 * matching key already exists; create needs object= or id= in the URI.
 * Every error names the URI (without any PIN). */
kc_status kc_cryptokey_pkcs11_open(kc_cryptokey **out, const char *uri, bool create,
                                   kc_err *err);

#endif
