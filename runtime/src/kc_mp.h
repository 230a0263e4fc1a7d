/* kc_mp.h — msgpack conventions of upstream kafkacrypto, on top of msgpack-c.
 *
 * Decoding mirrors msgpack-python's unpackb(raw=True): exactly one object,
 * trailing bytes are an error, and str and bin are both "bytes" to the
 * accessors below. Encoding uses msgpack-c's packer, which already picks the
 * smallest representation, str8 and float64 exactly as Python does. */
#ifndef KC_MP_H
#define KC_MP_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kc_buf.h"
#include "kc_err.h"

/* ---- decoding ---------------------------------------------------------- */

typedef struct kc_mp_doc {
    msgpack_unpacked u;
    bool live;
} kc_mp_doc;

/* Decodes exactly one object from p[0..n). Trailing bytes, truncation and
 * nesting deeper than msgpack-c supports are KC_ERR_INVALID. `what` names
 * the input in error messages ("chain", "file node1.seed"). Byte strings
 * of the document point into p (no copy): keep p alive while using it. */
kc_status kc_mp_decode(kc_mp_doc *doc, const uint8_t *p, size_t n,
                       const char *what, kc_err *err);

/* Like kc_mp_decode but accepts trailing bytes; *used receives the length
 * of the first object. */
kc_status kc_mp_decode_prefix(kc_mp_doc *doc, const uint8_t *p, size_t n,
                              size_t *used, const char *what, kc_err *err);

static inline const msgpack_object *kc_mp_root(const kc_mp_doc *doc)
{
    return &doc->u.data;
}

void kc_mp_doc_free(kc_mp_doc *doc);

/* Refuses inputs whose declared container sizes exceed the bytes that are
 * left. msgpack-c allocates a container's slots before reading them, so an
 * unchecked 5-byte header could request gigabytes. Called by the decoders;
 * exposed for tests. */
bool kc_mp_sizes_plausible(const uint8_t *p, size_t n);

/* ---- accessors (raw=True semantics) ------------------------------------ */

/* str or bin */
bool kc_mp_is_bytes(const msgpack_object *o);
bool kc_mp_bytes(const msgpack_object *o, const uint8_t **p, size_t *n);
/* str or bin of exactly `len` bytes */
bool kc_mp_bytes_len(const msgpack_object *o, size_t len, const uint8_t **p);
/* str or bin whose bytes equal the NUL-terminated text s */
bool kc_mp_text_eq(const msgpack_object *o, const char *s);
/* any integer (not bool) that fits int64 */
bool kc_mp_int(const msgpack_object *o, int64_t *v);
/* any integer or float (not bool), as a double — how Python compares ages */
bool kc_mp_number(const msgpack_object *o, double *v);
static inline bool kc_mp_is_array(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_ARRAY;
}
/* Python len(): array/map entries, str/bin bytes; -1 when it has no length */
int64_t kc_mp_pylen(const msgpack_object *o);
/* Python == on raw-decoded values: str and bin compare by bytes, ints and
 * floats numerically, containers element-wise. */
bool kc_mp_equal(const msgpack_object *a, const msgpack_object *b);

/* ---- encoding ---------------------------------------------------------- */

/* A packer writing into a kc_buf. Allocation failures are sticky: check
 * kc_mp_out_status() once at the end instead of after every call. */
typedef struct kc_mp_out {
    kc_buf buf;
    bool failed;
    msgpack_packer pk;
} kc_mp_out;

void kc_mp_out_init(kc_mp_out *out);
kc_status kc_mp_out_status(const kc_mp_out *out);
void kc_mp_out_free(kc_mp_out *out);

static inline void kc_mp_pack_bin(msgpack_packer *pk, const void *p, size_t n)
{
    msgpack_pack_bin_with_body(pk, p, n);
}
void kc_mp_pack_text(msgpack_packer *pk, const char *s);

/* ---- display ----------------------------------------------------------- */

/* A one-line, Python-like rendering for logs and errors, truncated to fit:
 * [0, b'\x90', b'ab12…'] — byte strings are shown as hex. Returns out. */
char *kc_mp_describe(const msgpack_object *o, char *out, size_t cap);

#endif
