#include "kc_array.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* items_ptr is a T ** passed as void *: read and write the T * by memcpy, which
 * is valid for any object pointer type. */
kc_status kc_array_resize(void *items_ptr, size_t n, size_t elem)
{
    if (n == 0 || elem == 0 || n > SIZE_MAX / elem)
        return KC_ERR_NOMEM;
    void *old, *grown;
    memcpy(&old, items_ptr, sizeof old);
    if (!(grown = realloc(old, n * elem)))
        return KC_ERR_NOMEM;
    memcpy(items_ptr, &grown, sizeof grown);
    return KC_OK;
}

kc_status kc_array_reserve(void *items_ptr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return KC_OK;
    size_t ncap = *cap > SIZE_MAX / 2 ? SIZE_MAX : 2 * *cap;
    if (ncap < 8)
        ncap = 8;
    if (ncap < need)
        ncap = need;
    kc_status st = kc_array_resize(items_ptr, ncap, elem);
    if (st == KC_OK)
        *cap = ncap;
    return st;
}
