/* Lua binding of the node (upstream's KafkaCrypto object) and of node
 * provisioning. lua/kafkacrypto/init.lua documents the Lua API
 * (kafkacrypto.new, kafkacrypto.provision). */
#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kc_lua.h"
#include "kc_lua_class.h"
#include "kc_metrics.h"
#include "kc_node_metrics.h"
#include "kc_hex.h"
#include "kc_keyidx.h"
#include "kc_mp.h"
#include "kc_node.h"
#include "kc_policy.h"
#include "kc_serde.h"
#include "kc_provision_node.h"
#include "kc_variant.h"

static const char NODE[] = "kafkacrypto.node";
static const char REG_NODES[] = "kafkacrypto.open_nodes";

typedef struct lua_node {
    kc_node *n;
    kc_policy *policy;    /* the node's check; freed after the node */
    bool borrowed_store;  /* uservalue[1] is the store object */
    kc_metrics_server *metrics;  /* node:serve_metrics; stopped before the node closes */
} lua_node;

static lua_node *check_node(lua_State *L, int idx)
{
    lua_node *ln = luaL_checkudata(L, idx, NODE);
    if (!ln->n)
        kc_lua_errorf(L, "kafkacrypto node is closed");
    return ln;
}

kc_node *kc_lua_check_node(lua_State *L, int idx)
{
    return check_node(L, idx)->n;
}

/* open nodes, weakly, so that os.exit can close them */
static void set_open(lua_State *L, int idx, bool open)
{
    kc_lua_mark_open(L, REG_NODES, idx, open);
}

/* Errors name the function and the field: "provision: pathlen: expected a
 * number, got string". */
static double opt_number_field(lua_State *L, int t, const char *fn, const char *name,
                               double dflt)
{
    lua_getfield(L, t, name);
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TNUMBER)
        kc_lua_errorf(L, "%s: %s: expected a number, got %s", fn, name, luaL_typename(L, -1));
    double v = lua_isnil(L, -1) ? dflt : lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

/* The string field `name` of table t, left on the stack (it keeps the
 * string alive; nil when absent); NULL when absent and not required. */
static const char *string_field(lua_State *L, int t, const char *fn, const char *name,
                                bool required)
{
    lua_getfield(L, t, name);
    int type = lua_type(L, -1);
    if (type == LUA_TNIL && !required)
        return NULL;
    if (type != LUA_TSTRING && type != LUA_TNUMBER)
        kc_lua_errorf(L, "%s: %s: expected a string, got %s", fn, name, luaL_typename(L, -1));
    return lua_tostring(L, -1);
}

static void check_table_arg(lua_State *L, int idx, const char *fn, const char *what)
{
    if (lua_type(L, idx) != LUA_TTABLE)
        kc_lua_errorf(L, "%s: expected %s, got %s", fn, what, luaL_typename(L, idx));
}

static bool opt_bool_field(lua_State *L, int t, const char *name, bool dflt)
{
    lua_getfield(L, t, name);
    bool v = lua_isnil(L, -1) ? dflt : lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

char **kc_lua_policy_files(lua_State *L, int list, const char *what, size_t *n)
{
    const kc_settings *s = kc_lua_settings(L);
    list = list < 0 ? lua_gettop(L) + list + 1 : list;
    if (!lua_isnil(L, list) && !lua_istable(L, list))
        kc_lua_errorf(L, "%s: policies: expected a list of file names, got %s", what,
                      luaL_typename(L, list));
    size_t extra = lua_istable(L, list) ? lua_objlen(L, list) : 0;
    *n = s->npolicies + extra;
    char **files = lua_newuserdata(L, (*n ? *n : 1) * sizeof *files);
    for (size_t i = 0; i < s->npolicies; i++)
        files[i] = s->policies[i];
    for (size_t i = 0; i < extra; i++) {
        lua_rawgeti(L, list, (int)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            kc_lua_errorf(L, "%s: policies[%d]: expected a file name", what, (int)i + 1);
        files[s->npolicies + i] = (char *)lua_tostring(L, -1);   /* kept by the list */
        lua_pop(L, 1);
    }
    return files;
}

/* core.node_open{ node_id=, config=path|store, producer={...}, consumer={...},
 *                 key_wait_interval=, max_key_wait_intervals=, allowlist_topic=,
 *                 denylist_topic=, trust_temporary_rot=, policies={file...} } */
static int l_node_open(lua_State *L)
{
    check_table_arg(L, 1, "new", "a table of options");
    lua_settop(L, 1);
    kc_node_options o;
    kc_node_options_init(&o);
    o.node_id = string_field(L, 1, "new", "node_id", false);   /* 2 */
    lua_getfield(L, 1, "config");      /* 3 */
    bool borrowed = false;
    if (lua_type(L, 3) == LUA_TSTRING)
        o.config_path = lua_tostring(L, 3);
    else if (lua_type(L, 3) == LUA_TUSERDATA)
        borrowed = true; /* borrowed below, once nothing else can raise */
    else if (!lua_isnil(L, 3))
        return kc_lua_errorf(L, "new: config: expected a file name or a kafkacrypto.store, got %s",
                             luaL_typename(L, 3));
    if (!o.node_id && !o.config_path && !borrowed)
        return kc_lua_errorf(L, "new: expected a node ID or a config");
    o.key_wait_interval = opt_number_field(L, 1, "new", "key_wait_interval", 0);
    o.max_key_wait_intervals = (int)opt_number_field(L, 1, "new", "max_key_wait_intervals", 0);
    o.allowlist_topic = opt_bool_field(L, 1, "allowlist_topic", true);
    o.denylist_topic = opt_bool_field(L, 1, "denylist_topic", true);
    o.trust_temporary_rot = opt_bool_field(L, 1, "trust_temporary_rot", false);
    lua_getfield(L, 1, "exchange_variant");   /* a file name; default: the settings' */
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
        return kc_lua_errorf(L, "new: exchange_variant: expected a file name, got %s",
                             luaL_typename(L, -1));
    /* the options table (or the settings) keeps the string alive */
    const char *variant = lua_isnil(L, -1) ? kc_lua_settings(L)->exchange_variant
                                           : lua_tostring(L, -1);
    lua_pop(L, 1);
    if (variant) {
        o.open_variant = kc_variant_open_for_node;
        o.variant_ctx = (void *)variant;
    }
    o.tunables = &kc_lua_settings(L)->tunables;
    kc_serde_config rc;
    kc_serde_config_init(&rc);
    kc_lua_serde_root(L, &rc);
    o.root_fn = rc.root_fn;
    o.root_ctx = rc.root_ctx;

    /* settings' Kafka options, then the tables' (Lua errors must come
     * before any C allocation that would leak) */
    lua_getfield(L, 1, "producer");    /* 4 */
    lua_getfield(L, 1, "consumer");    /* 5 */
    if (!lua_isnil(L, 4))
        check_table_arg(L, 4, "new: producer", "Kafka options (a table or a kafkacrypto.producer)");
    if (!lua_isnil(L, 5))
        check_table_arg(L, 5, "new: consumer", "Kafka options (a table or a kafkacrypto.consumer)");
    if (borrowed)
        kc_lua_check_store(L, 3);
    lua_getfield(L, 1, "policies");
    size_t npolicies;
    char **policies = kc_lua_policy_files(L, -1, "new", &npolicies);
    lua_replace(L, -2);                /* 6: the array; the list stays in the options */

    lua_node *ln = kc_lua_class_push(L, NODE, sizeof *ln);   /* 7 */
    lua_createtable(L, 1, 0);
    lua_pushvalue(L, 3);
    lua_rawseti(L, -2, 1);
    lua_setfenv(L, 7);

    kc_kafka_config pc, cc;
    kc_lua_kafka_config(L, 4, KC_KAFKA_PRODUCER, &pc);
    kc_lua_kafka_config(L, 5, KC_KAFKA_CONSUMER, &cc);
    o.producer_conf = &pc;
    o.consumer_conf = &cc;
    if (borrowed) {
        o.store = kc_lua_borrow_store(L, 3);
        ln->borrowed_store = true;
    }
    kc_err err;
    kc_status st = KC_OK;
    if (npolicies && (st = kc_policy_open(&ln->policy, policies, npolicies, NULL, &err)) == KC_OK) {
        o.check = kc_policy_exchange_check;
        o.check_ctx = ln->policy;
    }
    if (st == KC_OK)
        st = kc_node_open(&ln->n, &o, &err);
    kc_kafka_config_clear(&pc);
    kc_kafka_config_clear(&cc);
    if (st != KC_OK) {
        kc_policy_free(ln->policy);
        ln->policy = NULL;
        if (borrowed)
            kc_lua_return_store(L, 3);
        ln->borrowed_store = false;
        return kc_lua_error(L, &err);
    }
    set_open(L, 7, true);
    return 1;
}

static int node_close(lua_State *L, int idx)
{
    lua_node *ln = luaL_checkudata(L, idx, NODE);
    if (!ln->n)
        return 0;
    kc_metrics_server_stop(ln->metrics);
    ln->metrics = NULL;
    kc_node_close(ln->n);
    ln->n = NULL;
    kc_policy_free(ln->policy);
    ln->policy = NULL;
    if (ln->borrowed_store) {
        lua_getfenv(L, idx);
        lua_rawgeti(L, -1, 1);
        kc_lua_return_store(L, lua_gettop(L));
        lua_pop(L, 2);
        ln->borrowed_store = false;
    }
    set_open(L, idx, false);
    return 0;
}

static int l_close(lua_State *L) { return node_close(L, 1); }

static int push_serde(lua_State *L, kc_kind kind, bool deser)
{
    lua_node *ln = check_node(L, 1);
    kc_lua_push_serializer(L, kc_node_serde(ln->n), kind, deser, 1);
    return 1;
}
static int l_key_serializer(lua_State *L) { return push_serde(L, KC_KIND_KEY, false); }
static int l_value_serializer(lua_State *L) { return push_serde(L, KC_KIND_VALUE, false); }
static int l_key_deserializer(lua_State *L) { return push_serde(L, KC_KIND_KEY, true); }
static int l_value_deserializer(lua_State *L) { return push_serde(L, KC_KIND_VALUE, true); }

static int l_node_id(lua_State *L)
{
    lua_pushstring(L, kc_node_id(check_node(L, 1)->n));
    return 1;
}

static void set_count(lua_State *L, const char *name, uint64_t v)
{
    lua_pushnumber(L, (lua_Number)v);
    lua_setfield(L, -2, name);
}

/* The table roots[root] (made on first use), left on the stack; roots at -1. */
static void root_table(lua_State *L, const char *root)
{
    lua_getfield(L, -1, root);
    if (lua_istable(L, -1))
        return;
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, root);
}

static void push_root_counters(void *ctx, const kc_root_counters *c, double unanswered_for)
{
    lua_State *L = ctx;
    root_table(L, c->root);
    const struct { const char *name; uint64_t v; } f[] = {
        {"requests_sent", c->requests_sent},         {"keys_received", c->keys_received},
        {"replies_refused", c->replies_refused},     {"requests_answered", c->requests_answered},
        {"replies_sent", c->replies_sent},           {"requests_not_held", c->requests_not_held},
        {"requests_refused", kc_root_refused_total(c)},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        set_count(L, f[i].name, f[i].v);
    lua_pushnumber(L, unanswered_for);
    lua_setfield(L, -2, "unanswered_seconds");
    lua_createtable(L, 0, KC_REFUSED_N);
    for (int i = 0; i < KC_REFUSED_N; i++)
        set_count(L, kc_refusal_names[i], c->refused[i]);
    lua_setfield(L, -2, "refused");
    /* latency = {count, sum, buckets = {{le, count}, ...}}, counts cumulative */
    lua_createtable(L, 0, 3);
    set_count(L, "count", c->latency.count);
    lua_pushnumber(L, c->latency.sum);
    lua_setfield(L, -2, "sum");
    lua_createtable(L, KC_HISTOGRAM_BUCKETS, 0);
    uint64_t cumulative = 0;
    for (int b = 0; b < KC_HISTOGRAM_BUCKETS; b++) {
        cumulative += c->latency.bucket[b];
        lua_createtable(L, 0, 2);
        lua_pushnumber(L, b < KC_HISTOGRAM_BUCKETS - 1 ? kc_histogram_bounds[b] : HUGE_VAL);
        lua_setfield(L, -2, "le");
        set_count(L, "count", cumulative);
        lua_rawseti(L, -2, b + 1);
    }
    lua_setfield(L, -2, "buckets");
    lua_setfield(L, -2, "latency");
    lua_pop(L, 1);
}

static void push_serde_counters(void *ctx, const kc_serde_root_stats *st)
{
    lua_State *L = ctx;
    root_table(L, st->root);
    set_count(L, "encrypted", st->count[KC_SERDE_ENCRYPTED]);
    set_count(L, "decrypted", st->count[KC_SERDE_DECRYPTED]);
    set_count(L, "held", st->count[KC_SERDE_HELD]);
    set_count(L, "released", st->count[KC_SERDE_RELEASED]);
    set_count(L, "expired", st->count[KC_SERDE_EXPIRED]);
    set_count(L, "producer_keys", st->producer_keys);
    set_count(L, "consumer_keys", st->consumer_keys);
    lua_createtable(L, 0, 3);
    set_count(L, "no_key", st->count[KC_SERDE_NO_KEY]);
    set_count(L, "invalid", st->count[KC_SERDE_INVALID]);
    set_count(L, "not_kafkacrypto", st->count[KC_SERDE_NOT_KAFKACRYPTO]);
    lua_setfield(L, -2, "undecryptable");
    lua_pop(L, 1);
}

static int l_stats(lua_State *L)
{
    kc_node_stats s;
    kc_node_get_stats(check_node(L, 1)->n, &s);
    lua_createtable(L, 0, 6);
    const struct { const char *name; uint64_t v; } f[] = {
        {"requests_sent", s.requests_sent},   {"replies_sent", s.replies_sent},
        {"replies_sent_again", s.replies_sent_again},
        {"keys_received", s.keys_received},   {"refused", s.refused},
        {"chains_adopted", s.chains_adopted}, {"list_entries_added", s.list_entries_added},
        {"key_indices_given_up", s.key_indices_given_up},
        {"key_indices_replaced", s.key_indices_replaced},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        lua_pushnumber(L, (lua_Number)f[i].v);
        lua_setfield(L, -2, f[i].name);
    }
    /* roots = {ROOT = {...}}: per root, what its messages and key exchange
     * did (README "Metrics") */
    lua_newtable(L);
    kc_node *n = check_node(L, 1)->n;
    kc_serde_foreach_root_stats(kc_node_serde(n), push_serde_counters, L);
    kc_node_foreach_root(n, push_root_counters, L);
    lua_setfield(L, -2, "roots");
    double left = kc_node_chain_expires_in(n, (double)time(NULL));
    lua_pushnumber(L, left);
    lua_setfield(L, -2, "chain_expires_in_seconds");
    return 1;
}

/* node:serve_metrics("HOST:PORT") -> port: the Prometheus page at
 * http://HOST:PORT/metrics until the node closes (kc_metrics.h). Once. */
static int l_serve_metrics(lua_State *L)
{
    lua_node *ln = check_node(L, 1);
    const char *listen = luaL_checkstring(L, 2);
    if (ln->metrics)
        return kc_lua_errorf(L, "serve_metrics: already serving on port %d",
                             kc_metrics_server_port(ln->metrics));
    kc_err err;
    if (kc_metrics_server_start(listen, kc_node_metrics_page, ln->n, &ln->metrics, &err) != KC_OK)
        return kc_lua_errorf(L, "%s", err.msg);
    lua_pushinteger(L, kc_metrics_server_port(ln->metrics));
    return 1;
}

/* node:metrics_port() -> the port serve_metrics listens on, or nil. */
static int l_metrics_port(lua_State *L)
{
    lua_node *ln = check_node(L, 1);
    if (!ln->metrics)
        return 0;
    lua_pushinteger(L, kc_metrics_server_port(ln->metrics));
    return 1;
}

/* node:metrics_page() -> the text served by serve_metrics. */
static int l_metrics_page(lua_State *L)
{
    kc_buf page = KC_BUF_INIT;
    kc_status st = kc_node_metrics_page(check_node(L, 1)->n, &page);
    if (st == KC_OK)
        lua_pushlstring(L, (const char *)page.data, page.len);
    kc_buf_free(&page);
    if (st != KC_OK)
        return kc_lua_errorf(L, "metrics: out of memory");
    return 1;
}

/* node:producer_keys() -> { {root = "r", key_index = "hex" or integer}, ... }:
 * the producer keys the node holds and serves (those of earlier runs, from
 * oldkeys, included), without their secrets. */
static int l_producer_keys(lua_State *L)
{
    kc_node *n = check_node(L, 1)->n;
    kc_buf plain = KC_BUF_INIT;
    kc_err err;
    kc_mp_doc doc;
    kc_status st = kc_serde_export_pgens(kc_node_serde(n), &plain, NULL, &err);
    if (st == KC_OK)
        st = kc_mp_decode(&doc, plain.data, plain.len, "producer keys", &err);
    if (st != KC_OK) {
        kc_buf_free(&plain);
        return kc_lua_error(L, &err);
    }
    /* export_pgens wrote {"pgens": [[root, keyidx, secret, birth], ...]} */
    const msgpack_object *list = &kc_mp_root(&doc)->via.map.ptr[0].val;
    lua_createtable(L, (int)list->via.array.size, 0);
    for (uint32_t i = 0; i < list->via.array.size; i++) {
        const msgpack_object *e = list->via.array.ptr[i].via.array.ptr;
        const uint8_t *p;
        size_t len;
        int64_t v;
        lua_createtable(L, 0, 2);
        if (kc_mp_bytes(&e[0], &p, &len)) {
            lua_pushlstring(L, (const char *)p, len);
            lua_setfield(L, -2, "root");
        }
        if (kc_mp_bytes(&e[1], &p, &len) && len <= KC_KEYIDX_MAX_BYTES) {
            char hex[2 * KC_KEYIDX_MAX_BYTES + 1];
            lua_pushstring(L, kc_hex(p, len, hex));
        } else if (kc_mp_int(&e[1], &v)) {
            lua_pushnumber(L, (lua_Number)v);
        } else {
            lua_pushnil(L);
        }
        lua_setfield(L, -2, "key_index");
        lua_rawseti(L, -2, (int)i + 1);
    }
    kc_mp_doc_free(&doc);
    kc_buf_free(&plain); /* wipes the secrets */
    return 1;
}

static int l_tostring(lua_State *L)
{
    lua_node *ln = luaL_checkudata(L, 1, NODE);
    if (ln->n)
        lua_pushfstring(L, "kafkacrypto node %s", kc_node_id(ln->n));
    else
        lua_pushliteral(L, "kafkacrypto node (closed)");
    return 1;
}

/* core.provision{ node_id=, role=, rot_password=, provisioning_password=,
 *                 topics={...}, pathlen=, lifetime=, dir=,
 *                 pkcs11=URI, pkcs11_create=bool } */
static int l_provision(lua_State *L)
{
    check_table_arg(L, 1, "provision", "a table {node_id=, role=, rot_password=, ...}");
    lua_settop(L, 1);
    kc_provision_request r;
    memset(&r, 0, sizeof r);
    const char *const names[] = {"node_id", "role", "rot_password", "provisioning_password", "dir"};
    const char *v[5];
    for (int i = 0; i < 5; i++) {
        v[i] = string_field(L, 1, "provision", names[i], i < 4);
        if (i < 4 && !*v[i])
            return kc_lua_errorf(L, "provision: %s must not be empty", names[i]);
    }
    r.node_id = v[0];
    if (kc_role_parse(v[1], &r.role) != KC_OK)
        return kc_lua_errorf(L, "provision: role '%s': expected controller, producer, consumer, "
                             "consumer-limited, prodcon or prodcon-limited", v[1]);
    r.rot_password = v[2];
    r.prov_password = v[3];
    r.dir = v[4];
    r.pkcs11 = string_field(L, 1, "provision", "pkcs11", false);
    lua_getfield(L, 1, "pkcs11_create");
    r.pkcs11_create = lua_toboolean(L, -1);
    lua_pop(L, 1);
    r.pathlen = (int)opt_number_field(L, 1, "provision", "pathlen", 1);
    r.lifetime = opt_number_field(L, 1, "provision", "lifetime", 0);
    lua_getfield(L, 1, "topics");
    int t = lua_gettop(L);
    size_t n = lua_istable(L, t) ? lua_objlen(L, t) : 0;
    const char **topics = n ? lua_newuserdata(L, n * sizeof *topics) : NULL;
    for (size_t i = 0; i < n; i++) { /* the table keeps the strings alive */
        lua_rawgeti(L, t, (int)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            return kc_lua_errorf(L, "provision: topics[%d]: expected a string", (int)i + 1);
        topics[i] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    r.topics = topics;
    r.ntopics = n;
    kc_err err;
    if (kc_provision_node(&r, &err) != KC_OK)
        return kc_lua_error(L, &err);
    return 0;
}

void kc_lua_node_close_all(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, REG_NODES);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    int t = lua_gettop(L);
    lua_newtable(L); /* collect first: closing edits the table */
    int list = lua_gettop(L), k = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, list, ++k);
    }
    for (int i = 1; i <= k; i++) {
        lua_rawgeti(L, list, i);
        node_close(L, lua_gettop(L));
        lua_pop(L, 1);
    }
    lua_settop(L, t - 1);
}

static int l_gc(lua_State *L) { return node_close(L, 1); }

void kc_lua_open_node(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"key_serializer", l_key_serializer},     {"value_serializer", l_value_serializer},
        {"key_deserializer", l_key_deserializer}, {"value_deserializer", l_value_deserializer},
        {"node_id", l_node_id},                   {"stats", l_stats},
        {"serve_metrics", l_serve_metrics},       {"metrics_page", l_metrics_page},
        {"metrics_port", l_metrics_port},
        {"producer_keys", l_producer_keys},
        {"close", l_close},                       {NULL, NULL},
    };
    static const luaL_Reg meta[] = {{"__gc", l_gc}, {"__tostring", l_tostring}, {NULL, NULL}};
    kc_lua_class_new(L, NODE, methods, meta);
    lua_pushcfunction(L, l_node_open);
    lua_setfield(L, -2, "node_open");
    lua_pushcfunction(L, l_provision);
    lua_setfield(L, -2, "provision");
}
