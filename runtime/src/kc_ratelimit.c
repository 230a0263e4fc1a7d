#include "kc_ratelimit.h"

#include <string.h>

void kc_ratelimit_init(kc_ratelimit *r)
{
    memset(r, 0, sizeof *r);
    randombytes_buf(r->key, sizeof r->key);
}

bool kc_ratelimit_due(kc_ratelimit *r, const char *a, const char *b, double now, double interval)
{
    crypto_generichash_state st;
    uint8_t digest[crypto_generichash_BYTES_MIN];
    /* a and b with the NUL between them, so ("ab", "c") differs from ("a", "bc") */
    crypto_generichash_init(&st, r->key, sizeof r->key, sizeof digest);
    crypto_generichash_update(&st, (const uint8_t *)a, strlen(a) + 1);
    crypto_generichash_update(&st, (const uint8_t *)b, strlen(b) + 1);
    crypto_generichash_final(&st, digest, sizeof digest);
    uint64_t h;
    memcpy(&h, digest, sizeof h);
    size_t oldest = 0;
    for (size_t i = 0; i < KC_RATELIMIT_SLOTS; i++) {
        if (r->slot[i].used && r->slot[i].hash == h) {
            bool due = !(now - r->slot[i].at < interval);
            if (due)
                r->slot[i].at = now;
            return due;
        }
        if (!r->slot[i].used || (r->slot[oldest].used && r->slot[i].at < r->slot[oldest].at))
            oldest = i;
    }
    r->slot[oldest].hash = h;
    r->slot[oldest].at = now;
    r->slot[oldest].used = true;
    return true;
}
