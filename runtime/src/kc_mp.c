#include "kc_mp.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- size guard -------------------------------------------------------- */

static uint64_t be_uint(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

bool kc_mp_sizes_plausible(const uint8_t *p, size_t n)
{
    /* Walk the headers of the first object. `pending` counts objects still
     * to be read; each needs at least one byte, so it can never exceed what
     * is left. */
    size_t pos = 0;
    uint64_t pending = 1;
    while (pending > 0) {
        if (pos >= n || pending > n - pos)
            return false;
        uint8_t t = p[pos++];
        pending--;
        uint64_t skip = 0, children = 0;
        size_t lenbytes = 0;
        if (t <= 0x7f || t >= 0xe0 || (t >= 0xc0 && t <= 0xc3)) {
            if (t == 0xc1)
                return false;
            continue;
        } else if (t <= 0x8f) {
            children = 2u * (t & 0x0f);
        } else if (t <= 0x9f) {
            children = t & 0x0f;
        } else if (t <= 0xbf) {
            skip = t & 0x1f;
        } else {
            switch (t) {
            case 0xc4: case 0xd9: lenbytes = 1; break;
            case 0xc5: case 0xda: lenbytes = 2; break;
            case 0xc6: case 0xdb: lenbytes = 4; break;
            case 0xc7: lenbytes = 1; skip = 1; break;
            case 0xc8: lenbytes = 2; skip = 1; break;
            case 0xc9: lenbytes = 4; skip = 1; break;
            case 0xca: skip = 4; break;
            case 0xcb: skip = 8; break;
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: case 0xde: lenbytes = 2; break;
            case 0xdd: case 0xdf: lenbytes = 4; break;
            default: return false;
            }
            if (lenbytes) {
                if (n - pos < lenbytes)
                    return false;
                uint64_t len = be_uint(p + pos, lenbytes);
                pos += lenbytes;
                if (t == 0xdc || t == 0xdd)
                    children = len;
                else if (t == 0xde || t == 0xdf)
                    children = 2 * len;
                else
                    skip += len;
            }
        }
        if (skip > n - pos)
            return false;
        pos += (size_t)skip;
        pending += children;
    }
    return true;
}

/* ---- decoding ---------------------------------------------------------- */

static kc_status decode(kc_mp_doc *doc, const uint8_t *p, size_t n,
                        size_t *used, const char *what, kc_err *err)
{
    doc->live = false;
    if (!p || n == 0)
        return kc_err_set(err, KC_ERR_INVALID, "%s: empty, expected msgpack", what);
    if (!kc_mp_sizes_plausible(p, n))
        return kc_err_set(err, KC_ERR_INVALID,
                          "%s: truncated or malformed msgpack (%zu bytes)", what, n);
    msgpack_unpacked_init(&doc->u);
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(&doc->u, (const char *)p, n, &off);
    if (r != MSGPACK_UNPACK_SUCCESS && r != MSGPACK_UNPACK_EXTRA_BYTES) {
        msgpack_unpacked_destroy(&doc->u);
        return kc_err_set(err, KC_ERR_INVALID,
                          "%s: %s msgpack (%zu bytes)", what,
                          r == MSGPACK_UNPACK_CONTINUE ? "truncated" : "malformed", n);
    }
    doc->live = true;
    if (used) {
        *used = off;
    } else if (off != n) {
        kc_mp_doc_free(doc);
        return kc_err_set(err, KC_ERR_INVALID,
                          "%s: %zu unexpected bytes after the msgpack object", what, n - off);
    }
    return KC_OK;
}

kc_status kc_mp_decode(kc_mp_doc *doc, const uint8_t *p, size_t n,
                       const char *what, kc_err *err)
{
    return decode(doc, p, n, NULL, what, err);
}

kc_status kc_mp_decode_prefix(kc_mp_doc *doc, const uint8_t *p, size_t n,
                              size_t *used, const char *what, kc_err *err)
{
    size_t dummy;
    return decode(doc, p, n, used ? used : &dummy, what, err);
}

void kc_mp_doc_free(kc_mp_doc *doc)
{
    if (doc && doc->live) {
        msgpack_unpacked_destroy(&doc->u);
        doc->live = false;
    }
}

/* ---- accessors --------------------------------------------------------- */

bool kc_mp_is_bytes(const msgpack_object *o)
{
    return o && (o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_BIN);
}

bool kc_mp_bytes(const msgpack_object *o, const uint8_t **p, size_t *n)
{
    if (!o)
        return false;
    if (o->type == MSGPACK_OBJECT_STR) {
        *p = (const uint8_t *)o->via.str.ptr;
        *n = o->via.str.size;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_BIN) {
        *p = (const uint8_t *)o->via.bin.ptr;
        *n = o->via.bin.size;
        return true;
    }
    return false;
}

bool kc_mp_bytes_len(const msgpack_object *o, size_t len, const uint8_t **p)
{
    size_t n;
    return kc_mp_bytes(o, p, &n) && n == len;
}

bool kc_mp_text_eq(const msgpack_object *o, const char *s)
{
    const uint8_t *p;
    size_t n;
    size_t sl = strlen(s);
    return kc_mp_bytes(o, &p, &n) && n == sl && memcmp(p, s, n) == 0;
}

bool kc_mp_int(const msgpack_object *o, int64_t *v)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > INT64_MAX)
            return false;
        *v = (int64_t)o->via.u64;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *v = o->via.i64;
        return true;
    }
    return false;
}

bool kc_mp_number(const msgpack_object *o, double *v)
{
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER: *v = (double)o->via.u64; return true;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *v = (double)o->via.i64; return true;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: *v = o->via.f64; return true;
    default: return false;
    }
}

int64_t kc_mp_pylen(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_ARRAY: return o->via.array.size;
    case MSGPACK_OBJECT_MAP: return o->via.map.size;
    case MSGPACK_OBJECT_STR: return o->via.str.size;
    case MSGPACK_OBJECT_BIN: return o->via.bin.size;
    default: return -1;
    }
}

static bool is_numeric(const msgpack_object *o)
{
    double d;
    return kc_mp_number(o, &d);
}

bool kc_mp_equal(const msgpack_object *a, const msgpack_object *b)
{
    if (kc_mp_is_bytes(a) && kc_mp_is_bytes(b)) {
        const uint8_t *pa, *pb;
        size_t na, nb;
        kc_mp_bytes(a, &pa, &na);
        kc_mp_bytes(b, &pb, &nb);
        return na == nb && (na == 0 || memcmp(pa, pb, na) == 0);
    }
    if (is_numeric(a) && is_numeric(b)) {
        int64_t ia, ib;
        if (kc_mp_int(a, &ia) && kc_mp_int(b, &ib))
            return ia == ib;
        if (a->type == MSGPACK_OBJECT_POSITIVE_INTEGER && b->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            return a->via.u64 == b->via.u64;
        double da, db;
        return kc_mp_number(a, &da) && kc_mp_number(b, &db) && da == db;
    }
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case MSGPACK_OBJECT_NIL: return true;
    case MSGPACK_OBJECT_BOOLEAN: return a->via.boolean == b->via.boolean;
    case MSGPACK_OBJECT_ARRAY:
        if (a->via.array.size != b->via.array.size)
            return false;
        for (uint32_t i = 0; i < a->via.array.size; i++)
            if (!kc_mp_equal(&a->via.array.ptr[i], &b->via.array.ptr[i]))
                return false;
        return true;
    case MSGPACK_OBJECT_MAP:
        if (a->via.map.size != b->via.map.size)
            return false;
        for (uint32_t i = 0; i < a->via.map.size; i++)
            if (!kc_mp_equal(&a->via.map.ptr[i].key, &b->via.map.ptr[i].key) ||
                !kc_mp_equal(&a->via.map.ptr[i].val, &b->via.map.ptr[i].val))
                return false;
        return true;
    default:
        return msgpack_object_equal(*a, *b);
    }
}

/* ---- encoding ---------------------------------------------------------- */

static int out_write(void *data, const char *p, size_t n)
{
    kc_mp_out *out = data;
    if (out->failed || kc_buf_append(&out->buf, p, n) != KC_OK) {
        out->failed = true;
        return -1;
    }
    return 0;
}

void kc_mp_out_init(kc_mp_out *out)
{
    out->buf = (kc_buf)KC_BUF_INIT;
    out->failed = false;
    msgpack_packer_init(&out->pk, out, out_write);
}

kc_status kc_mp_out_status(const kc_mp_out *out)
{
    return out->failed ? KC_ERR_NOMEM : KC_OK;
}

void kc_mp_out_free(kc_mp_out *out)
{
    kc_buf_free(&out->buf);
}

void kc_mp_pack_text(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* ---- display ----------------------------------------------------------- */

typedef struct {
    char *p;
    size_t cap, len;
} sink;

static void put(sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sink *s, const char *fmt, ...)
{
    if (s->len + 1 >= s->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(s->p + s->len, s->cap - s->len, fmt, ap);
    va_end(ap);
    if (k > 0)
        s->len = (s->len + (size_t)k < s->cap) ? s->len + (size_t)k : s->cap - 1;
}

static void describe(sink *s, const msgpack_object *o, int depth)
{
    if (depth > 8) {
        put(s, "...");
        return;
    }
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: put(s, "None"); break;
    case MSGPACK_OBJECT_BOOLEAN: put(s, o->via.boolean ? "True" : "False"); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: put(s, "%llu", (unsigned long long)o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: put(s, "%lld", (long long)o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: put(s, "%.17g", o->via.f64); break;
    case MSGPACK_OBJECT_STR: {
        bool printable = true;
        for (uint32_t i = 0; i < o->via.str.size; i++)
            if ((unsigned char)o->via.str.ptr[i] < 0x20 || o->via.str.ptr[i] == '\'')
                printable = false;
        if (printable) {
            put(s, "'%.*s'", (int)o->via.str.size, o->via.str.ptr);
            break;
        }
    } /* fall through: show unprintable text as hex */
    /* FALLTHROUGH */
    case MSGPACK_OBJECT_BIN: {
        const uint8_t *p;
        size_t n;
        kc_mp_bytes(o, &p, &n);
        put(s, "<");
        for (size_t i = 0; i < n && i < 48; i++)
            put(s, "%02x", p[i]);
        if (n > 48)
            put(s, "...(%zu bytes)", n);
        put(s, ">");
        break;
    }
    case MSGPACK_OBJECT_ARRAY:
        put(s, "[");
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i)
                put(s, ", ");
            describe(s, &o->via.array.ptr[i], depth + 1);
        }
        put(s, "]");
        break;
    case MSGPACK_OBJECT_MAP:
        put(s, "{");
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (i)
                put(s, ", ");
            describe(s, &o->via.map.ptr[i].key, depth + 1);
            put(s, ": ");
            describe(s, &o->via.map.ptr[i].val, depth + 1);
        }
        put(s, "}");
        break;
    default: put(s, "<ext>"); break;
    }
}

char *kc_mp_describe(const msgpack_object *o, char *out, size_t cap)
{
    if (cap == 0)
        return out;
    sink s = {out, cap, 0};
    out[0] = '\0';
    describe(&s, o, 0);
    return out;
}
