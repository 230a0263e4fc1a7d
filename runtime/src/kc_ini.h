/* kc_ini.h — the INI dialect of upstream's NODE.config (spec §10.1).
 *
 * Python's ConfigParser(delimiters=":", comment_prefixes=";") with
 * optionxform = str, reproduced exactly:
 *   - text is strict UTF-8; lines end at \n, \r\n or \r;
 *   - a line whose stripped text starts with ';' is a comment ('#' is not);
 *   - "[name]" starts a section (the name runs to the last ']' of the line);
 *     [DEFAULT] holds the defaults every section inherits;
 *   - "name : value" sets an option: the first ':' separates them, both
 *     sides are stripped of Python whitespace, names are case-sensitive;
 *     '=' is not a delimiter;
 *   - a line indented deeper than its option line continues the value,
 *     empty lines inside a value are kept, trailing ones dropped;
 *   - strict: a repeated section or a repeated option of a section is an
 *     error ([DEFAULT] may repeat, its options may not).
 * Values are kept raw; kc_ini_get applies BasicInterpolation ("%%" is '%',
 * "%(name)s" is another option of the section or of [DEFAULT]).
 *
 * Writing reproduces ConfigParser.write byte for byte: [DEFAULT] first when
 * it has options, then the sections in creation order, "name : value" per
 * option with newlines in values written as "\n\t", an empty line after each
 * section. Comments are not kept. */
#ifndef KC_INI_H
#define KC_INI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kc_buf.h"
#include "kc_err.h"

/* Open-addressing index from names to positions. */
typedef struct kc_ini_index {
    uint32_t *slots; /* position + 1, 0 = empty */
    size_t cap;      /* power of two, or 0 */
} kc_ini_index;

typedef struct kc_ini_option {
    uint8_t *name;   /* NUL-terminated; may contain NULs */
    size_t name_len;
    uint8_t *value;
    size_t value_len;
} kc_ini_option;

typedef struct kc_ini_section {
    uint8_t *name;
    size_t name_len;
    kc_ini_option *opts;
    size_t n, cap;
    kc_ini_index index;
} kc_ini_section;

typedef struct kc_ini {
    kc_ini_section defaults;  /* [DEFAULT] */
    kc_ini_section **secs;    /* in creation order */
    size_t n, cap;
    kc_ini_index index;
} kc_ini;

void kc_ini_init(kc_ini *ini);
void kc_ini_free(kc_ini *ini);
kc_status kc_ini_clone(kc_ini *dst, const kc_ini *src);

/* Parses text into an empty ini. `source` names the file in errors, which
 * give the line number and what was expected. */
kc_status kc_ini_parse(kc_ini *ini, const uint8_t *text, size_t n, const char *source,
                       kc_err *err);
/* Appends the ConfigParser.write form of ini to out. */
kc_status kc_ini_write(const kc_ini *ini, kc_buf *out);

/* The section called name ("DEFAULT" gives the defaults), or NULL. */
kc_ini_section *kc_ini_section_find(const kc_ini *ini, const uint8_t *name, size_t n);
/* Finds or appends a section. */
kc_status kc_ini_section_add(kc_ini *ini, const uint8_t *name, size_t n,
                             kc_ini_section **out);

const kc_ini_option *kc_ini_option_find(const kc_ini_section *s, const uint8_t *name,
                                        size_t n);
/* Sets a raw value; an existing option keeps its position. */
kc_status kc_ini_option_set(kc_ini_section *s, const uint8_t *name, size_t n,
                            const uint8_t *value, size_t value_len);
/* Removes an option of this section (not an inherited one); false if absent. */
bool kc_ini_option_remove(kc_ini_section *s, const uint8_t *name, size_t n);

/* ConfigParser.has_option: an option of s or of [DEFAULT]. */
bool kc_ini_has_option(const kc_ini *ini, const kc_ini_section *s, const uint8_t *name,
                       size_t n);
/* ConfigParser.get(section, name): the interpolated value of an option of s
 * or, failing that, of [DEFAULT], appended to out. KC_ERR_NOTFOUND if
 * absent; KC_ERR_INVALID for a bad '%' (names section and option). */
kc_status kc_ini_get(const kc_ini *ini, const kc_ini_section *s, const uint8_t *name,
                     size_t n, kc_buf *out, kc_err *err);
/* ConfigParser.options(section): own options, then [DEFAULT]'s not
 * overridden; for the defaults themselves, their options. *out is
 * malloc'd (NULL when *n is 0). */
kc_status kc_ini_options(const kc_ini *ini, const kc_ini_section *s,
                         const kc_ini_option ***out, size_t *n);

/* BasicInterpolation.before_set: false when the value has a '%' that is
 * neither "%%" nor part of "%(name)s". */
bool kc_ini_value_settable(const uint8_t *v, size_t n);

/* Same sections, options and values in the same order. */
bool kc_ini_equal(const kc_ini *a, const kc_ini *b);

#endif
