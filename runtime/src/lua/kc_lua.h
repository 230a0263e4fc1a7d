/* kc_lua.h — LuaJIT states with the kafkacrypto module.
 *
 * A state has the standard libraries, package.path/cpath pointing at our
 * Lua code (and Debian's Lua modules, e.g. lua-cjson), and the C part of
 * the module preloaded as `kafkacrypto.core`. A lua_State belongs to the
 * thread that created it: states are never shared between threads (the
 * management loop gets its own). */
#ifndef KC_LUA_H
#define KC_LUA_H

#include <lua.h>

#include "kc_err.h"
#include "kc_root.h"
#include "kc_settings.h"

typedef struct kc_lua_options {
    const kc_settings *settings;  /* must outlive the state; NULL = defaults */
    const char *home;             /* holds lua/ (and scripts/); NULL = none */
    const char *script_dir;       /* also searched by require; may be NULL */
    const char *exe;              /* for arg[-1]; may be NULL */
} kc_lua_options;

/* package.path, most specific first: $KC_LUA_PATH, the settings' lua_path,
 * the script's directory, HOME/lua, then LuaJIT's defaults without "./"
 * entries (so nothing depends on the current directory). cpath likewise. */
kc_status kc_lua_new(lua_State **out, const kc_lua_options *opts, kc_err *err);

/* Runs a script file as the standalone interpreter does: arg[0] = path,
 * arg[1..] = args (also passed as `...`). On an error, err holds
 * "SCRIPT:LINE: message" and *traceback (if not NULL; free() it) the Lua
 * stack. os.exit(n) in a script closes its Kafka clients (flushing
 * producers) and the embedded broker, then exits the process. */
kc_status kc_lua_run_file(lua_State *L, const char *path, int argc, char *const *argv,
                          char **traceback, kc_err *err);

/* Closes Kafka clients still open (flushing producers), then the state. */
void kc_lua_close(lua_State *L);

/* The settings the state was created with (defaults if none). */
const kc_settings *kc_lua_settings(lua_State *L);

/* The root rule in force for this state (see kc_root.h); pass it to the
 * core. A rule installed from Lua may only be called on this state's
 * thread. */
const kc_root_rule *kc_lua_root_rule(lua_State *L);

/* Makes a serde created for this state use its root rule: the rule in
 * force at each call (kafkacrypto.set_root_rule may change it later), or
 * upstream's with the settings' separator. Needs the core module loaded. */
void kc_lua_serde_root(lua_State *L, kc_serde_config *c);

/* luaopen function of `kafkacrypto.core`. Bindings of each concept add
 * their functions in their own kc_lua_open_<concept>(L) (table on top). */
KC_EXPORT int luaopen_kafkacrypto_core(lua_State *L);
void kc_lua_open_log(lua_State *L);

/* Marks the object at idx open (or no longer open) in the weak-keyed
 * registry table `registry`, made on first use: what os.exit closes. */
void kc_lua_mark_open(lua_State *L, const char *registry, int idx, bool open);
void kc_lua_open_kafka(lua_State *L);
void kc_lua_open_admin(lua_State *L);
void kc_lua_open_root(lua_State *L);
void kc_lua_open_serde(lua_State *L);
void kc_lua_open_store(lua_State *L);
void kc_lua_open_crypto(lua_State *L);   /* kc_lua_crypto.h */
void kc_lua_open_signal(lua_State *L);
void kc_lua_open_metrics(lua_State *L);   /* a page a script sets (kc_lua_metrics.c) */
/* Closes every Kafka client of the state (before os.exit). */
void kc_lua_kafka_close_all(lua_State *L);

/* Raise a Lua error located at the user's line: the first caller outside
 * our C functions and lua/kafkacrypto/ modules. */
int kc_lua_error(lua_State *L, const kc_err *err);
int kc_lua_errorf(lua_State *L, const char *fmt, ...);   /* lua_pushfstring formats */
/* Raise an error object of lua/kafkacrypto/errors.lua: kind names the
 * upstream exception ("KafkaCryptoMessageError"), located like the above. */
int kc_lua_raise(lua_State *L, const char *kind, const char *fmt, ...);

/* ---- data path objects (kc_lua_serde.c, kc_lua_store.c) ------------------ */

/* Pushes a serializer (deserializer = false) or deserializer object for
 * `kind` over serde, as kafkacrypto.producer/consumer take them: what
 * kc:key_serializer() and friends return. It takes its own reference to
 * serde and keeps the value at index `owner` (0: none) alive as long as
 * itself — pass the object that owns serde's ratchet. */
void kc_lua_push_serializer(lua_State *L, kc_serde *serde, kc_kind kind, bool deserializer,
                            int owner);
/* The serde and kind of the kafkacrypto deserializer object at idx, or
 * NULL if it is none. */
kc_serde *kc_lua_to_deserializer(lua_State *L, int idx, kc_kind *kind);
/* The serializer object at ser_idx applied to the value at value_idx (a
 * string or message object): the wire bytes, valid until the serializer's
 * next use, or NULL for a Kafka null. Raises as ser:serialize does. */
const uint8_t *kc_lua_serialize_arg(lua_State *L, int ser_idx, const char *topic, int value_idx,
                                    size_t *n);
/* Pushes what the deserializer object at deser_idx makes of p (nil for a
 * Kafka null, else a message object), as deser:deserialize does. */
void kc_lua_push_deserialized(lua_State *L, int deser_idx, const char *topic, const uint8_t *p,
                              size_t n);
/* Pushes a message object that takes over m's contents (m is left empty,
 * ready for reuse). */
void kc_lua_push_message_moved(lua_State *L, kc_message *m);
/* The open node store of the kafkacrypto.store object at idx; raises a Lua
 * error if it is not one or is closed. Keep the object alive (e.g. as an
 * owner) while using the store. */
kc_store *kc_lua_check_store(lua_State *L, int idx);
/* The same, and the store refuses :close() until kc_lua_return_store. */
kc_store *kc_lua_borrow_store(lua_State *L, int idx);
void kc_lua_return_store(lua_State *L, int idx);

/* kafkacrypto.bytes(s) marks a string as bytes (kc_lua_bytes.c). The metatable's
 * registry name, the string inside the wrapper at idx (NULL if it is not one),
 * and a new wrapper of p[0..n). */
#define KC_LUA_BYTES "kafkacrypto.bytes"
const char *kc_lua_wrapped_bytes(lua_State *L, int idx, size_t *n);
void kc_lua_push_bytes(lua_State *L, const char *p, size_t n);
/* The metatable, made once per state (sandboxes too); kc_lua_open_bytes also
 * adds the function `bytes` to the core module table. */
void kc_lua_bytes_init(lua_State *L);
void kc_lua_open_bytes(lua_State *L);

/* librdkafka properties for a client of kind `use`: the settings' Kafka
 * options, then those of the Lua table at idx (nil: none), which win.
 * Raises a Lua error on a bad option. */
void kc_lua_kafka_config(lua_State *L, int idx, kc_kafka_use use, kc_kafka_config *conf);
/* Optional seconds at idx (nil: dflt) as ms; negative: wait without limit. */
int kc_lua_opt_ms(lua_State *L, int idx, int dflt);

/* ---- provisioning tools (kc_lua_tools.c) ---------------------------------- */

void kc_lua_open_tools(lua_State *L);

/* ---- nodes (kc_lua_node.c) ------------------------------------------------ */

void kc_lua_open_node(lua_State *L);
/* kafkacrypto.cfg's policy files followed by those of the list at index
 * `list` (nil: none), as an array in a userdata pushed on the stack; the
 * names are owned by the settings and the list, which must stay alive.
 * `what` prefixes errors ("new: policies[2]: expected a file name"). */
char **kc_lua_policy_files(lua_State *L, int list, const char *what, size_t *n);
/* The open node of the kafkacrypto.node object at idx (raises otherwise). */
struct kc_node *kc_lua_check_node(lua_State *L, int idx);
/* Authorities (kc_lua_authority.c): controller re-signing, chain server. */
void kc_lua_open_authority(lua_State *L);
/* Closes every node of the state (before os.exit). */
void kc_lua_node_close_all(lua_State *L);

#endif
