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

/* At most this many files per kc_store_node_files call. */
#define KC_STORE_MAX_FILES 4

/* A node file named by a "file#<path>" option of the node section. */
typedef struct kc_store_file {
    const char *name;            /* option: "cryptokey", "ratchet" */
    const char *default_suffix;  /* ".crypto": "<node_id>.crypto" when unnamed */
    bool optional_unnamed;       /* a provisioned node may lack it while the config
                                  * does not name it (the .seed of a controller) */
} kc_store_file;

/* The paths of a node's files (spec D1): each option's path, relative ones
 * resolved against the config file's directory; unnamed ones default to
 * "<node_id><suffix>" there. When the node is provisioned (it holds a
 * chain), a missing file is KC_ERR_NOTFOUND naming it and how to recover,
 * and nothing is written; otherwise the defaults are stored as relative
 * "file#..." options in one rewrite, and the caller may create the files.
 * paths[i] are malloc'd (all NULL on failure). */
kc_status kc_store_node_files(kc_store *s, size_t n, const kc_store_file *files, char **paths,
                              kc_err *err);
/* The resolved path of one such option (the default when unnamed),
 * without writing or checking anything. *path is malloc'd. */
kc_status kc_store_file_path(kc_store *s, const char *name, const char *default_suffix,
                             char **path, kc_err *err);
/* The node holds a chain ([<node>-chains] or the legacy crypto.chain). */
bool kc_store_is_provisioned(kc_store *s);

/* Python dict assignment on a kc_section: an equal key keeps its place and
 * takes the new value (copied). */
kc_status kc_section_set(kc_section *sec, const kc_value *key, const kc_value *value);
/* Removes an equal key; false if absent. */
bool kc_section_pop(kc_section *sec, const kc_value *key);

#endif
