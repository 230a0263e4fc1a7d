/* vec_keyidx.h — key indices in vector files (shared by the data-path handlers). */
#ifndef KC_VEC_KEYIDX_H
#define KC_VEC_KEYIDX_H

#include <jansson.h>
#include <stdbool.h>

#include "kafkacrypto.h"
#include "vec.h"

/* A JSON key index (an integer or {"bin": hex}) into ki; false if neither. */
bool vec_keyidx(json_t *v, kc_keyidx *ki);
/* Reports pass/fail of got against the JSON key index want. */
bool vec_check_keyidx(vec_ctx *ctx, const char *name, const kc_keyidx *got, json_t *want);

#endif
