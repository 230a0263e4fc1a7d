/* Poison regexes come from certificates: the Python-to-PCRE2 translation
 * and the bounded matcher must survive any pattern and subject.
 * Input: pattern bytes, a 0x00 separator, subject bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kc_log.h"
#include "kc_regex.h"

static void quiet(void *ctx, kc_log_level level, const char *logger, const char *msg) {}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        kc_log_set_sink(quiet, NULL);
        ready = 1;
    }
    const uint8_t *sep = memchr(data, 0, size);
    size_t plen = sep ? (size_t)(sep - data) : size;
    const uint8_t *subject = sep ? sep + 1 : data + size;
    size_t slen = sep ? size - plen - 1 : 0;
    kc_buf out = KC_BUF_INIT;
    kc_err err;
    kc_regex_translate(data, plen, &out, &err);
    kc_buf_free(&out);
    kc_regex_result r = kc_regex_match_ex(data, plen, subject, slen, NULL);
    if (r != KC_REGEX_MATCH && r != KC_REGEX_NOMATCH && r != KC_REGEX_BAD_PATTERN &&
        r != KC_REGEX_LIMIT)
        __builtin_trap();
    return 0;
}
