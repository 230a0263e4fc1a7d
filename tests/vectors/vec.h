/* vec.h — the interop vector runner: one handler per area of
 * tests/vectors/data (keygen, ratchet, message, keys, seal, chain, exchange,
 * provision, store). A handler walks its file's `vectors` and reports every
 * check with exactly one of pass / fail / diverge / skip.
 *
 * Areas are weak symbols: an area whose vec_<area>.c is not linked in yet is
 * reported as skipped (never as passed). */
#ifndef KC_VEC_H
#define KC_VEC_H

#include <jansson.h>
#include <stdbool.h>

#include "kc_buf.h"

typedef struct vec_ctx {
    const char *file;  /* path of the vector file */
    json_t *root;      /* the whole file */
    int passed, failed, diverged, skipped;
    char **divergences; /* "name: why", listed in the report */
    int ndivergences;
    bool verbose;
} vec_ctx;

typedef void (*vec_area_fn)(vec_ctx *ctx, json_t *root);

void vec_pass(vec_ctx *ctx, const char *name);
void vec_fail(vec_ctx *ctx, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A known, deliberate difference from upstream: `why` cites the project
 * decision (spec Appendix B). Use only where the vector records upstream
 * behaviour the spec tells us not to reproduce. */
void vec_diverge(vec_ctx *ctx, const char *name, const char *why);
void vec_skip(vec_ctx *ctx, const char *name, const char *why);

/* Checks `got` against the hex string (or {"hex":..}) `want`; reports. */
bool vec_check_bytes(vec_ctx *ctx, const char *name, const char *what,
                     const uint8_t *got, size_t got_len, json_t *want);

/* Byte string of a JSON value: "hex", {"hex": ..}, {"str": ..} (UTF-8),
 * {"bin": hex}, {"bytes_utf8": text}. Returns false if it is none of those. */
bool vec_bytes(json_t *v, kc_buf *out);
/* Like vec_bytes for required fields: aborts with the file and field name if
 * the data is missing or malformed (a broken vector file, not a failure). */
kc_buf vec_req_bytes(vec_ctx *ctx, json_t *obj, const char *field);
const char *vec_req_str(vec_ctx *ctx, json_t *obj, const char *field);
/* "name" of a vector, or "<area>#<index>" */
const char *vec_name(json_t *v, const char *area, size_t index, char *buf, size_t cap);

/* The handlers, one per area (tests/vectors/vec_<area>.c). */
#define VEC_AREAS(X) X(keygen) X(ratchet) X(message) X(keys) X(seal) \
                     X(chain) X(exchange) X(provision) X(store)
#define VEC_DECLARE(a) void vec_area_##a(vec_ctx *ctx, json_t *root) __attribute__((weak));
VEC_AREAS(VEC_DECLARE)
#undef VEC_DECLARE

#endif
