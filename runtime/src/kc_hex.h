/* kc_hex.h — hex and base64 text forms of byte strings (lowercase hex,
 * standard padded base64 as Python's base64 module writes it). */
#ifndef KC_HEX_H
#define KC_HEX_H

#include <stddef.h>
#include <stdint.h>

#include "kc_buf.h"
#include "kc_err.h"

/* Writes 2n+1 chars (NUL-terminated) into out; returns out. */
char *kc_hex(const uint8_t *p, size_t n, char *out);
/* Appends lowercase hex of p to buf (without NUL). */
kc_status kc_hex_append(kc_buf *buf, const uint8_t *p, size_t n);
/* Decodes hex (either case, no separators) into buf. */
kc_status kc_unhex(const char *text, size_t len, kc_buf *out);

kc_status kc_base64_encode(const uint8_t *p, size_t n, kc_buf *out); /* NUL-terminated; len excludes NUL */
/* Strict: only the standard alphabet with correct '=' padding. */
kc_status kc_base64_decode(const char *text, size_t len, kc_buf *out);

#endif
