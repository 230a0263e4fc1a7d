#include "kc_root.h"

#include <stdio.h>
#include <string.h>

#include "kc_log.h"

kc_status kc_root_default(const char *separator, const char *topic, char *root, size_t size,
                          kc_err *err)
{
    const char *cut = separator && *separator ? strstr(topic, separator) : NULL;
    size_t n = cut ? (size_t)(cut - topic) : strlen(topic);
    if (n >= size)
        return kc_err_set(err, KC_ERR_INVALID, "topic '%.80s...': root longer than %zu characters",
                          topic, size - 1);
    memcpy(root, topic, n);
    root[n] = '\0';
    return KC_OK;
}

kc_status kc_root_of(const kc_root_rule *rule, const char *separator, const char *topic,
                     char root[KC_TOPIC_NAME_MAX + 1], kc_err *err)
{
    if (!topic || !*topic)
        return kc_err_set(err, KC_ERR_INVALID, "root rule: expected a topic name");
    root[0] = '\0';
    kc_status st = rule && rule->fn
                       ? rule->fn(rule->ctx, topic, root, KC_TOPIC_NAME_MAX + 1, err)
                       : kc_root_default(separator, topic, root, KC_TOPIC_NAME_MAX + 1, err);
    if (st != KC_OK)
        return st;
    root[KC_TOPIC_NAME_MAX] = '\0';
    if (!kc_topic_name_valid(root))
        return kc_err_set(err, KC_ERR_INVALID,
                          "root rule: topic '%s' gave root '%s', expected 1 to %d characters "
                          "of A-Z a-z 0-9 . _ -", topic, root, KC_TOPIC_NAME_MAX);
    return KC_OK;
}

kc_status kc_root_serde_with(const kc_root_rule *rule, const char *separator, const char *topic,
                             size_t topic_len, const char **root, size_t *root_len)
{
    static __thread char out[KC_TOPIC_NAME_MAX + 1];
    char name[KC_TOPIC_NAME_MAX + 1];
    kc_err err;
    kc_status st;
    if (topic_len > KC_TOPIC_NAME_MAX || memchr(topic, '\0', topic_len))
        st = kc_err_set(&err, KC_ERR_INVALID, "root rule: topic '%.*s' is not a topic name",
                        (int)(topic_len > 80 ? 80 : topic_len), topic);
    else {
        memcpy(name, topic, topic_len);
        name[topic_len] = '\0';
        st = kc_root_of(rule, separator, name, out, &err);
    }
    if (st != KC_OK) {
        kc_log(KC_LOG_WARNING, "kafkacrypto.root", "%s", err.msg);
        return st;
    }
    *root = out;
    *root_len = strlen(out);
    return KC_OK;
}

kc_status kc_root_serde_fn(void *ctx, const char *topic, size_t topic_len, const char **root,
                           size_t *root_len)
{
    return kc_root_serde_with(ctx, ".", topic, topic_len, root, root_len);
}
