/* kc_array.h — the library's one growable array.
 *
 * An array is three fields the owner keeps: a pointer, a count and a capacity.
 * KC_ARRAY_GROW makes room for one more element, doubling the capacity so that
 * n appends cost O(n) copies; it never touches the count or the elements.
 * Arrays in public structs have no capacity field (the ABI is fixed): they grow
 * one element at a time with kc_array_resize. Both are overflow-checked and
 * leave the array as it was when they fail. Not for secrets: realloc does not
 * wipe the old block (kc_buf and sodium_allocarray do). */
#ifndef KC_ARRAY_H
#define KC_ARRAY_H

#include <stddef.h>

#include "kafkacrypto.h"

/* Ensures *cap >= need for the array at *(T **)items_ptr of elem-byte elements,
 * growing to the larger of need and twice *cap (at least 8). KC_ERR_NOMEM when
 * out of memory or when the size would overflow. */
kc_status kc_array_reserve(void *items_ptr, size_t *cap, size_t need, size_t elem);

/* Resizes the array at *(T **)items_ptr to exactly n elements (n > 0). */
kc_status kc_array_resize(void *items_ptr, size_t n, size_t elem);

/* Room for element number n (0-based) of arr, whose capacity is cap. */
#define KC_ARRAY_GROW(arr, n, cap) kc_array_reserve(&(arr), &(cap), (n) + 1, sizeof *(arr))

#endif
