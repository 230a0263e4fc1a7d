/* Lua binding of kc_admin: core.admin(config) with :create_topics,
 * :metadata and :close; core.show_kafka_properties(). Times in seconds. */
#include <lauxlib.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <stdio.h>

#include "kc_admin.h"
#include "kc_lua.h"
#include "kc_lua_class.h"

static const char ADMIN[] = "kafkacrypto.core.admin";

typedef struct lua_admin { kc_admin *a; } lua_admin;

static kc_admin *check_admin(lua_State *L)
{
    lua_admin *la = luaL_checkudata(L, 1, ADMIN);
    if (!la->a)
        kc_lua_errorf(L, "admin client is closed");
    return la->a;
}

static int l_admin(lua_State *L)
{
    kc_kafka_config conf;
    kc_err err;
    kc_lua_kafka_config(L, 1, KC_KAFKA_PRODUCER, &conf);
    lua_admin *la = kc_lua_class_push(L, ADMIN, sizeof *la);
    kc_status st = kc_admin_new(&la->a, &conf, &err);
    kc_kafka_config_clear(&conf);
    if (st != KC_OK)
        return kc_lua_error(L, &err);
    return 1;
}

/* a:create_topics({{name=, partitions=, replication=, config={k=v}}, ...},
 *                 exist_ok, timeout_s = 30) */
static int l_create_topics(lua_State *L)
{
    kc_admin *a = check_admin(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    int exist_ok = lua_toboolean(L, 3);
    int timeout = kc_lua_opt_ms(L, 4, 30000);
    lua_settop(L, 4);
    size_t n = lua_objlen(L, 2);
    kc_new_topic *ts = lua_newuserdata(L, (n ? n : 1) * sizeof *ts);
    lua_newtable(L);   /* keeps config arrays alive */
    int keep = lua_gettop(L);
    for (size_t i = 0; i < n; i++) {
        int e = (int)i + 1;
        lua_rawgeti(L, 2, e);
        if (!lua_istable(L, -1))
            return kc_lua_errorf(L, "create_topics: entry %d: expected {name=, partitions=}", e);
        lua_getfield(L, -1, "name");
        if (lua_type(L, -1) != LUA_TSTRING)
            return kc_lua_errorf(L, "create_topics: entry %d: name: expected a string", e);
        ts[i].name = lua_tostring(L, -1);   /* alive through the list */
        lua_pop(L, 1);
        lua_getfield(L, -1, "partitions");
        lua_getfield(L, -2, "replication");
        double parts = lua_isnil(L, -2) ? 1 : lua_tonumber(L, -2);
        double repl = lua_isnil(L, -1) ? -1 : lua_tonumber(L, -1);
        if (parts < 1 || parts != floor(parts) || parts > 1e6)
            return kc_lua_errorf(L, "create_topics: %s: partitions: expected a number >= 1",
                                 ts[i].name);
        if ((repl < 1 && repl != -1) || repl != floor(repl) || repl > 1e3)
            return kc_lua_errorf(L, "create_topics: %s: replication: expected a number >= 1",
                                 ts[i].name);
        ts[i].partitions = (int)parts;
        ts[i].replication = (int)repl;
        lua_pop(L, 2);
        /* config {name = value}: copied as text into a flat list kept in
         * `keep`, which holds the strings the C pointers refer to. */
        lua_getfield(L, -1, "config");
        if (!lua_isnil(L, -1) && !lua_istable(L, -1))
            return kc_lua_errorf(L, "create_topics: %s: config: expected a table", ts[i].name);
        lua_newtable(L);
        int flat = lua_gettop(L), k = 0;
        if (lua_istable(L, flat - 1)) {
            lua_pushnil(L);
            while (lua_next(L, flat - 1)) {
                if (lua_type(L, -2) != LUA_TSTRING ||
                    (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER))
                    return kc_lua_errorf(L, "create_topics: %s: config: expected names and "
                                         "values", ts[i].name);
                lua_pushvalue(L, -2);
                lua_rawseti(L, flat, ++k);
                lua_pushstring(L, lua_tostring(L, -1));   /* a copy: numbers become text */
                lua_rawseti(L, flat, ++k);
                lua_pop(L, 1);
            }
        }
        const char **cfg = lua_newuserdata(L, (k ? (size_t)k : 1) * sizeof *cfg);
        for (int j = 0; j < k; j++) {
            lua_rawgeti(L, flat, j + 1);
            cfg[j] = lua_tostring(L, -1);
            lua_pop(L, 1);
        }
        lua_rawseti(L, keep, 2 * e);
        lua_rawseti(L, keep, 2 * e - 1);
        lua_pop(L, 1);
        ts[i].configs = cfg;
        ts[i].nconfigs = (size_t)k / 2;
        lua_pop(L, 1);
    }
    kc_err err;
    if (kc_admin_create_topics(a, ts, n, exist_ok, timeout, &err) != KC_OK)
        return kc_lua_error(L, &err);
    return 0;
}

static void push_ids(lua_State *L, const int32_t *ids, int n, const char *field)
{
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushinteger(L, ids[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, field);
}

/* a:metadata([topic[, timeout_s = 10]]) -> {brokers = {{id, host, port}},
 * topics = {{name, error, partitions = {{id, leader, replicas, isrs, error}}}},
 * controller_id, orig_broker_id, orig_broker_name} */
static int l_metadata(lua_State *L)
{
    kc_admin *a = check_admin(L);
    const char *topic = luaL_optstring(L, 2, NULL);
    const struct rd_kafka_metadata *md;
    int controller;
    kc_err err;
    if (kc_admin_metadata(a, topic, kc_lua_opt_ms(L, 3, 10000), &md, &controller, &err) != KC_OK)
        return kc_lua_error(L, &err);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, controller);
    lua_setfield(L, -2, "controller_id");
    lua_pushinteger(L, md->orig_broker_id);
    lua_setfield(L, -2, "orig_broker_id");
    lua_pushstring(L, md->orig_broker_name ? md->orig_broker_name : "");
    lua_setfield(L, -2, "orig_broker_name");
    lua_createtable(L, md->broker_cnt, 0);
    for (int i = 0; i < md->broker_cnt; i++) {
        lua_createtable(L, 0, 3);
        lua_pushinteger(L, md->brokers[i].id);
        lua_setfield(L, -2, "id");
        lua_pushstring(L, md->brokers[i].host);
        lua_setfield(L, -2, "host");
        lua_pushinteger(L, md->brokers[i].port);
        lua_setfield(L, -2, "port");
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "brokers");
    lua_createtable(L, md->topic_cnt, 0);
    for (int i = 0; i < md->topic_cnt; i++) {
        const rd_kafka_metadata_topic_t *t = &md->topics[i];
        lua_createtable(L, 0, 3);
        lua_pushstring(L, t->topic);
        lua_setfield(L, -2, "name");
        if (t->err) {
            lua_pushstring(L, rd_kafka_err2str(t->err));
            lua_setfield(L, -2, "error");
        }
        lua_createtable(L, t->partition_cnt, 0);
        for (int j = 0; j < t->partition_cnt; j++) {
            const rd_kafka_metadata_partition_t *p = &t->partitions[j];
            lua_createtable(L, 0, 5);
            lua_pushinteger(L, p->id);
            lua_setfield(L, -2, "id");
            lua_pushinteger(L, p->leader);
            lua_setfield(L, -2, "leader");
            push_ids(L, p->replicas, p->replica_cnt, "replicas");
            push_ids(L, p->isrs, p->isr_cnt, "isrs");
            if (p->err) {
                lua_pushstring(L, rd_kafka_err2str(p->err));
                lua_setfield(L, -2, "error");
            }
            lua_rawseti(L, -2, j + 1);
        }
        lua_setfield(L, -2, "partitions");
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "topics");
    kc_admin_metadata_free(md);
    return 1;
}

static int l_admin_close(lua_State *L)
{
    lua_admin *la = luaL_checkudata(L, 1, ADMIN);
    kc_admin_free(la->a);
    la->a = NULL;
    return 0;
}

static int l_show_properties(lua_State *L)
{
    fflush(stdout);
    kc_admin_show_properties(stdout);
    fflush(stdout);
    return 0;
}

void kc_lua_open_admin(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"create_topics", l_create_topics}, {"metadata", l_metadata}, {"close", l_admin_close},
        {NULL, NULL},
    };
    static const luaL_Reg meta[] = {{"__gc", l_admin_close}, {NULL, NULL}};
    kc_lua_class_new(L, ADMIN, methods, meta);
    lua_pushcfunction(L, l_admin);
    lua_setfield(L, -2, "admin");
    lua_pushcfunction(L, l_show_properties);
    lua_setfield(L, -2, "show_kafka_properties");
}
