/* kc_buf.h — a growable byte buffer.
 *
 * Buffers may hold secrets, so kc_buf_free() and every reallocation wipe
 * the old bytes with sodium_memzero before releasing them. */
#ifndef KC_BUF_H
#define KC_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "kc_err.h"
#include "kafkacrypto.h"

/* kc_buf and KC_BUF_INIT are public: kafkacrypto.h. */

kc_status kc_buf_reserve(kc_buf *b, size_t extra);
kc_status kc_buf_append(kc_buf *b, const void *p, size_t n);
kc_status kc_buf_append_byte(kc_buf *b, uint8_t c);
kc_status kc_buf_set(kc_buf *b, const void *p, size_t n);
/* Empties the buffer (wiping its content) but keeps the allocation. */
void kc_buf_reset(kc_buf *b);
/* Wipes and frees; the buffer is reusable afterwards. */
void kc_buf_free(kc_buf *b);
/* Hands the bytes to the caller (who must free() them) and empties b. */
uint8_t *kc_buf_steal(kc_buf *b, size_t *len);

#endif
