#include "kc_buf.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

kc_status kc_buf_reserve(kc_buf *b, size_t extra)
{
    if (extra <= b->cap - b->len)
        return KC_OK;
    if (extra > SIZE_MAX / 2 - b->len)
        return KC_ERR_NOMEM;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < extra)
        cap *= 2;
    /* Not realloc: the old block may hold secrets and must be wiped. */
    uint8_t *p = malloc(cap);
    if (!p)
        return KC_ERR_NOMEM;
    if (b->data) {
        memcpy(p, b->data, b->len);
        sodium_memzero(b->data, b->cap);
        free(b->data);
    }
    b->data = p;
    b->cap = cap;
    return KC_OK;
}

kc_status kc_buf_append(kc_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return KC_OK;
    kc_status st = kc_buf_reserve(b, n);
    if (st != KC_OK)
        return st;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return KC_OK;
}

kc_status kc_buf_append_byte(kc_buf *b, uint8_t c)
{
    return kc_buf_append(b, &c, 1);
}

kc_status kc_buf_set(kc_buf *b, const void *p, size_t n)
{
    kc_buf_reset(b);
    return kc_buf_append(b, p, n);
}

void kc_buf_reset(kc_buf *b)
{
    if (b->data)
        sodium_memzero(b->data, b->len);
    b->len = 0;
}

void kc_buf_free(kc_buf *b)
{
    if (b->data) {
        sodium_memzero(b->data, b->cap);
        free(b->data);
    }
    b->data = NULL;
    b->len = b->cap = 0;
}

uint8_t *kc_buf_steal(kc_buf *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
