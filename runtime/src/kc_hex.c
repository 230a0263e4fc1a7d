#include "kc_hex.h"

#include <sodium.h>
#include <string.h>

char *kc_hex(const uint8_t *p, size_t n, char *out)
{
    sodium_bin2hex(out, 2 * n + 1, p, n);
    return out;
}

kc_status kc_hex_append(kc_buf *buf, const uint8_t *p, size_t n)
{
    kc_status st = kc_buf_reserve(buf, 2 * n + 1);
    if (st != KC_OK)
        return st;
    sodium_bin2hex((char *)buf->data + buf->len, 2 * n + 1, p, n);
    buf->len += 2 * n;
    return KC_OK;
}

kc_status kc_unhex(const char *text, size_t len, kc_buf *out)
{
    kc_buf_reset(out);
    if (len % 2)
        return KC_ERR_INVALID;
    kc_status st = kc_buf_reserve(out, len / 2 + 1);
    if (st != KC_OK)
        return st;
    size_t n = 0;
    const char *end;
    if (sodium_hex2bin(out->data, len / 2 + 1, text, len, NULL, &n, &end) != 0 ||
        end != text + len)
        return KC_ERR_INVALID;
    out->len = n;
    return KC_OK;
}

kc_status kc_base64_encode(const uint8_t *p, size_t n, kc_buf *out)
{
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
    kc_buf_reset(out);
    kc_status st = kc_buf_reserve(out, cap);
    if (st != KC_OK)
        return st;
    sodium_bin2base64((char *)out->data, cap, p, n, sodium_base64_VARIANT_ORIGINAL);
    out->len = cap - 1;
    return KC_OK;
}

kc_status kc_base64_decode(const char *text, size_t len, kc_buf *out)
{
    kc_buf_reset(out);
    if (len % 4)
        return KC_ERR_INVALID;
    kc_status st = kc_buf_reserve(out, len / 4 * 3 + 1);
    if (st != KC_OK)
        return st;
    size_t n = 0;
    const char *end;
    if (sodium_base642bin(out->data, len / 4 * 3 + 1, text, len, NULL, &n, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != text + len)
        return KC_ERR_INVALID;
    out->len = n;
    return KC_OK;
}
