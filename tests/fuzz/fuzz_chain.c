/* process_chain on arbitrary chain bytes and arbitrary allowlist/denylist
 * entries: never crash, never leak, and every accepted result is coherent.
 *
 * Input: flags(1) [len(2) allowlist entry] [len(2) denylist entry] chain...
 *   flags bit 0: a fuzzed allowlist entry follows (tried between the fixed
 *   roots), bit 1: a fuzzed denylist entry follows, bits 2-3: topic, bits
 *   4-5: usage, bit 6: check at time 0 instead of the vectors' time.
 * The fixed allowlist holds the real root key of chain.json (R) and the
 * temporary ROT, so seeds made from the vectors reach the deep paths. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kc_chain.h"
#include "kc_hex.h"
#include "kc_log.h"

static void quiet(void *ctx, kc_log_level level, const char *logger, const char *msg) {}

static bool take(const uint8_t **p, size_t *n, kc_bytes *out)
{
    if (*n < 2)
        return false;
    size_t len = ((size_t)(*p)[0] << 8) | (*p)[1];
    if (len > *n - 2)
        len = *n - 2;
    *out = (kc_bytes){*p + 2, len};
    *p += 2 + len;
    *n -= 2 + len;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static kc_buf rot, tmp, deny_n;
    if (!rot.len) {
        kc_log_set_sink(quiet, NULL);
        kc_unhex("9300c40190c420b5f07716a65e854835b3a3ade731f78ad858051b959441cd92089dbd134bc73c",
                 78, &rot);
        kc_unhex("9300c40190c4202493a9dacde49adaa80a84f7e6f76610483c655c4aedfef5334de4eba38698de",
                 78, &deny_n);
        kc_chain_temporary_rot_entry(&tmp);
    }
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    kc_bytes fa = {0}, fd = {0};
    if ((flags & 1) && !take(&p, &n, &fa))
        return 0;
    if ((flags & 2) && !take(&p, &n, &fd))
        return 0;
    static const char *const topics[] = {NULL, "sensor", "^sen.*", "example001"};
    static const char *const usages[] = {NULL, "key-encrypt-request", "key-denylist",
                                         "key-allowlist"};
    kc_bytes allow_e[3], deny_e[2];
    size_t na = 0;
    allow_e[na++] = (kc_bytes){rot.data, rot.len};
    if (flags & 1)
        allow_e[na++] = fa;
    allow_e[na++] = (kc_bytes){tmp.data, tmp.len};
    deny_e[0] = fd;
    deny_e[1] = (kc_bytes){deny_n.data, deny_n.len};
    kc_chain_list allow = {allow_e, na}, deny = {deny_e, 2};

    kc_chain_result r;
    kc_err err;
    kc_status st = kc_chain_process(p, n, topics[(flags >> 2) & 3], usages[(flags >> 4) & 3],
                                    &allow, (flags & 2) ? &deny : NULL,
                                    (flags & 64) ? 0 : 1767225600.25, &r, &err);
    if (st == KC_OK) {
        kc_mp_doc d;
        if (r.spks.n < 1 || r.key.n < 1 || r.packed.len == 0 ||
            kc_mp_decode(&d, r.packed.data, r.packed.len, "result", NULL) != KC_OK)
            __builtin_trap();
        kc_mp_doc_free(&d);
        if (!r.self_signed && r.rot_index >= na)
            __builtin_trap();
    } else if (err.msg[0] == '\0') {
        __builtin_trap(); /* every failure explains itself */
    }
    kc_chain_result_free(&r);

    kc_buf text = KC_BUF_INIT;
    kc_chain_describe(p, n, &text);
    kc_buf_free(&text);
    char fpr[65];
    kc_chain_signer_fingerprint(p, n, fpr); /* requests of anyone, for logs */
    double m;
    kc_chain_min_expiry(p, n, &m, NULL);
    kc_buf out = KC_BUF_INIT;
    kc_chain_append(p, n, (const uint8_t *)"x", 1, &out, NULL);
    kc_buf_free(&out);
    kc_cert c;
    if (kc_cert_parse(&c, fa.p, fa.n, NULL) == KC_OK)
        kc_cert_free(&c);
    long idx;
    kc_key_in_list(&(kc_key){.kind = KC_SIGN_PK, .version = 1, .x_len = 32}, &deny, &idx, NULL);
    return 0;
}
