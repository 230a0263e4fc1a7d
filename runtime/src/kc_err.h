/* kc_err.h — status codes and human-readable error details.
 *
 * Every entry point returns a kc_status. Functions that can explain a
 * failure also take a `kc_err *` (may be NULL) that receives a message a
 * person can act on: which file, field or topic, and what was expected.
 * Messages never contain secret material. */
#ifndef KC_ERR_H
#define KC_ERR_H

#include <stdarg.h>

#include "kafkacrypto.h"

/* kc_status, kc_err and kc_status_str() are public: kafkacrypto.h. */

/* Records `code` and a formatted message in `err` (if not NULL) and returns
 * `code`, so that callers can write `return kc_err_set(err, ...)`. */
kc_status kc_err_set(kc_err *err, kc_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in `err` with more context
 * ("file x.crypto: " + "signing key 2: bad length"). Returns err->code. */
kc_status kc_err_prefix(kc_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void kc_err_clear(kc_err *err);

#endif
