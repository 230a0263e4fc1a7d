#include "kc_cryptokey_file.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kc_file.h"
#include "kc_hex.h"
#include "kc_log.h"
#include "kc_mp.h"

#define LOGGER "kafkacrypto.cryptokey"
#define MAX_FILE_BYTES (1u << 20)
#define EK_BYTES crypto_secretbox_KEYBYTES

/* ---- the loaded backend ---------------------------------------------------- */

/* Secrets in sodium_malloc'd memory, inaccessible (mprotect) except while
 * the lock is held for a signature or an opaque value. */
typedef struct ck_secrets {
    uint8_t ek[EK_BYTES];
    kc_key ssk[];  /* enabled signing secret keys, same order as spk */
} ck_secrets;

typedef struct ck_file {
    pthread_mutex_t lock;
    ck_secrets *sec;
    kc_key *spk;
    size_t nspk;
    int *versions;  /* usable ephemeral versions, file order */
    size_t nversions;
    bool legacy;
    kc_ephemeral *eph;
} ck_file;

static void ck_file_free(ck_file *f)
{
    if (!f)
        return;
    kc_ephemeral_free(f->eph);
    if (f->sec)
        sodium_free(f->sec);  /* unprotects and wipes */
    for (size_t i = 0; f->spk && i < f->nspk; i++)
        kc_key_clear(&f->spk[i]);
    free(f->spk);
    free(f->versions);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static void secrets_open(ck_file *f)
{
    pthread_mutex_lock(&f->lock);
    sodium_mprotect_readonly(f->sec);
}

static void secrets_close(ck_file *f)
{
    sodium_mprotect_noaccess(f->sec);
    pthread_mutex_unlock(&f->lock);
}

static size_t f_num_spk(void *self)
{
    return ((ck_file *)self)->nspk;
}

static kc_status f_spk(void *self, size_t idx, kc_key *out)
{
    return kc_key_copy(out, &((ck_file *)self)->spk[idx]);
}

static kc_status f_sign(void *self, size_t idx, const uint8_t *m, size_t n, kc_buf *out,
                        kc_err *err)
{
    ck_file *f = self;
    secrets_open(f);
    kc_status st = kc_sign(&f->sec->ssk[idx], m, n, out);
    secrets_close(f);
    return st == KC_OK ? KC_OK
                       : kc_err_set(err, st, "cryptokey: signing with idx=%zu: %s", idx,
                                    kc_status_str(st));
}

static kc_status f_get_epks(void *self, const char *topic, const char *usage, kc_epks *out,
                            kc_err *err)
{
    return kc_ephemeral_get_epks(((ck_file *)self)->eph, topic, usage, out, err);
}

static kc_status f_use_epks(void *self, const char *topic, const char *usage,
                            const kc_key *peers, size_t npeers, bool clear,
                            kc_kem_results *out, kc_err *err)
{
    return kc_ephemeral_use_epks(((ck_file *)self)->eph, topic, usage, peers, npeers, clear,
                                 out, err);
}

static kc_status f_wrap(void *self, const uint8_t *p, size_t n, kc_buf *out, kc_err *err)
{
    ck_file *f = self;
    secrets_open(f);
    kc_status st = kc_cryptokey_secretbox_wrap(f->sec->ek, p, n, out, err);
    secrets_close(f);
    return st;
}

static kc_status f_unwrap(void *self, const uint8_t *c, size_t n, kc_buf *out)
{
    ck_file *f = self;
    secrets_open(f);
    kc_status st = kc_cryptokey_secretbox_unwrap(f->sec->ek, c, n, out);
    secrets_close(f);
    return st;
}

static size_t f_ephemeral_versions(void *self, int *out, size_t cap)
{
    ck_file *f = self;
    for (size_t i = 0; i < f->nversions && i < cap; i++)
        out[i] = f->versions[i];
    return f->nversions;
}

static bool f_legacy(void *self)
{
    return ((ck_file *)self)->legacy;
}

static void f_close(void *self)
{
    ck_file_free(self);
}

static const kc_cryptokey_ops file_ops = {
    .name = "file",
    .num_spk = f_num_spk,
    .spk = f_spk,
    .sign = f_sign,
    .get_epks = f_get_epks,
    .use_epks = f_use_epks,
    .wrap = f_wrap,
    .unwrap = f_unwrap,
    .ephemeral_versions = f_ephemeral_versions,
    .legacy = f_legacy,
    .close = f_close,
};

/* ---- parsing --------------------------------------------------------------- */

typedef struct span {
    const uint8_t *p;
    size_t n;
} span;

/* The file seen as the version-2 layout. Spans point into the file's bytes
 * so that a rewrite keeps every entry it does not change byte for byte. */
typedef struct loader {
    const char *what;  /* "file <path>" or the caller's name, for messages */
    const char *path;  /* NULL when loading from memory: nothing is written */
    int *fd;           /* path's descriptor, locked by us */
    kc_mp_doc doc;
    int format;        /* 0 = unversioned [ssk, ek], 1 or 2 */
    span *top;         /* the root's elements */
    uint32_t nssk;
    span *ssk;
    const msgpack_object **ssk_obj;
    const msgpack_object *ek, *legacy, *versions;  /* legacy, versions: NULL if unversioned */
    span ek_raw, legacy_raw, versions_raw;
    uint32_t nextra;   /* elements after the fifth, kept as they are */
    span *extra;
} loader;

static void loader_free(loader *ld)
{
    kc_mp_doc_free(&ld->doc);
    free(ld->top);
    if (ld->format == 2)
        free(ld->ssk);
    free(ld->ssk_obj);
}

static bool array_header(const uint8_t *p, size_t n, uint32_t *count, size_t *hdr)
{
    if (n >= 1 && p[0] >= 0x90 && p[0] <= 0x9f) {
        *count = p[0] & 0x0f;
        *hdr = 1;
    } else if (n >= 3 && p[0] == 0xdc) {
        *count = (uint32_t)p[1] << 8 | p[2];
        *hdr = 3;
    } else if (n >= 5 && p[0] == 0xdd) {
        *count = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
        *hdr = 5;
    } else {
        return false;
    }
    return true;
}

/* The byte ranges of the elements of the (already decoded) array at p. */
static kc_status element_spans(const uint8_t *p, size_t n, uint32_t count, span **out)
{
    uint32_t c;
    size_t pos;
    *out = NULL;
    if (!array_header(p, n, &c, &pos) || c != count)
        return KC_ERR_INVALID;
    span *s = calloc(count ? count : 1, sizeof *s);
    if (!s)
        return KC_ERR_NOMEM;
    for (uint32_t i = 0; i < count; i++) {
        kc_mp_doc d;
        size_t used;
        if (kc_mp_decode_prefix(&d, p + pos, n - pos, &used, "element", NULL) != KC_OK) {
            free(s);
            return KC_ERR_INVALID;
        }
        kc_mp_doc_free(&d);
        s[i] = (span){p + pos, used};
        pos += used;
    }
    *out = s;
    return KC_OK;
}

static kc_status parse(loader *ld, const uint8_t *data, size_t n, kc_err *err)
{
    size_t used;
    kc_status st = kc_mp_decode_prefix(&ld->doc, data, n, &used, ld->what, err);
    if (st != KC_OK)
        return st;
    if (used < n)
        kc_log(KC_LOG_WARNING, LOGGER,
               "Cryptokey file had extraneous bytes at end, attempting load anyways.");
    const msgpack_object *root = kc_mp_root(&ld->doc);
    if (root->type != MSGPACK_OBJECT_ARRAY)
        return kc_err_set(err, KC_ERR_INVALID,
                          "%s: expected a list [2, signing keys, ek, legacy, ephemeral versions]",
                          ld->what);
    uint32_t cnt = root->via.array.size;
    const msgpack_object *el = root->via.array.ptr;
    st = element_spans(data, used, cnt, &ld->top);
    if (st != KC_OK)
        return kc_err_set(err, st, "%s: cannot split the top-level list", ld->what);
    int64_t v = -1;
    bool versioned = cnt >= 1 && kc_mp_int(&el[0], &v);
    if (cnt == 2) {
        ld->format = 0;
        ld->nssk = 1;
        ld->ssk = &ld->top[0];
        ld->ek = &el[1];
        ld->ek_raw = ld->top[1];
    } else if (versioned && cnt >= 5 && (v == 1 || v == 2)) {
        ld->format = (int)v;
        if (v == 1) {
            ld->nssk = 1;
            ld->ssk = &ld->top[1];
        } else {
            if (el[1].type != MSGPACK_OBJECT_ARRAY)
                return kc_err_set(err, KC_ERR_INVALID, "%s: field signing keys: expected a list",
                                  ld->what);
            ld->nssk = el[1].via.array.size;
            st = element_spans(ld->top[1].p, ld->top[1].n, ld->nssk, &ld->ssk);
            if (st != KC_OK)
                return kc_err_set(err, st, "%s: field signing keys: cannot split the list",
                                  ld->what);
        }
        ld->ek = &el[2];
        ld->legacy = &el[3];
        ld->versions = &el[4];
        ld->ek_raw = ld->top[2];
        ld->legacy_raw = ld->top[3];
        ld->versions_raw = ld->top[4];
        ld->nextra = cnt - 5;
        ld->extra = ld->top + 5;
    } else if (versioned) {
        return kc_err_set(err, KC_ERR_INVALID,
                          "%s: field version: expected 1 or 2 with at least 5 fields, got "
                          "version %lld with %u fields", ld->what, (long long)v, cnt);
    } else {
        return kc_err_set(err, KC_ERR_INVALID,
                          "%s: expected [2, signing keys, ek, legacy, ephemeral versions] or "
                          "the unversioned [signing key, ek], got a list of %u fields",
                          ld->what, cnt);
    }
    ld->ssk_obj = calloc(ld->nssk ? ld->nssk : 1, sizeof *ld->ssk_obj);
    if (!ld->ssk_obj)
        return kc_err_set(err, KC_ERR_NOMEM, "%s: out of memory", ld->what);
    for (uint32_t i = 0; i < ld->nssk; i++)
        ld->ssk_obj[i] = ld->format == 2 ? &el[1].via.array.ptr[i] : &el[ld->format];

    const uint8_t *ek;
    size_t ekn;
    if (!kc_mp_bytes(ld->ek, &ek, &ekn))
        return kc_err_set(err, KC_ERR_INVALID, "%s: field ek: expected a byte string", ld->what);
    if (ekn != EK_BYTES)
        return kc_err_set(err, KC_ERR_INVALID, "%s: field ek: expected %d bytes, got %zu",
                          ld->what, EK_BYTES, ekn);
    if (ld->legacy && ld->legacy->type != MSGPACK_OBJECT_BOOLEAN)
        return kc_err_set(err, KC_ERR_INVALID, "%s: field legacy: expected true or false",
                          ld->what);
    if (ld->versions && ld->versions->type != MSGPACK_OBJECT_ARRAY)
        return kc_err_set(err, KC_ERR_INVALID,
                          "%s: field ephemeral versions: expected a list of integers", ld->what);
    return KC_OK;
}

static void put_raw(kc_mp_out *o, span s)
{
    if (!o->failed && kc_buf_append(&o->buf, s.p, s.n) != KC_OK)
        o->failed = true;
}

/* The version-2 file: entries of the original bytes where they exist, the
 * upgrade's defaults (legacy true, versions [1]) where they do not, and the
 * new signing keys appended as bytes(). */
static kc_status render(const loader *ld, const kc_key *added, size_t nadded, kc_buf *out)
{
    kc_mp_out o;
    kc_mp_out_init(&o);
    msgpack_pack_array(&o.pk, 5 + ld->nextra);
    msgpack_pack_int(&o.pk, 2);
    msgpack_pack_array(&o.pk, ld->nssk + nadded);
    for (uint32_t i = 0; i < ld->nssk; i++)
        put_raw(&o, ld->ssk[i]);
    for (size_t i = 0; i < nadded; i++)
        kc_mp_pack_bin(&o.pk, added[i].x, added[i].x_len);
    put_raw(&o, ld->ek_raw);
    if (ld->legacy)
        put_raw(&o, ld->legacy_raw);
    else
        msgpack_pack_true(&o.pk);
    if (ld->versions) {
        put_raw(&o, ld->versions_raw);
    } else {
        msgpack_pack_array(&o.pk, 1);
        msgpack_pack_int(&o.pk, 1);
    }
    for (uint32_t i = 0; i < ld->nextra; i++)
        put_raw(&o, ld->extra[i]);
    kc_status st = kc_mp_out_status(&o);
    if (st == KC_OK)
        *out = o.buf;
    else
        kc_mp_out_free(&o);
    return st;
}

static kc_status rewrite(const loader *ld, const kc_key *added, size_t nadded, kc_err *err)
{
    kc_buf b = KC_BUF_INIT;
    kc_status st = render(ld, added, nadded, &b);
    if (st != KC_OK)
        st = kc_err_set(err, st, "%s: out of memory", ld->what);
    else
        st = kc_file_replace_locked(ld->path, b.data, b.len, ld->fd, err);
    kc_buf_free(&b);
    return st;
}

/* An entry upstream would skip as "unknown keytype" rather than a broken
 * one: a versioned key ([v, keys] or its msgpack) of a version other than
 * 1 and 4 — perhaps from a newer upstream. */
static bool is_unknown_version(const msgpack_object *o)
{
    kc_mp_doc d = {.live = false};
    const uint8_t *p;
    size_t n;
    if (kc_mp_bytes(o, &p, &n)) {
        if (kc_mp_decode(&d, p, n, "key", NULL) != KC_OK)
            return false;
        o = kc_mp_root(&d);
    }
    int64_t v;
    bool unknown = o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size >= 1 &&
                   kc_mp_int(&o->via.array.ptr[0], &v) && v != 1 && v != 4;
    kc_mp_doc_free(&d);
    return unknown;
}

static bool is_msgpack(const uint8_t *p, size_t n)
{
    kc_mp_doc d;
    if (kc_mp_decode(&d, p, n, "key", NULL) != KC_OK)
        return false;
    kc_mp_doc_free(&d);
    return true;
}

/* Python's str() of a set of small integers: "{1, 4}" */
static void format_set(const int *v, size_t n, char *out, size_t cap)
{
    size_t len = (size_t)snprintf(out, cap, "{");
    for (size_t i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%d", i ? ", " : "", v[i]);
    if (len < cap)
        snprintf(out + len, cap - len, "}");
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Instantiates the signing keys into f (all of them; step 4 of §10.7). */
static kc_status load_signing_keys(const loader *ld, ck_file *f, bool *unknown, kc_err *err)
{
    *unknown = false;
    for (uint32_t i = 0; i < ld->nssk; i++) {
        kc_key *sk = &f->sec->ssk[f->nspk];
        kc_err kerr;
        kc_status st = kc_key_from_object(sk, KC_SIGN_SK, ld->ssk_obj[i], &kerr);
        if (st == KC_ERR_UNSUPPORTED ||
            (st == KC_ERR_INVALID && is_unknown_version(ld->ssk_obj[i]))) {
            kc_log(KC_LOG_WARNING, LOGGER,
                   "Cryptokey File IO Object has at least one unknown keytype.");
            *unknown = true;
            continue;
        }
        const uint8_t *p;
        size_t n;
        if (st == KC_ERR_INVALID && kc_mp_bytes(ld->ssk_obj[i], &p, &n) && !is_msgpack(p, n))
            return kc_err_set(err, KC_ERR_INVALID,
                              "%s: signing key %u: expected %d bytes (or the msgpack of "
                              "[version, keys]), got %zu", ld->what, i, KC_SIGN_SK_BYTES, n);
        if (st != KC_OK)
            return kc_err_set(err, st, "%s: signing key %u: %s", ld->what, i, kerr.msg);
        st = kc_key_public(&f->spk[f->nspk], sk);
        if (st != KC_OK)
            return kc_err_set(err, st, "%s: signing key %u: cannot derive its public key",
                              ld->what, i);
        f->nspk++;
    }
    if (f->nspk == 0 && *unknown) {
        kc_log(KC_LOG_ERROR, LOGGER, "Cryptokey File IO Object has no usable keytypes!");
        return kc_err_set(err, KC_ERR_UNSUPPORTED,
                          "%s: no usable signing keys: all are of types this build cannot use "
                          "(post-quantum or unknown)", ld->what);
    }
    return KC_OK;
}

/* Step 5 of §10.7: only version 1 can be used by this build. */
static kc_status load_ephemeral_versions(const loader *ld, ck_file *f, kc_err *err)
{
    uint32_t n = ld->versions ? ld->versions->via.array.size : 1;
    f->versions = calloc(n ? n : 1, sizeof(int));
    if (!f->versions)
        return kc_err_set(err, KC_ERR_NOMEM, "%s: out of memory", ld->what);
    if (!ld->versions) {
        f->versions[f->nversions++] = 1;
        return KC_OK;
    }
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *o = &ld->versions->via.array.ptr[i];
        int64_t v;
        if (kc_mp_int(o, &v) && v == 1) {
            f->versions[f->nversions++] = 1;
            continue;
        }
        /* 2/5 need liboqs, 3/6 are answers only; other numbers are unknown
         * (upstream would silently treat them as 1: B14) */
        char text[64];
        if (kc_mp_int(o, &v))
            snprintf(text, sizeof text, "%lld", (long long)v);
        else
            kc_mp_describe(o, text, sizeof text);
        /* 2 and 5 (post-quantum, which upstream writes by default) are
         * routine for this build: INFO; anything else is news: WARNING */
        bool pq = kc_mp_int(o, &v) && (v == 2 || v == 5);
        kc_log(pq ? KC_LOG_INFO : KC_LOG_WARNING, LOGGER,
               "Cryptokey File IO Object cannot use ephemeral keytype=%s", text);
    }
    if (f->nversions == 0) {
        kc_log(KC_LOG_ERROR, LOGGER, "Cryptokey File IO Object has no usable ephemeral keytypes!");
        return kc_err_set(err, KC_ERR_UNSUPPORTED,
                          "%s: field ephemeral versions: none usable (this build supports "
                          "only version 1)", ld->what);
    }
    return KC_OK;
}

/* Step 6 of §10.7: the missing types are generated (type 1 only) when the
 * file can be rewritten and holds no unknown keys; otherwise an error. */
static kc_status generate_missing(const loader *ld, ck_file *f, const int *missing,
                                  size_t nmissing, bool unknown, kc_err *err)
{
    char set[128];
    format_set(missing, nmissing, set, sizeof set);
    bool can_generate = ld->path && !unknown;
    for (size_t i = 0; i < nmissing; i++)
        can_generate &= missing[i] == 1;
    if (!can_generate) {
        kc_log(KC_LOG_ERROR, LOGGER, "Cryptokey File IO Object missing requested keytypes = %s",
               set);
        for (size_t i = 0; ld->path && !unknown && i < nmissing; i++)
            if (missing[i] != 1)
                return kc_err_set(err, missing[i] == 4 ? KC_ERR_UNSUPPORTED : KC_ERR_INVALID,
                                  "%s: keytypes: cannot generate a signing key of type %d%s",
                                  ld->what, missing[i],
                                  missing[i] == 4 ? " (needs SLH-DSA, which this build lacks)"
                                                  : " (unknown type)");
        return kc_err_set(err, KC_ERR_NOTFOUND,
                          "%s: keytypes: missing requested types %s, which cannot be added %s",
                          ld->what, set,
                          ld->path ? "while the file holds keys of unknown types"
                                   : "when loading from memory");
    }
    size_t first = f->nspk;
    for (size_t i = 0; i < nmissing; i++) {
        kc_status st = kc_sign_keypair_new(&f->spk[f->nspk], &f->sec->ssk[f->nspk]);
        if (st != KC_OK)
            return kc_err_set(err, st, "%s: cannot generate a signing key", ld->what);
        char hex[2 * KC_SIGN_PK_BYTES + 1];
        kc_log(KC_LOG_WARNING, LOGGER, "  Adding New Public Key: %s",
               kc_hex(f->spk[f->nspk].x, f->spk[f->nspk].x_len, hex));
        f->nspk++;
    }
    kc_log(KC_LOG_WARNING, LOGGER,
           "Cryptokey file updating with new keytypes=%s. Provisioning required for successful "
           "operation.", set);
    return rewrite(ld, &f->sec->ssk[first], f->nspk - first, err);
}

/* The requested types not among the usable keys. */
static kc_status add_keytypes(const loader *ld, ck_file *f, const int *want, size_t nwant,
                              bool unknown, kc_err *err)
{
    int *missing = nwant ? malloc(nwant * sizeof(int)) : NULL;
    size_t nmissing = 0;
    if (nwant && !missing)
        return kc_err_set(err, KC_ERR_NOMEM, "%s: out of memory", ld->what);
    for (size_t i = 0; i < nwant; i++) {
        bool present = false;
        for (size_t j = 0; j < f->nspk; j++)
            present |= f->spk[j].version == want[i];
        if (!present)
            missing[nmissing++] = want[i];
    }
    kc_status st = nmissing ? generate_missing(ld, f, missing, nmissing, unknown, err) : KC_OK;
    free(missing);
    return st;
}

/* Step 7: only keys whose type was requested stay enabled (order kept). */
static void enable_keytypes(ck_file *f, const int *want, size_t nwant)
{
    size_t j = 0;
    for (size_t i = 0; i < f->nspk; i++) {
        bool keep = false;
        for (size_t k = 0; k < nwant; k++)
            keep |= f->spk[i].version == want[k];
        if (keep) {
            if (i != j) {
                f->sec->ssk[j] = f->sec->ssk[i];
                f->spk[j] = f->spk[i];
                sodium_memzero(&f->sec->ssk[i], sizeof(kc_key));
                memset(&f->spk[i], 0, sizeof(kc_key));
            }
            j++;
        } else {
            kc_key_clear(&f->sec->ssk[i]);
            kc_key_clear(&f->spk[i]);
        }
    }
    f->nspk = j;
}

/* path and fd: the file, open and locked, that a rewrite replaces (NULL:
 * nothing is written). */
static kc_status load(kc_cryptokey **out, const uint8_t *data, size_t n, const char *what,
                      const char *path, int *fd, const int *keytypes, size_t n_keytypes,
                      kc_err *err)
{
    *out = NULL;
    loader ld = {.what = what, .path = path, .fd = fd};
    int *want = NULL;
    size_t nwant = 0;
    ck_file *f = calloc(1, sizeof *f);
    kc_status st = f ? KC_OK : KC_ERR_NOMEM;
    if (f)
        pthread_mutex_init(&f->lock, NULL);
    if (st == KC_OK && keytypes && n_keytypes) {
        /* the requested set, sorted and without duplicates (Python set order) */
        want = malloc(n_keytypes * sizeof(int));
        st = want ? KC_OK : KC_ERR_NOMEM;
        if (want) {
            memcpy(want, keytypes, n_keytypes * sizeof(int));
            qsort(want, n_keytypes, sizeof(int), cmp_int);
            for (size_t i = 0; i < n_keytypes; i++)
                if (nwant == 0 || want[nwant - 1] != want[i])
                    want[nwant++] = want[i];
        }
    }
    if (st != KC_OK) {
        kc_err_set(err, st, "%s: out of memory", what);
        goto done;
    }
    if ((st = parse(&ld, data, n, err)) != KC_OK)
        goto done;
    if (ld.format == 0)
        kc_log(KC_LOG_WARNING, LOGGER, "Cryptokey file is unversioned.");
    if (ld.format != 2 && path) {
        kc_log(KC_LOG_WARNING, LOGGER, "Cryptokey file updating from %s to version 2 format.",
               ld.format == 0 ? "unversioned" : "version 1");
        if ((st = rewrite(&ld, NULL, 0, err)) != KC_OK)
            goto done;
    }
    size_t cap = ld.nssk + nwant + 1;
    f->sec = sodium_malloc(sizeof(ck_secrets) + cap * sizeof(kc_key));
    f->spk = calloc(cap, sizeof(kc_key));
    if (!f->sec || !f->spk) {
        st = kc_err_set(err, KC_ERR_NOMEM, "%s: out of memory", what);
        goto done;
    }
    memset(f->sec, 0, sizeof(ck_secrets) + cap * sizeof(kc_key));
    const uint8_t *ek;
    size_t ekn;
    kc_mp_bytes(ld.ek, &ek, &ekn);
    memcpy(f->sec->ek, ek, EK_BYTES);
    bool unknown;
    if ((st = load_signing_keys(&ld, f, &unknown, err)) != KC_OK ||
        (st = load_ephemeral_versions(&ld, f, err)) != KC_OK ||
        (st = add_keytypes(&ld, f, want, nwant, unknown, err)) != KC_OK)
        goto done;
    if (keytypes)
        enable_keytypes(f, want, nwant);
    f->legacy = ld.legacy ? ld.legacy->via.boolean : true;
    if ((st = kc_ephemeral_new(&f->eph, f->versions, f->nversions, f->legacy, err)) != KC_OK)
        goto done;
    sodium_mprotect_noaccess(f->sec);
    st = kc_cryptokey_new(out, &file_ops, f, err);
    f = NULL;  /* owned by *out, or closed by kc_cryptokey_new */
done:
    ck_file_free(f);
    loader_free(&ld);
    free(want);
    return st;
}

kc_status kc_cryptokey_open_bytes(kc_cryptokey **out, const uint8_t *p, size_t n,
                                  const char *name, const int *keytypes, size_t n_keytypes,
                                  kc_err *err)
{
    *out = NULL;
    if (!p && n)
        return kc_err_set(err, KC_ERR_INVALID, "cryptokey: no data");
    if (kc_init() != 0)  /* sodium_malloc needs it */
        return kc_err_set(err, KC_ERR_CRYPTO, "cryptokey: libsodium failed to start");
    return load(out, p, n, name ? name : "cryptokey data", NULL, NULL, keytypes, n_keytypes,
                err);
}

/* mp([2, [], bin(random32), false, [5, 2, 1]]): what upstream writes, so the
 * file means the same to a post-quantum-enabled Python node. */
static kc_status create_file(const char *path, kc_err *err)
{
    kc_log(KC_LOG_WARNING, LOGGER, "Initializing new CryptoKey file %s", path);
    uint8_t ek[EK_BYTES];
    randombytes_buf(ek, sizeof ek);
    kc_mp_out o;
    kc_mp_out_init(&o);
    msgpack_pack_array(&o.pk, 5);
    msgpack_pack_int(&o.pk, 2);
    msgpack_pack_array(&o.pk, 0);
    kc_mp_pack_bin(&o.pk, ek, sizeof ek);
    msgpack_pack_false(&o.pk);
    msgpack_pack_array(&o.pk, 3);
    msgpack_pack_int(&o.pk, 5);
    msgpack_pack_int(&o.pk, 2);
    msgpack_pack_int(&o.pk, 1);
    sodium_memzero(ek, sizeof ek);
    kc_status st = kc_mp_out_status(&o);
    if (st != KC_OK)
        st = kc_err_set(err, st, "file %s: out of memory", path);
    else
        st = kc_file_create(path, o.buf.data, o.buf.len, 0600, NULL, err);
    kc_mp_out_free(&o);
    if (st == KC_OK)
        kc_log(KC_LOG_WARNING, LOGGER, "  CryptoKey Initialized.");
    return st == KC_ERR_STATE ? KC_OK : st; /* created meanwhile by someone else: theirs */
}

kc_status kc_cryptokey_open(kc_cryptokey **out, const char *path, const int *keytypes,
                            size_t n_keytypes, kc_err *err)
{
    if (!out)
        return kc_err_set(err, KC_ERR_INVALID, "cryptokey: no handle to open into");
    *out = NULL;
    if (!path || !*path)
        return kc_err_set(err, KC_ERR_INVALID, "cryptokey: no file name");
    if (kc_init() != 0)
        return kc_err_set(err, KC_ERR_CRYPTO, "cryptokey: libsodium failed to start");
    kc_status st = KC_OK;
    if (!kc_file_exists(path) && (st = create_file(path, err)) != KC_OK)
        return st;
    /* Read and (when it needs upgrading or new keys) rewritten under its
     * lock, which also clears temporary files a killed rewrite left. A file
     * we may only read is loaded as it is. */
    int fd = -1;
    kc_buf data = KC_BUF_INIT;
    st = kc_file_open_locked(path, KC_FILE_LOCK_WAIT, &fd, err);
    if (st == KC_ERR_IO && (errno == EACCES || errno == EROFS))
        st = kc_file_read(path, MAX_FILE_BYTES, &data, err);
    else if (st == KC_OK)
        st = kc_file_read_fd(fd, path, MAX_FILE_BYTES, &data, err);
    if (st != KC_OK) {
        if (fd >= 0)
            close(fd);
        kc_buf_free(&data);
        return st;
    }
    size_t wl = strlen(path) + 6;
    char *what = malloc(wl);
    if (what)
        snprintf(what, wl, "file %s", path);
    st = !what ? kc_err_set(err, KC_ERR_NOMEM, "file %s: out of memory", path) : load(out, data.data, data.len, what, fd >= 0 ? path : NULL, &fd, keytypes, n_keytypes,
              err);
    if (fd >= 0)
        close(fd);
    free(what);
    kc_buf_free(&data);
    return st;
}
