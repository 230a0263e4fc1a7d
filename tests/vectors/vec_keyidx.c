#include "vec_keyidx.h"

#include "kc_hex.h"
#include "kc_keyidx.h"

bool vec_keyidx(json_t *v, kc_keyidx *ki)
{
    if (json_is_integer(v)) {
        kc_keyidx_from_int(ki, json_integer_value(v));
        return true;
    }
    kc_buf b = KC_BUF_INIT;
    bool ok = json_is_object(v) && vec_bytes(v, &b);
    if (ok)
        kc_keyidx_from_bytes(ki, b.data, b.len);
    kc_buf_free(&b);
    return ok;
}

bool vec_check_keyidx(vec_ctx *ctx, const char *name, const kc_keyidx *got, json_t *want)
{
    kc_keyidx w;
    char g[2 * KC_KEYIDX_MAX_BYTES + 1];
    if (!vec_keyidx(want, &w)) {
        vec_fail(ctx, name, "keyidx: malformed in vector");
        return false;
    }
    if (!kc_keyidx_equal(got, &w)) {
        char e[2 * KC_KEYIDX_MAX_BYTES + 1];
        vec_fail(ctx, name, "keyidx: got %s, want %s", kc_keyidx_describe(got, g, sizeof g),
                 kc_keyidx_describe(&w, e, sizeof e));
        return false;
    }
    vec_pass(ctx, name);
    return true;
}
