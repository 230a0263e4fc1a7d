/* kc_value.h — typed config values with upstream's text conversions.
 *
 * kc_value (public, kafkacrypto.h) is what Python's str_decode returns for
 * a config entry; kc_value_encode is str_encode (spec §10.2). The Python
 * parsers underneath (int(), float(), repr(float), b64decode(validate=True))
 * follow CPython 3.11 exactly, including Unicode digits and whitespace,
 * '_' separators and the 4300-digit limit of int(). */
#ifndef KC_VALUE_H
#define KC_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kafkacrypto.h"
#include "kc_buf.h"
#include "kc_err.h"

/* str_decode of valid UTF-8 text: int, float, bool, base64# bytes (NONE if
 * the base64 is invalid), else text — lower-cased when iskey. */
kc_status kc_value_decode(const uint8_t *text, size_t n, bool iskey, kc_value *out);

/* str_encode, appended to out (no NUL): bool "True"/"False", int decimal,
 * float repr, text unchanged (lower-cased when iskey), bytes
 * "base64#<standard base64>" (never lower-cased). NONE is refused. */
kc_status kc_value_encode(const kc_value *v, bool iskey, kc_buf *out, kc_err *err);

/* Deep copy into an owned value. */
kc_status kc_value_copy(kc_value *dst, const kc_value *src);
/* An owned value holding a copy of p[0..n) (TEXT, BYTES or BIGINT). */
kc_status kc_value_set_data(kc_value *v, kc_value_type type, const void *p, size_t n);

/* ---- the Python conversions ---------------------------------------------- */

/* int(text): INT, or BIGINT when outside int64. false if Python refuses. */
bool kc_py_int(const uint8_t *text, size_t n, kc_value *out);
/* float(text). false if Python refuses. */
bool kc_py_float(const uint8_t *text, size_t n, double *out);
/* repr(float): shortest round-trip digits, "1e+16", "0.0001", "inf", "nan". */
#define KC_FLOAT_REPR_MAX 32
void kc_py_float_repr(double d, char out[KC_FLOAT_REPR_MAX]);
/* base64.b64decode(text, validate=True) of CPython 3.11. */
kc_status kc_py_b64decode(const uint8_t *text, size_t n, kc_buf *out);

#endif
