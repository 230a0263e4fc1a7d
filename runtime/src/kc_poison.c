/* kc_poison.c — poisons: the constraints a certificate puts on what it
 * certifies (spec §6.2), parsed, packed and described (kc_chain_impl.h). */
#include "kc_chain_impl.h"

#include <stdlib.h>
#include <string.h>

#include "kc_unicode.h"

const char *const kc_pnames[] = {"topics", "usages", "pathlen"};

void kc_poison_free(kc_parsed_poison *p)
{
    kc_mp_doc_free(&p->doc);
    free(p->pool);
    p->pool = NULL;
}

/* Decodes and checks a packed poison: an array of [name, value, ...] with
 * a known name; lists of UTF-8 strings or None; pathlen an integer or None. */
kc_status kc_poison_parse(kc_parsed_poison *out, const kc_bytes *packed, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    kc_err e;
    if (kc_mp_decode(&out->doc, packed->p, packed->n, "poison", &e) != KC_OK) {
        kc_whyf(why, whylen, "%s", e.msg);
        return KC_ERR_INVALID;
    }
    const msgpack_object *root = kc_mp_root(&out->doc);
    kc_status st = KC_ERR_INVALID;
    if (root->type != MSGPACK_OBJECT_ARRAY) {
        kc_whyf(why, whylen, "poison is not a list of [name, value] entries");
        goto bad;
    }
    if (root->via.array.size > KC_POISON_MAX_ENTRIES) {
        kc_whyf(why, whylen, "poison has %u entries, more than the limit of %d",
             root->via.array.size, KC_POISON_MAX_ENTRIES);
        goto bad;
    }
    size_t total = 0;
    for (uint32_t i = 0; i < root->via.array.size; i++) {
        const msgpack_object *ent = &root->via.array.ptr[i];
        if (ent->type == MSGPACK_OBJECT_ARRAY && ent->via.array.size >= 2 &&
            ent->via.array.ptr[1].type == MSGPACK_OBJECT_ARRAY)
            total += ent->via.array.ptr[1].via.array.size;
    }
    out->pool = calloc(total ? total : 1, sizeof(kc_bytes));
    if (!out->pool) {
        kc_whyf(why, whylen, "out of memory");
        st = KC_ERR_NOMEM;
        goto bad;
    }
    size_t used = 0;
    for (uint32_t i = 0; i < root->via.array.size; i++) {
        const msgpack_object *ent = &root->via.array.ptr[i];
        kc_pentry *pe = &out->e[i];
        kc_bytes name;
        if (ent->type != MSGPACK_OBJECT_ARRAY || ent->via.array.size < 2 ||
            !kc_mp_bytes(&ent->via.array.ptr[0], &name.p, &name.n)) {
            kc_whyf(why, whylen, "poison entry %u is not [name, value]", i + 1);
            goto bad;
        }
        if (kc_bytes_is(&name, "topics"))
            pe->name = KC_P_TOPICS;
        else if (kc_bytes_is(&name, "usages"))
            pe->name = KC_P_USAGES;
        else if (kc_bytes_is(&name, "pathlen"))
            pe->name = KC_P_PATHLEN;
        else {
            kc_buf shown = KC_BUF_INIT;
            kc_put_text(&shown, &name, 40);
            kc_whyf(why, whylen, "unknown poison entry '%s' (only topics, usages, pathlen exist)",
                 kc_buf_str(&shown));
            kc_buf_free(&shown);
            goto bad;
        }
        const msgpack_object *v = &ent->via.array.ptr[1];
        if (pe->name == KC_P_PATHLEN) {
            if (v->type == MSGPACK_OBJECT_NIL) {
                pe->pathlen_none = true;
            } else if (!kc_mp_int(v, &pe->pathlen)) {
                kc_whyf(why, whylen, "poison entry %u: pathlen is not an integer", i + 1);
                goto bad;
            }
            continue;
        }
        if (v->type == MSGPACK_OBJECT_NIL) {
            pe->list.none = true;
            continue;
        }
        if (v->type != MSGPACK_OBJECT_ARRAY) {
            kc_whyf(why, whylen, "poison entry %u: %s is not a list of strings", i + 1,
                 kc_pnames[pe->name]);
            goto bad;
        }
        if (v->via.array.size > KC_POISON_MAX_VALUES) {
            kc_whyf(why, whylen, "poison entry %u: %u %s, more than the limit of %d", i + 1,
                 v->via.array.size, kc_pnames[pe->name], KC_POISON_MAX_VALUES);
            goto bad;
        }
        pe->list.v = out->pool + used;
        for (uint32_t k = 0; k < v->via.array.size; k++) {
            kc_bytes *s = &out->pool[used + k];
            if (!kc_mp_bytes(&v->via.array.ptr[k], &s->p, &s->n)) {
                kc_whyf(why, whylen, "poison entry %u: %s value %u is not a string", i + 1,
                     kc_pnames[pe->name], k + 1);
                goto bad;
            }
            if (s->n > KC_POISON_MAX_VALUE_LEN || !kc_utf8_valid(s->p, s->n)) {
                kc_whyf(why, whylen, "poison entry %u: %s value %u is %s", i + 1,
                     kc_pnames[pe->name], k + 1,
                     s->n > KC_POISON_MAX_VALUE_LEN ? "too long" : "not valid UTF-8");
                goto bad;
            }
        }
        pe->list.n = v->via.array.size;
        used += v->via.array.size;
    }
    out->n = root->via.array.size;
    return KC_OK;
bad:
    kc_poison_free(out);
    return st;
}

static void pack_strlist(msgpack_packer *pk, const kc_strlist *l)
{
    msgpack_pack_array(pk, l->n);
    for (size_t i = 0; i < l->n; i++)
        kc_mp_pack_bin(pk, l->v[i].p, l->v[i].n);
}

/* The accumulated poison as upstream re-packs it: names str, strings bin. */
kc_status kc_poison_pack(const kc_strlist *topics, const kc_strlist *usages, bool has_pathlen,
                             int64_t pathlen, kc_buf *out)
{
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    msgpack_pack_array(&mo.pk, (size_t)!topics->none + !usages->none + has_pathlen);
    if (!topics->none) {
        msgpack_pack_array(&mo.pk, 2);
        kc_mp_pack_text(&mo.pk, "topics");
        pack_strlist(&mo.pk, topics);
    }
    if (!usages->none) {
        msgpack_pack_array(&mo.pk, 2);
        kc_mp_pack_text(&mo.pk, "usages");
        pack_strlist(&mo.pk, usages);
    }
    if (has_pathlen) {
        msgpack_pack_array(&mo.pk, 2);
        kc_mp_pack_text(&mo.pk, "pathlen");
        msgpack_pack_int64(&mo.pk, pathlen);
    }
    return kc_mp_out_take(&mo, out);
}

void kc_put_strlist(kc_buf *b, const kc_strlist *l)
{
    if (l->none) {
        kc_buf_append(b, "None", 4);
        return;
    }
    kc_buf_append_byte(b, '[');
    for (size_t i = 0; i < l->n && i < 16; i++) {
        if (i)
            kc_buf_append(b, ", ", 2);
        kc_buf_append_byte(b, '\'');
        kc_put_text(b, &l->v[i], 64);
        kc_buf_append_byte(b, '\'');
    }
    if (l->n > 16)
        kc_put_fmt(b, ", ... (%zu in all)", l->n);
    kc_buf_append_byte(b, ']');
}

/* "[topics: ['a'], usages: ['b'], pathlen: 1]" */
void kc_put_poison(kc_buf *b, const kc_bytes *packed)
{
    kc_parsed_poison p;
    char why[KC_WHY_MAX];
    if (kc_poison_parse(&p, packed, why, sizeof why) != KC_OK) {
        kc_put_fmt(b, "<unreadable poison: %s>", why);
        return;
    }
    kc_buf_append_byte(b, '[');
    for (size_t i = 0; i < p.n; i++) {
        if (i)
            kc_buf_append(b, ", ", 2);
        kc_put_fmt(b, "%s: ", kc_pnames[p.e[i].name]);
        if (p.e[i].name != KC_P_PATHLEN)
            kc_put_strlist(b, &p.e[i].list);
        else if (p.e[i].pathlen_none)
            kc_buf_append(b, "None", 4);
        else
            kc_put_fmt(b, "%lld", (long long)p.e[i].pathlen);
    }
    kc_buf_append_byte(b, ']');
    kc_poison_free(&p);
}

kc_status kc_poison_build(const kc_poison_entry *entries, size_t n, kc_buf *out, kc_err *err)
{
    if (n > KC_POISON_MAX_ENTRIES)
        return kc_err_set(err, KC_ERR_INVALID, "poison: %zu entries, more than the limit of %d",
                          n, KC_POISON_MAX_ENTRIES);
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    msgpack_pack_array(&mo.pk, n);
    kc_status st = KC_OK;
    for (size_t i = 0; i < n && st == KC_OK; i++) {
        const kc_poison_entry *e = &entries[i];
        bool is_list = e->name && (!strcmp(e->name, "topics") || !strcmp(e->name, "usages"));
        if (!is_list && !(e->name && !strcmp(e->name, "pathlen"))) {
            st = kc_err_set(err, KC_ERR_INVALID, "poison entry %zu: unknown name '%s'", i + 1,
                            e->name ? e->name : "(null)");
            break;
        }
        msgpack_pack_array(&mo.pk, 2);
        kc_mp_pack_text(&mo.pk, e->name);
        if (!is_list) {
            msgpack_pack_int64(&mo.pk, e->pathlen);
            continue;
        }
        if (e->n_values > KC_POISON_MAX_VALUES) {
            st = kc_err_set(err, KC_ERR_INVALID, "poison entry %zu: %zu %s, more than %d", i + 1,
                            e->n_values, e->name, KC_POISON_MAX_VALUES);
            break;
        }
        msgpack_pack_array(&mo.pk, e->n_values);
        for (size_t k = 0; k < e->n_values; k++) {
            const char *s = e->values[k];
            if (!s || !kc_utf8_valid((const uint8_t *)s, strlen(s))) {
                st = kc_err_set(err, KC_ERR_INVALID, "poison entry %zu: %s value %zu is %s",
                                i + 1, e->name, k + 1, s ? "not valid UTF-8" : "missing");
                break;
            }
            kc_mp_pack_text(&mo.pk, s);
        }
    }
    if (st != KC_OK) {
        kc_mp_out_free(&mo);
        return st;
    }
    return kc_mp_out_take(&mo, out);
}
