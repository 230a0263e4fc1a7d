/* kc_regex.h — Python `re.match` on byte strings, for regexes in chain
 * poisons (spec §6.3).
 *
 * Semantics: a Python *bytes* pattern matched with re.match against a byte
 * string — anchored at the start only, `$` also matches before a final
 * newline, `.` is any byte but newline, \d \w \s and (?i) are ASCII-only.
 * That is what upstream evaluates wherever its regexes work (both sides
 * bytes, §6.4). PCRE2 does the matching, after a translation of the Python
 * syntax:
 *   - `\Z` (Python: end of string only) becomes PCRE2's `\z`;
 *   - `\v` is the vertical-tab character, not PCRE2's class;
 *   - `x{,n}` is `x{0,n}`;
 *   - octal escapes and numbered backreferences follow Python's rules;
 *   - `[` inside a class is literal (no POSIX `[:alpha:]` classes);
 *   - constructs Python rejects are rejected: unknown letter escapes
 *     (\Q \E \K \h \R \p \g \e ...), `(*VERB)`, `(?|`, `(?R)`, `(?1)`,
 *     `(?<name>`, `(?P>`, global flags after the start, the flags `u`/`L`
 *     (`a` is accepted: a no-op for bytes).
 * Known remaining differences (PCRE2 is more permissive): lookbehind with
 * alternatives of different fixed lengths, references to a group from
 * inside itself, group names longer than 32 characters are refused by
 * PCRE2. A pattern Python cannot compile was never usable upstream.
 *
 * Safety: patterns and subjects longer than KC_REGEX_MAX_LEN, patterns that
 * do not compile, and matches that exceed PCRE2's match/depth/heap limits
 * all count as "no match" (a hostile certificate cannot stall the node).
 * Compiled patterns are cached (poisons repeat); the cache is thread-safe. */
#ifndef KC_REGEX_H
#define KC_REGEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kc_buf.h"
#include "kc_err.h"

#define KC_REGEX_MAX_LEN 1024
#define KC_REGEX_MATCH_LIMIT 10000  /* PCRE2 match() calls per match */
#define KC_REGEX_DEPTH_LIMIT 250    /* PCRE2 backtracking depth */
#define KC_REGEX_HEAP_LIMIT 256     /* KiB of PCRE2 backtracking memory */

typedef enum kc_regex_result {
    KC_REGEX_NOMATCH = 0,
    KC_REGEX_MATCH = 1,
    KC_REGEX_BAD_PATTERN = 2, /* does not compile (or too long): matches nothing */
    KC_REGEX_LIMIT = 3        /* exceeded a match limit, or subject too long */
} kc_regex_result;

/* re.match(pattern, subject) with the details; err (may be NULL) explains
 * BAD_PATTERN and LIMIT. A bad pattern is logged once at WARNING (when it
 * enters the cache), a limit hit at INFO. */
kc_regex_result kc_regex_match_ex(const uint8_t *pattern, size_t plen,
                                  const uint8_t *subject, size_t slen, kc_err *err);

/* True only for KC_REGEX_MATCH. */
bool kc_regex_match(const uint8_t *pattern, size_t plen, const uint8_t *subject, size_t slen);

/* Python pattern syntax -> PCRE2 pattern (exposed for tests). */
kc_status kc_regex_translate(const uint8_t *pattern, size_t plen, kc_buf *out, kc_err *err);

/* Frees every cached pattern (tests, shutdown). */
void kc_regex_cache_clear(void);

#endif
