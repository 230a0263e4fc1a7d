/* kc_err.h — status codes and human-readable error details.
 *
 * Every entry point returns a kc_status. Functions that can explain a
 * failure also take a `kc_err *` (may be NULL) that receives a message a
 * person can act on: which file, field or topic, and what was expected.
 * Messages never contain secret material. */
#ifndef KC_ERR_H
#define KC_ERR_H

#include <stdarg.h>

typedef enum kc_status {
    KC_OK = 0,
    KC_ERR_INVALID,      /* malformed input or bad argument */
    KC_ERR_CRYPTO,       /* signature, MAC or key agreement failed */
    KC_ERR_UNSUPPORTED,  /* recognised but not implemented (post-quantum) */
    KC_ERR_NOTFOUND,     /* no such key, file, section or option */
    KC_ERR_DENIED,       /* refused by trust rules or policy */
    KC_ERR_EXPIRED,      /* a certificate or message is past its max_age */
    KC_ERR_IO,           /* file system or network error */
    KC_ERR_NOMEM,
    KC_ERR_BUSY,         /* locked by another process */
    KC_ERR_STATE         /* called in the wrong state (closed, not started) */
} kc_status;

#define KC_ERR_MSG_MAX 512

typedef struct kc_err {
    kc_status code;
    char msg[KC_ERR_MSG_MAX];
} kc_err;

/* Records `code` and a formatted message in `err` (if not NULL) and returns
 * `code`, so that callers can write `return kc_err_set(err, ...)`. */
kc_status kc_err_set(kc_err *err, kc_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in `err` with more context
 * ("file x.crypto: " + "signing key 2: bad length"). Returns err->code. */
kc_status kc_err_prefix(kc_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void kc_err_clear(kc_err *err);

/* A short English name for a status ("invalid input", "crypto failure"). */
const char *kc_status_str(kc_status code);

#endif
