/* kc_any.h — an argument whose type is only known at run time.
 *
 * Upstream's Python API is dynamically typed: a salt may be bytes, text or
 * an integer taken from a message; a serializer input may be None, bytes or
 * a message object. Entry points that must behave like upstream on every
 * such input (message parsing, future language bindings, the vector runner)
 * take a kc_any and apply upstream's rules; plain C callers use the typed
 * functions instead. */
#ifndef KC_ANY_H
#define KC_ANY_H

#include <stddef.h>
#include <stdint.h>

typedef enum kc_any_type {
    KC_ANY_NONE = 0,  /* Python None / absent argument */
    KC_ANY_BYTES,     /* bytes (also msgpack str under raw=True) */
    KC_ANY_TEXT,      /* Python str, UTF-8 */
    KC_ANY_MESSAGE,   /* a kc_message object (serializer input) */
    KC_ANY_OTHER      /* any other type (int, float, list, ...) */
} kc_any_type;

struct kc_message;

typedef struct kc_any {
    kc_any_type type;
    const uint8_t *p;              /* BYTES, TEXT */
    size_t len;
    const struct kc_message *msg;  /* MESSAGE */
} kc_any;

static inline kc_any kc_any_none(void)
{
    return (kc_any){KC_ANY_NONE, NULL, 0, NULL};
}

static inline kc_any kc_any_bytes(const void *p, size_t len)
{
    return (kc_any){KC_ANY_BYTES, (const uint8_t *)p, len, NULL};
}

static inline kc_any kc_any_text(const char *p, size_t len)
{
    return (kc_any){KC_ANY_TEXT, (const uint8_t *)p, len, NULL};
}

static inline kc_any kc_any_other(void)
{
    return (kc_any){KC_ANY_OTHER, NULL, 0, NULL};
}

/* Python's "bytes, or text encoded as UTF-8" (what pysodium accepts). */
static inline int kc_any_is_bytes_like(const kc_any *a)
{
    return a->type == KC_ANY_BYTES || a->type == KC_ANY_TEXT;
}

#endif
