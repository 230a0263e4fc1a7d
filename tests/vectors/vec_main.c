/* kc-vectors DIR — runs every *.json vector file of DIR through the handler
 * of its `area` and prints one line per file, the known divergences by
 * name, and `N passed, N failed`. Exit status 1 on any failure. */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_hex.h"
#include "kc_log.h"
#include "kc_test_rng.h"
#include "vec.h"

static vec_area_fn area_handler(const char *name)
{
#define VEC_MATCH(a) if (strcmp(name, #a) == 0) return vec_area_##a;
    VEC_AREAS(VEC_MATCH)
#undef VEC_MATCH
    return NULL;
}

void vec_pass(vec_ctx *ctx, const char *name)
{
    ctx->passed++;
    if (ctx->verbose)
        printf("  pass %s\n", name);
}

void vec_fail(vec_ctx *ctx, const char *name, const char *fmt, ...)
{
    ctx->failed++;
    va_list ap;
    va_start(ap, fmt);
    printf("  FAIL %s: ", name);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

void vec_diverge(vec_ctx *ctx, const char *name, const char *why)
{
    ctx->diverged++;
    char **d = realloc(ctx->divergences, sizeof(char *) * (size_t)(ctx->ndivergences + 1));
    if (!d)
        abort();
    ctx->divergences = d;
    size_t n = strlen(name) + strlen(why) + 3;
    d[ctx->ndivergences] = malloc(n);
    if (!d[ctx->ndivergences])
        abort();
    snprintf(d[ctx->ndivergences++], n, "%s: %s", name, why);
}

void vec_skip(vec_ctx *ctx, const char *name, const char *why)
{
    ctx->skipped++;
    if (ctx->verbose)
        printf("  skip %s: %s\n", name, why);
}

bool vec_bytes(json_t *v, kc_buf *out)
{
    kc_buf_reset(out);
    if (json_is_string(v))
        return kc_unhex(json_string_value(v), json_string_length(v), out) == KC_OK;
    if (!json_is_object(v))
        return false;
    json_t *x;
    if ((x = json_object_get(v, "hex")) || (x = json_object_get(v, "bin")))
        return json_is_string(x) &&
               kc_unhex(json_string_value(x), json_string_length(x), out) == KC_OK;
    if ((x = json_object_get(v, "str")) || (x = json_object_get(v, "bytes_utf8")))
        return json_is_string(x) &&
               kc_buf_append(out, json_string_value(x), json_string_length(x)) == KC_OK;
    return false;
}

kc_buf vec_req_bytes(vec_ctx *ctx, json_t *obj, const char *field)
{
    kc_buf b = KC_BUF_INIT;
    if (!vec_bytes(json_object_get(obj, field), &b)) {
        fprintf(stderr, "%s: field '%s' missing or not a byte string\n", ctx->file, field);
        exit(2);
    }
    return b;
}

const char *vec_req_str(vec_ctx *ctx, json_t *obj, const char *field)
{
    const char *s = json_string_value(json_object_get(obj, field));
    if (!s) {
        fprintf(stderr, "%s: field '%s' missing or not a string\n", ctx->file, field);
        exit(2);
    }
    return s;
}

const char *vec_name(json_t *v, const char *area, size_t index, char *buf, size_t cap)
{
    const char *n = json_string_value(json_object_get(v, "name"));
    if (n)
        return n;
    snprintf(buf, cap, "%s#%zu", area, index);
    return buf;
}

bool vec_check_bytes(vec_ctx *ctx, const char *name, const char *what,
                     const uint8_t *got, size_t got_len, json_t *want)
{
    kc_buf w = KC_BUF_INIT;
    bool ok = false;
    if (!vec_bytes(want, &w)) {
        vec_fail(ctx, name, "%s: expected value missing in vector", what);
    } else if (w.len != got_len || (got_len && memcmp(w.data, got, got_len) != 0)) {
        char *g = malloc(2 * got_len + 1), *e = malloc(2 * w.len + 1);
        if (!g || !e)
            abort();
        size_t at = 0;
        while (at < got_len && at < w.len && got[at] == w.data[at])
            at++;
        kc_hex(got, got_len, g);
        kc_hex(w.data, w.len, e);
        size_t from = at > 8 ? 2 * (at - 8) : 0; /* show the bytes around the difference */
        vec_fail(ctx, name, "%s: %zu bytes, want %zu; first difference at byte %zu: got ...%.64s, "
                 "want ...%.64s", what, got_len, w.len, at, g + (from < 2 * got_len ? from : 0),
                 e + (from < 2 * w.len ? from : 0));
        free(g);
        free(e);
    } else {
        vec_pass(ctx, name);
        ok = true;
    }
    kc_buf_free(&w);
    return ok;
}

/* Upstream's log lines are part of what the areas reproduce, not of the
 * report: show them only with -v. */
static void quiet_sink(void *ctx, kc_log_level level, const char *logger, const char *msg)
{
    if (*(bool *)ctx)
        printf("  log %s:%s:%s\n", kc_log_level_name(level), logger, msg);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int json_file(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 5 && strcmp(d->d_name + n - 5, ".json") == 0;
}

int main(int argc, char **argv)
{
    const char *dir = "tests/vectors/data";
    bool verbose = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0)
            verbose = true;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: kc-vectors [-v] [DIR]\n"
                   "Runs every *.json vector file of DIR (default tests/vectors/data).\n");
            return 0;
        } else
            dir = argv[i];
    }
    /* areas may script randomness to reproduce upstream's random bytes */
    if (tc_rng_install() != 0) {
        fprintf(stderr, "kc-vectors: cannot install the scripted RNG\n");
        return 2;
    }
    kc_log_set_sink(quiet_sink, &verbose);
    struct dirent **list;
    int n = scandir(dir, &list, json_file, by_name);
    if (n < 0) {
        fprintf(stderr, "kc-vectors: cannot read directory %s\n", dir);
        return 2;
    }
    if (n == 0) {
        fprintf(stderr, "kc-vectors: no *.json vector files in %s\n", dir);
        return 2;
    }
    int total_pass = 0, total_fail = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, list[i]->d_name);
        json_error_t jerr;
        json_t *root = json_load_file(path, 0, &jerr);
        if (!root) {
            printf("%s: cannot parse JSON (line %d: %s)\n", list[i]->d_name, jerr.line, jerr.text);
            total_fail++;
            free(list[i]);
            continue;
        }
        const char *area = json_string_value(json_object_get(root, "area"));
        vec_ctx ctx = {.file = path, .root = root, .verbose = verbose};
        vec_area_fn fn = area ? area_handler(area) : NULL;
        if (!area) {
            printf("%s: no \"area\" field: skipped\n", list[i]->d_name);
        } else if (!fn) {
            printf("%s: %zu vectors skipped (area not implemented yet)\n", area,
                   json_array_size(json_object_get(root, "vectors")));
        } else {
            fn(&ctx, root);
            printf("%s: %d passed, %d failed, %d known divergences", area, ctx.passed,
                   ctx.failed, ctx.diverged);
            if (ctx.skipped)
                printf(", %d skipped", ctx.skipped);
            printf("\n");
            for (int d = 0; d < ctx.ndivergences; d++) {
                printf("  divergence %s\n", ctx.divergences[d]);
                free(ctx.divergences[d]);
            }
            free(ctx.divergences);
            total_pass += ctx.passed;
            total_fail += ctx.failed;
        }
        json_decref(root);
        free(list[i]);
    }
    free(list);
    printf("%d passed, %d failed\n", total_pass, total_fail);
    return total_fail ? 1 : 0;
}
