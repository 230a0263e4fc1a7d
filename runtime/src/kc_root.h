/* kc_root.h — the topic root rule: which root (key domain) a topic is in.
 *
 * Keys, poisons and shared secrets are per root (spec §7.1). Upstream's
 * rule, the default, takes the text before the first separator ("." unless
 * configured), or the whole topic. A program may install its own rule (a
 * Lua function via kafkacrypto.set_root_rule, or a C function); the core
 * asks for roots only through kc_root_of, so one rule holds everywhere:
 * the serializers call it on the thread that calls them, and the
 * management loop derives topic names from the roots found that way.
 * Whatever a rule returns is checked to be a usable topic-name prefix.
 *
 * With the serde of kafkacrypto.h: when rule->fn is set, put
 * kc_root_serde_fn in kc_serde_config.root_fn and the rule in root_ctx;
 * otherwise leave root_fn NULL and set topic_separator (the serde applies
 * upstream's rule itself). */
#ifndef KC_ROOT_H
#define KC_ROOT_H

#include <stddef.h>

#include "kc_err.h"
#include "kc_tunables.h"

/* Writes the root of `topic` (NUL-terminated) into root[0..size). */
typedef kc_status (*kc_root_rule_fn)(void *ctx, const char *topic, char *root, size_t size,
                                     kc_err *err);

typedef struct kc_root_rule {
    kc_root_rule_fn fn;   /* NULL: upstream's rule */
    void *ctx;
} kc_root_rule;

/* Upstream's rule with the given separator. */
kc_status kc_root_default(const char *separator, const char *topic, char *root, size_t size,
                          kc_err *err);

/* The root of `topic` under `rule` (NULL or a rule without fn: upstream's,
 * with `separator`). The result is 1..KC_TOPIC_NAME_MAX characters of
 * [A-Za-z0-9._-]; anything else is an error naming the topic. */
kc_status kc_root_of(const kc_root_rule *rule, const char *separator, const char *topic,
                     char root[KC_TOPIC_NAME_MAX + 1], kc_err *err);

/* kc_serde_config.root_fn for a rule with fn set (ctx: const kc_root_rule *).
 * The root stays valid until the next call on the same thread; a failing
 * rule is logged as a WARNING naming the topic. */
kc_status kc_root_serde_fn(void *ctx, const char *topic, size_t topic_len, const char **root,
                           size_t *root_len);
/* The same for any rule, one without fn meaning upstream's with `separator`
 * (for an adapter that follows a rule which may change between calls). */
kc_status kc_root_serde_with(const kc_root_rule *rule, const char *separator, const char *topic,
                             size_t topic_len, const char **root, size_t *root_len);

#endif
