#include "kc_message.h"

#include <stdlib.h>
#include <string.h>

#include "kc_buf.h"
#include "kc_keyidx.h"
#include "kc_serde.h"

void kc_message_init(kc_message *m)
{
    memset(m, 0, sizeof *m);
    m->null = true;
    m->kind = KC_KIND_VALUE;
}

static void drop_deser(kc_message *m)
{
    if (m->deser) {
        kc_serde_unref(m->deser);
        m->deser = NULL;
    }
    m->topic.len = 0;
}

void kc_message_clear(kc_message *m)
{
    drop_deser(m);
    kc_buf_free(&m->bytes);
    kc_buf_free(&m->topic);
    if (m->zone_live)
        msgpack_zone_destroy(&m->zone);
    kc_message_init(m);
}

kc_message *kc_message_new(void)
{
    kc_message *m = malloc(sizeof *m);
    if (m)
        kc_message_init(m);
    return m;
}

void kc_message_free(kc_message *m)
{
    if (!m)
        return;
    kc_message_clear(m);
    free(m);
}

void kc_message_move(kc_message *to, kc_message *from)
{
    msgpack_zone zone = to->zone;
    bool live = to->zone_live;
    drop_deser(to);
    kc_buf_free(&to->bytes);
    kc_buf_free(&to->topic);
    *to = *from;
    to->zone = zone;
    to->zone_live = live;
    zone = from->zone;
    live = from->zone_live;
    kc_message_init(from);
    from->zone = zone;
    from->zone_live = live;
}

msgpack_zone *kc_message_zone(kc_message *m)
{
    if (!m->zone_live) {
        if (!msgpack_zone_init(&m->zone, 512))
            return NULL;
        m->zone_live = true;
    }
    return &m->zone;
}

void kc_message_set_null(kc_message *m)
{
    drop_deser(m);
    kc_buf_reset(&m->bytes);
    m->null = true;
    m->cleartext = false;
    m->decryptable = false;
}

void kc_message_mark_cleartext(kc_message *m)
{
    drop_deser(m);
    m->null = false;
    m->cleartext = true;
    m->decryptable = true;
}

kc_status kc_message_set_cleartext(kc_message *m, const uint8_t *p, size_t n, kc_err *err)
{
    if (!m || (!p && n))
        return kc_err_set(err, KC_ERR_INVALID, "message: bad arguments");
    if (kc_buf_set(&m->bytes, p, n) != KC_OK)
        return kc_err_set(err, KC_ERR_NOMEM, "message: out of memory");
    kc_message_mark_cleartext(m);
    return KC_OK;
}

kc_status kc_message_set_encrypted(kc_message *m, const uint8_t *raw, size_t n,
                                   kc_serde *deser, kc_kind kind, const char *topic,
                                   size_t topic_len, bool decryptable)
{
    drop_deser(m);
    m->null = false;
    m->cleartext = false;
    m->kind = kind;
    if (kc_buf_set(&m->bytes, raw, n) != KC_OK)
        return KC_ERR_NOMEM;
    if (n == 0 || !deser || !topic) {
        m->decryptable = false;
        return KC_OK;
    }
    if (kc_buf_set(&m->topic, topic, topic_len) != KC_OK ||
        kc_buf_append_byte(&m->topic, 0) != KC_OK)
        return KC_ERR_NOMEM;
    m->topic.len--;  /* keep the NUL out of the length */
    m->decryptable = decryptable;
    if (decryptable)
        m->deser = kc_serde_ref(deser);
    return KC_OK;
}

bool kc_message_is_null(const kc_message *m)
{
    return m->null;
}

bool kc_message_is_possibly_decryptable(const kc_message *m)
{
    return m->decryptable;
}

bool kc_message_is_cleartext(kc_message *m, bool retry)
{
    if (m->cleartext || m->null || !retry || !m->deser || !m->decryptable)
        return m->cleartext;
    /* Deserialize our own raw bytes into a scratch object; upstream
     * swallows any error of the retry. */
    kc_message tmp;
    kc_message_init(&tmp);
    if (kc_serde_deserialize_again(m->deser, m->kind, (const char *)m->topic.data, m->bytes.data,
                             m->bytes.len, &tmp, NULL) == KC_OK) {
        if (tmp.cleartext) {
            kc_buf swap = m->bytes;
            m->bytes = tmp.bytes;
            tmp.bytes = swap;
            kc_message_mark_cleartext(m);
        } else {
            m->decryptable = tmp.decryptable;
        }
    }
    kc_message_clear(&tmp);
    return m->cleartext;
}

kc_status kc_message_get(kc_message *m, bool retry, const uint8_t **p, size_t *n,
                         kc_err *err)
{
    if (!kc_message_is_cleartext(m, retry))
        return kc_err_set(err, KC_ERR_STATE, "Message not decrypted!");
    *p = m->bytes.data ? m->bytes.data : (const uint8_t *)"";
    *n = m->bytes.len;
    return KC_OK;
}

void kc_message_bytes(const kc_message *m, const uint8_t **p, size_t *n)
{
    *p = m->bytes.data ? m->bytes.data : (const uint8_t *)"";
    *n = m->bytes.len;
}

const char *kc_message_topic(const kc_message *m)
{
    return m->topic.len ? (const char *)m->topic.data : "";
}

kc_kind kc_message_kind(const kc_message *m)
{
    return m->kind;
}
