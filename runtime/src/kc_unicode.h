/* kc_unicode.h — the parts of Python's text model the node config needs.
 *
 * Upstream reads NODE.config as Python text: strict UTF-8, whitespace as
 * str.isspace(), keys lower-cased with str.lower() (full mapping, including
 * U+0130 and the final-sigma rule), and int()/float() accept any Unicode
 * decimal digit. These helpers reproduce exactly that, from tables generated
 * out of Python 3.11 (kc_unicode_gen.py). */
#ifndef KC_UNICODE_H
#define KC_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kc_buf.h"
#include "kc_err.h"

/* Length of the valid UTF-8 prefix of p[0..n) as Python's strict decoder
 * sees it (no overlongs, surrogates or code points above U+10FFFF). */
size_t kc_utf8_valid_prefix(const uint8_t *p, size_t n);
static inline bool kc_utf8_valid(const uint8_t *p, size_t n)
{
    return kc_utf8_valid_prefix(p, n) == n;
}

/* Decodes the code point at p[*i] of VALID UTF-8 and advances *i. */
uint32_t kc_utf8_next(const uint8_t *p, size_t *i);
/* Decodes the code point ending just before p[*i] of VALID UTF-8 and moves
 * *i back to its first byte. */
uint32_t kc_utf8_prev(const uint8_t *p, size_t *i);
/* Appends the UTF-8 form of cp. */
kc_status kc_utf8_append(kc_buf *b, uint32_t cp);

/* Python str.isspace() for one code point. */
bool kc_uc_isspace(uint32_t cp);
/* Value 0..9 of a Unicode decimal digit (category Nd), else -1. */
int kc_uc_decimal(uint32_t cp);

/* Python str.strip() on valid UTF-8: the bounds of the stripped text. */
void kc_uc_strip(const uint8_t *p, size_t n, size_t *start, size_t *end);
/* Python str.rstrip(): the length without trailing whitespace. */
size_t kc_uc_rstrip(const uint8_t *p, size_t n);

/* Python str.lower() of valid UTF-8 text, appended to out. */
kc_status kc_uc_lower(const uint8_t *p, size_t n, kc_buf *out);

#endif
