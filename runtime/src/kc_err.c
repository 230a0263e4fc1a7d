#include "kc_err.h"

#include <stdio.h>
#include <string.h>

kc_status kc_err_set(kc_err *err, kc_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

kc_status kc_err_prefix(kc_err *err, const char *fmt, ...)
{
    if (!err)
        return KC_ERR_INVALID;
    char old[KC_ERR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (k >= 0 && (size_t)k < sizeof err->msg)
        memcpy(err->msg + k, old, strnlen(old, sizeof old - 1 - (size_t)k) + 1);
    err->msg[sizeof err->msg - 1] = '\0';
    return err->code;
}

void kc_err_clear(kc_err *err)
{
    if (err) {
        err->code = KC_OK;
        err->msg[0] = '\0';
    }
}

const char *kc_status_str(kc_status code)
{
    switch (code) {
    case KC_OK: return "ok";
    case KC_ERR_INVALID: return "invalid input";
    case KC_ERR_CRYPTO: return "cryptographic check failed";
    case KC_ERR_UNSUPPORTED: return "unsupported";
    case KC_ERR_NOTFOUND: return "not found";
    case KC_ERR_DENIED: return "denied";
    case KC_ERR_EXPIRED: return "expired";
    case KC_ERR_IO: return "i/o error";
    case KC_ERR_NOMEM: return "out of memory";
    case KC_ERR_BUSY: return "busy";
    case KC_ERR_STATE: return "wrong state";
    }
    return "unknown error";
}
