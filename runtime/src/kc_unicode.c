#include "kc_unicode.h"

#include "kc_unicode_tables.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

size_t kc_utf8_valid_prefix(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0; /* overlong */
            else if (c == 0xED)
                hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F; /* above U+10FFFF */
        } else {
            return i;
        }
        if (n - i <= need || p[i + 1] < lo || p[i + 1] > hi)
            return i;
        for (size_t k = 2; k <= need; k++)
            if ((p[i + k] & 0xC0) != 0x80)
                return i;
        i += need + 1;
    }
    return n;
}

uint32_t kc_utf8_next(const uint8_t *p, size_t *i)
{
    uint8_t c = p[(*i)++];
    if (c < 0x80)
        return c;
    int extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
    uint32_t cp = c & (0x3F >> extra);
    while (extra--)
        cp = (cp << 6) | (p[(*i)++] & 0x3F);
    return cp;
}

uint32_t kc_utf8_prev(const uint8_t *p, size_t *i)
{
    size_t j = *i - 1;
    while ((p[j] & 0xC0) == 0x80)
        j--;
    *i = j;
    size_t k = j;
    return kc_utf8_next(p, &k);
}

kc_status kc_utf8_append(kc_buf *b, uint32_t cp)
{
    uint8_t t[4];
    size_t n;
    if (cp < 0x80) {
        t[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        t[0] = (uint8_t)(0xC0 | (cp >> 6));
        t[1] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        t[0] = (uint8_t)(0xE0 | (cp >> 12));
        t[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        t[2] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        t[0] = (uint8_t)(0xF0 | (cp >> 18));
        t[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        t[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        t[3] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return kc_buf_append(b, t, n);
}

bool kc_uc_isspace(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20);
    switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
    case 0x202F: case 0x205F: case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

int kc_uc_decimal(uint32_t cp)
{
    if (cp >= '0' && cp <= '9')
        return (int)(cp - '0');
    size_t lo = 0, hi = COUNT(kc_uc_decimal_zeros);
    while (lo < hi) { /* last zero <= cp */
        size_t mid = (lo + hi) / 2;
        if (kc_uc_decimal_zeros[mid] <= cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return -1;
    uint32_t d = cp - kc_uc_decimal_zeros[lo - 1];
    return d < 10 ? (int)d : -1;
}

static bool in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid][0])
            hi = mid;
        else if (cp > r[mid][1])
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

static bool is_cased(uint32_t cp)
{
    return in_ranges(kc_uc_cased, COUNT(kc_uc_cased), cp);
}

static bool is_case_ignorable(uint32_t cp)
{
    return in_ranges(kc_uc_case_ignorable, COUNT(kc_uc_case_ignorable), cp);
}

static uint32_t simple_lower(uint32_t cp)
{
    if (cp < 0x80)
        return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    size_t lo = 0, hi = COUNT(kc_uc_lower_ranges);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const int32_t *r = kc_uc_lower_ranges[mid];
        if ((int32_t)cp < r[0])
            hi = mid;
        else if ((int32_t)cp > r[1])
            lo = mid + 1;
        else
            return ((int32_t)cp - r[0]) % r[3] == 0 ? (uint32_t)((int32_t)cp + r[2]) : cp;
    }
    return cp;
}

size_t kc_uc_rstrip(const uint8_t *p, size_t n)
{
    size_t e = n;
    while (e > 0) {
        size_t k = e;
        if (!kc_uc_isspace(kc_utf8_prev(p, &k)))
            break;
        e = k;
    }
    return e;
}

void kc_uc_strip(const uint8_t *p, size_t n, size_t *start, size_t *end)
{
    size_t s = 0;
    while (s < n) {
        size_t k = s;
        if (!kc_uc_isspace(kc_utf8_next(p, &k)))
            break;
        s = k;
    }
    *start = s;
    *end = s + kc_uc_rstrip(p + s, n - s);
}

/* Python's Final_Sigma context: a cased letter before the sigma (skipping
 * case-ignorables) and none after it. */
static bool sigma_is_final(const uint8_t *p, size_t n, size_t at, size_t after)
{
    size_t i = at;
    bool cased_before = false;
    while (i > 0) {
        uint32_t c = kc_utf8_prev(p, &i);
        if (!is_case_ignorable(c)) {
            cased_before = is_cased(c);
            break;
        }
    }
    if (!cased_before)
        return false;
    i = after;
    while (i < n) {
        uint32_t c = kc_utf8_next(p, &i);
        if (!is_case_ignorable(c))
            return !is_cased(c);
    }
    return true;
}

kc_status kc_uc_lower(const uint8_t *p, size_t n, kc_buf *out)
{
    kc_status st = KC_OK;
    size_t i = 0;
    while (i < n && st == KC_OK) {
        size_t at = i;
        uint32_t cp = kc_utf8_next(p, &i);
        if (cp < 0x80) {
            st = kc_buf_append_byte(out, (uint8_t)(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp));
        } else if (cp == 0x130) { /* the one multi-character lowercase mapping */
            st = kc_utf8_append(out, 0x69);
            if (st == KC_OK)
                st = kc_utf8_append(out, 0x307);
        } else if (cp == 0x3A3) {
            st = kc_utf8_append(out, sigma_is_final(p, n, at, i) ? 0x3C2 : 0x3C3);
        } else {
            st = kc_utf8_append(out, simple_lower(cp));
        }
    }
    return st;
}
