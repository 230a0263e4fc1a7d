/* kc_store.h — the node store, NODE.config (spec §10.1–§10.6, §10.9, §10.10).
 *
 * Upstream's CryptoStore / KafkaCryptoStore over kc_ini, with the typed
 * values of kc_value. The public entry points are declared in kafkacrypto.h;
 * this header adds what the rest of the library and the tests need.
 *
 * Files: the config file is opened, locked with an exclusive non-blocking
 * fcntl write lock on the whole file (F_OFD_SETLK where available: it
 * conflicts with Python's lockf and, unlike F_SETLK, also with a second
 * opener in the same process), and kept locked while open. Every change
 * rewrites the whole file: a temporary file in the same directory, locked,
 * given the old permission bits, written and fsync'ed, renamed over the
 * original, then the directory fsync'ed — so the lock never lapses and a
 * kill leaves the old or the new file. A rewrite that would produce the
 * same bytes is skipped. */
#ifndef KC_STORE_H
#define KC_STORE_H

#include <pthread.h>

#include "kafkacrypto.h"
#include "kc_buf.h"
#include "kc_ini.h"
#include "kc_value.h"

/* Largest config file read (upstream has no limit; files are kilobytes). */
#define KC_STORE_MAX_FILE ((size_t)64 << 20)
#define KC_STORE_LOGGER "kafkacrypto.cryptostore"

struct kc_store {
    pthread_mutex_t mu;
    char *path;
    char *node_id;
    int fd;           /* the locked descriptor of the current file */
    kc_ini ini;
    kc_buf content;   /* the bytes the file holds now */
};

/* "<node_id>" for section NULL, else "<node_id>-<section>"; malloc'd. */
char *kc_store_section_name(const kc_store *s, const char *section);

/* upstream's get_kafka_config before the librdkafka mapping: kafka-python
 * option names, typed values, group_id rules (spec §10.5). */
kc_status kc_store_kafka_options(kc_store *s, kc_kafka_use use, const char *extra,
                                 kc_section *out, kc_err *err);

/* Legacy migrations at start-up (spec §10.9): crypto.rot / chainrot to the
 * allowlist, crypto.chain to chains.chain0 (KafkaCrypto and chain server). */
kc_status kc_store_migrate_legacy(kc_store *s, kc_err *err);
/* Controllers: every <node>-provisioners entry moves to the allowlist under
 * the key SHA256(value). */
kc_status kc_store_migrate_provisioners(kc_store *s, kc_err *err);

/* The path of a "file#<path>" text value (upstream strips the prefix; any
 * other text is used as the path). */
bool kc_store_file_ref(const kc_value *v, const char **path, size_t *len);

/* Python dict assignment on a kc_section: an equal key keeps its place and
 * takes the new value (copied). */
kc_status kc_section_set(kc_section *sec, const kc_value *key, const kc_value *value);
/* Removes an equal key; false if absent. */
bool kc_section_pop(kc_section *sec, const kc_value *key);

#endif
