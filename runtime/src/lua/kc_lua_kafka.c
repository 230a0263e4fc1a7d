/* Lua binding of kc_kafka and kc_broker: raw producer, consumer and broker
 * handles. lua/kafkacrypto/kafka.lua builds the user-facing objects (with
 * serializers) on top. Times are in seconds, as Lua users expect. */
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_broker.h"
#include "kc_clock.h"
#include "kc_kafka.h"
#include "kc_lua.h"
#include "kc_lua_class.h"
#include "kc_message.h"

static const char PRODUCER[] = "kafkacrypto.core.producer";
static const char CONSUMER[] = "kafkacrypto.core.consumer";
static const char BROKER[] = "kafkacrypto.core.broker";
static const char REG_OPEN[] = "kafkacrypto.open_clients";

typedef struct lua_producer { kc_producer *p; } lua_producer;
typedef struct lua_consumer {
    kc_consumer *c;
    kc_serde_pool *pool;   /* values deserialized on worker threads (c:use_pool) */
    kc_kind pool_kind;     /* what the pool deserializes: values */
    kc_record *pending;    /* polled while the pool was full */
} lua_consumer;
typedef struct lua_broker { kc_broker *b; int embedded; } lua_broker;

int kc_lua_opt_ms(lua_State *L, int idx, int dflt)
{
    if (lua_isnoneornil(L, idx))
        return dflt;
    double s = luaL_checknumber(L, idx);
    if (s < 0)
        return -1;
    return s * 1000 > 2e9 ? 2000000000 : (int)ceil(s * 1000);
}

/* ---- open clients (closed before os.exit) ---------------------------------- */

static void track(lua_State *L, int idx, int open)
{
    kc_lua_mark_open(L, REG_OPEN, idx, open);
}

/* ---- configuration from a Lua table ------------------------------------------ */

/* Text of a Lua option value; lists (bootstrap servers) are joined by ','. */
static const char *option_text(lua_State *L, int idx, const char *name)
{
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        return lua_tostring(L, idx);
    case LUA_TBOOLEAN:   /* stored as text: the caller reads the slot back */
        lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false");
        lua_replace(L, idx);
        return lua_tostring(L, idx);
    case LUA_TNUMBER: {
        double v = lua_tonumber(L, idx);
        char buf[64];
        if (v == floor(v) && fabs(v) < 1e15)
            snprintf(buf, sizeof buf, "%lld", (long long)v);
        else
            snprintf(buf, sizeof buf, "%.17g", v);
        lua_pushstring(L, buf);
        lua_replace(L, idx);
        return lua_tostring(L, idx);
    }
    case LUA_TTABLE: {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (int i = 1;; i++) {
            lua_rawgeti(L, idx, i);
            if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                break;
            }
            if (!lua_isstring(L, -1))
                kc_lua_errorf(L, "kafka option %s: expected a list of strings", name);
            if (i > 1)
                luaL_addchar(&b, ',');
            luaL_addvalue(&b);
        }
        luaL_pushresult(&b);
        lua_replace(L, idx);
        return lua_tostring(L, idx);
    }
    default:
        kc_lua_errorf(L, "kafka option %s: expected a string, number, boolean or list, got %s",
                   name, luaL_typename(L, idx));
        return NULL;
    }
}

/* Settings' options first, then the table's (which win). Values are
 * converted (and checked) before any C memory is held, so a Lua error
 * cannot leak the configuration. */
void kc_lua_kafka_config(lua_State *L, int idx, kc_kafka_use use, kc_kafka_config *conf)
{
    lua_newtable(L);   /* librdkafka name -> the table's name for it */
    int seen = lua_gettop(L);
    lua_newtable(L);   /* name -> text */
    int texts = lua_gettop(L);
    if (!lua_isnoneornil(L, idx)) {
        luaL_checktype(L, idx, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            if (lua_type(L, -2) != LUA_TSTRING)
                kc_lua_errorf(L, "kafka config: expected option names as keys, got a %s key",
                           luaL_typename(L, -2));
            /* group_id and group.id in one table: which wins would be
             * left to the table's order */
            const char *name = lua_tostring(L, -2), *rdname = name;
            kc_kafka_option_kind(name, use, &rdname);
            if (!rdname)   /* a local or ignored kafka-python name */
                rdname = name;
            lua_getfield(L, seen, rdname);
            if (!lua_isnil(L, -1))
                kc_lua_errorf(L, "kafka config: %s and %s both set %s: give one",
                              lua_tostring(L, -1), name, rdname);
            lua_pop(L, 1);
            lua_pushstring(L, name);
            lua_setfield(L, seen, rdname);
            option_text(L, lua_gettop(L), lua_tostring(L, -2));
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, texts);
        }
    }
    kc_err err;
    kc_status st;
    kc_kafka_config_init(conf);
    st = kc_settings_apply_kafka(kc_lua_settings(L), use, conf, &err);
    lua_pushnil(L);
    while (st == KC_OK && lua_next(L, texts)) {
        st = kc_kafka_config_set(conf, use, lua_tostring(L, -2), lua_tostring(L, -1),
                                 "kafka config", &err);
        lua_pop(L, 1);
    }
    lua_settop(L, seen - 1);
    if (st != KC_OK) {
        kc_kafka_config_clear(conf);
        kc_lua_error(L, &err);
    }
}

/* ---- producer ------------------------------------------------------------------- */

static lua_producer *check_producer(lua_State *L)
{
    lua_producer *lp = luaL_checkudata(L, 1, PRODUCER);
    if (!lp->p)
        kc_lua_errorf(L, "producer is closed");
    return lp;
}

/* core.producer(config, keep_reports) */
static int l_producer(lua_State *L)
{
    kc_kafka_config conf;
    kc_err err;
    kc_lua_kafka_config(L, 1, KC_KAFKA_PRODUCER, &conf);
    lua_producer *lp = kc_lua_class_push(L, PRODUCER, sizeof *lp);
    kc_status st = kc_producer_new(&lp->p, &conf, lua_toboolean(L, 2), &err);
    kc_kafka_config_clear(&conf);
    if (st != KC_OK)
        return kc_lua_error(L, &err);
    track(L, -1, 1);
    return 1;
}

static const void *opt_bytes(lua_State *L, int idx, size_t *len)
{
    *len = 0;
    if (lua_isnil(L, idx))
        return NULL;
    return luaL_checklstring(L, idx, len);
}

/* p:send(topic, key, value[, partition[, headers[, timestamp_ms[,
 * serializer]]]]) -> seq; with a kafkacrypto value serializer, value is
 * what it takes (bytes or a message object) */
static int l_send(lua_State *L)
{
    lua_producer *lp = check_producer(L);
    lua_settop(L, 8);   /* the headers' scratch goes above the arguments */
    const char *topic = luaL_checkstring(L, 2);
    size_t klen, vlen;
    const void *key = opt_bytes(L, 3, &klen);
    const void *value = lua_isnoneornil(L, 8) ? opt_bytes(L, 4, &vlen) : NULL;
    lua_Integer part = luaL_optinteger(L, 5, KC_PARTITION_ANY);
    if (part < KC_PARTITION_ANY || part > INT32_MAX)
        return kc_lua_errorf(L, "send: partition: expected a number >= 0");
    kc_send_extra extra = {0};
    if (!lua_isnoneornil(L, 6)) {
        if (!lua_istable(L, 6))
            return kc_lua_errorf(L, "send: headers: expected a list of {name, value}");
        extra.nheaders = lua_objlen(L, 6);
        kc_header *h = lua_newuserdata(L, (extra.nheaders ? extra.nheaders : 1) * sizeof *h);
        for (size_t i = 0; i < extra.nheaders; i++) {
            lua_rawgeti(L, 6, (int)i + 1);
            if (!lua_istable(L, -1))
                return kc_lua_errorf(L, "send: header %d: expected {name, value}", (int)i + 1);
            lua_rawgeti(L, -1, 1);
            lua_rawgeti(L, -2, 2);
            if (lua_type(L, -2) != LUA_TSTRING)
                return kc_lua_errorf(L, "send: header %d: name: expected a string", (int)i + 1);
            if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
                return kc_lua_errorf(L, "send: header %d: value: expected a string or nil",
                                     (int)i + 1);
            /* the strings stay alive through the headers table */
            h[i].name = lua_tostring(L, -2);
            h[i].value = lua_isnil(L, -1) ? NULL : lua_tolstring(L, -1, &h[i].value_len);
            if (!h[i].value)
                h[i].value_len = 0;
            lua_pop(L, 3);
        }
        extra.headers = h;
    }
    if (!lua_isnoneornil(L, 7)) {
        double ts = luaL_checknumber(L, 7);
        if (ts < 0 || ts != floor(ts) || ts > 9e15)
            return kc_lua_errorf(L, "send: timestamp: expected ms since 1970, a whole number >= 0");
        extra.timestamp_ms = (int64_t)ts;
    }
    /* a kafkacrypto value serializer as 8th argument: the value is
     * encrypted straight into the send, no Lua string in between */
    if (!lua_isnoneornil(L, 8))
        value = kc_lua_serialize_arg(L, 8, topic, 4, &vlen);
    uint64_t seq;
    kc_err err;
    if (kc_producer_send_ex(lp->p, topic, (int32_t)part, key, klen, value, vlen, &extra, &seq,
                            &err) != KC_OK)
        return kc_lua_error(L, &err);
    lua_pushnumber(L, (lua_Number)seq);
    return 1;
}

static int l_producer_poll(lua_State *L)
{
    kc_producer_poll(check_producer(L)->p, kc_lua_opt_ms(L, 2, 0));
    return 0;
}

/* p:flush(timeout_s = no limit) -> messages still queued. Failures come
 * as delivery reports (the Lua producer keeps them). */
static int l_flush(lua_State *L)
{
    lua_producer *lp = check_producer(L);
    kc_producer_flush(lp->p, kc_lua_opt_ms(L, 2, -1), NULL);
    lua_pushinteger(L, kc_producer_queued(lp->p));
    return 1;
}

/* p:queued() -> messages not yet delivered or failed */
static int l_queued(lua_State *L)
{
    lua_pushinteger(L, kc_producer_queued(check_producer(L)->p));
    return 1;
}

/* p:statistics() -> librdkafka's latest statistics JSON, or nil */
static int l_statistics(lua_State *L)
{
    const char *json = kc_producer_statistics(check_producer(L)->p);
    if (json)
        lua_pushstring(L, json);
    else
        lua_pushnil(L);
    return 1;
}

/* p:deliveries() -> array of {seq, topic, partition, offset, error} */
/* p:deliveries([failures_only]) -> the delivery reports since the last
 * call, {{seq, topic, partition, offset, error}, ...}, or nil when there
 * are none. failures_only skips successful ones (the usual case of a
 * producer without callbacks: no table per message sent). */
static int l_deliveries(lua_State *L)
{
    lua_producer *lp = check_producer(L);
    bool failures_only = lua_toboolean(L, 2);
    kc_delivery d;
    int i = 0;
    while (kc_producer_next_delivery(lp->p, &d)) {
        if (failures_only && d.status == KC_OK) {
            kc_delivery_clear(&d);
            continue;
        }
        if (i++ == 0)
            lua_newtable(L);
        lua_createtable(L, 0, 5);
        lua_pushnumber(L, (lua_Number)d.seq);
        lua_setfield(L, -2, "seq");
        lua_pushstring(L, d.topic ? d.topic : "");
        lua_setfield(L, -2, "topic");
        lua_pushinteger(L, d.partition);
        lua_setfield(L, -2, "partition");
        lua_pushnumber(L, (lua_Number)d.offset);
        lua_setfield(L, -2, "offset");
        if (d.status != KC_OK) {
            lua_pushstring(L, d.error);
            lua_setfield(L, -2, "error");
        }
        lua_rawseti(L, -2, i);
        kc_delivery_clear(&d);
    }
    if (i == 0)
        lua_pushnil(L);
    return 1;
}

static int l_stats(lua_State *L)
{
    kc_producer_stats s;
    kc_producer_get_stats(check_producer(L)->p, &s);
    lua_createtable(L, 0, 4);
    lua_pushnumber(L, (lua_Number)s.sent);
    lua_setfield(L, -2, "sent");
    lua_pushnumber(L, (lua_Number)s.delivered);
    lua_setfield(L, -2, "delivered");
    lua_pushnumber(L, (lua_Number)s.failed);
    lua_setfield(L, -2, "failed");
    lua_pushnumber(L, (lua_Number)s.rejected);
    lua_setfield(L, -2, "rejected");
    if (s.last_error[0]) {
        lua_pushstring(L, s.last_error);
        lua_setfield(L, -2, "last_error");
    }
    return 1;
}

static int l_producer_close(lua_State *L)
{
    lua_producer *lp = luaL_checkudata(L, 1, PRODUCER);
    if (lp->p) {
        kc_producer_close(lp->p, kc_lua_opt_ms(L, 2, -1));
        lp->p = NULL;
        track(L, 1, 0);
    }
    return 0;
}

static int l_producer_gc(lua_State *L)
{
    lua_producer *lp = luaL_checkudata(L, 1, PRODUCER);
    kc_producer_close(lp->p, 10000);
    lp->p = NULL;
    return 0;
}

/* ---- consumer ------------------------------------------------------------------- */

static lua_consumer *check_consumer(lua_State *L)
{
    lua_consumer *lc = luaL_checkudata(L, 1, CONSUMER);
    if (!lc->c)
        kc_lua_errorf(L, "consumer is closed");
    return lc;
}

static int l_consumer(lua_State *L)
{
    kc_kafka_config conf;
    kc_err err;
    kc_lua_kafka_config(L, 1, KC_KAFKA_CONSUMER, &conf);
    lua_consumer *lc = kc_lua_class_push(L, CONSUMER, sizeof *lc);
    kc_status st = kc_consumer_new(&lc->c, &conf, &err);
    kc_kafka_config_clear(&conf);
    if (st != KC_OK)
        return kc_lua_error(L, &err);
    track(L, -1, 1);
    return 1;
}

/* c:subscribe{topic, "^regex", ...} */
static int l_subscribe(lua_State *L)
{
    lua_consumer *lc = check_consumer(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    size_t n = lua_objlen(L, 2);
    const char **topics = lua_newuserdata(L, (n ? n : 1) * sizeof *topics);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 2, (int)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            return kc_lua_errorf(L, "subscribe: entry %d: expected a topic name", (int)i + 1);
        topics[i] = lua_tostring(L, -1);   /* kept alive by the table */
        lua_pop(L, 1);
    }
    kc_err err;
    if (kc_consumer_subscribe(lc->c, topics, n, &err) != KC_OK)
        return kc_lua_error(L, &err);
    return 0;
}

/* c:commit(): synchronous commit of what was polled */
static int l_commit(lua_State *L)
{
    lua_consumer *lc = check_consumer(L);
    kc_err err;
    if (kc_consumer_commit(lc->c, &err) != KC_OK)
        return kc_lua_error(L, &err);
    return 0;
}

static int64_t check_offset(lua_State *L, int idx, const char *what, int entry)
{
    if (lua_isnil(L, idx))
        return KC_OFFSET_STORED;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        double v = lua_tonumber(L, idx);
        if (v >= 0 && v == floor(v))
            return (int64_t)v;
    } else if (lua_type(L, idx) == LUA_TSTRING) {
        const char *s = lua_tostring(L, idx);
        if (!strcmp(s, "beginning"))
            return KC_OFFSET_BEGINNING;
        if (!strcmp(s, "end"))
            return KC_OFFSET_END;
        if (!strcmp(s, "stored"))
            return KC_OFFSET_STORED;
    }
    kc_lua_errorf(L, "%s: entry %d: offset: expected a number >= 0, \"beginning\", \"end\" "
                  "or \"stored\"", what, entry);
    return 0;
}

/* The list of {topic=, partition=, offset=} at idx, for `what`. Topic
 * strings stay alive through the list. */
static kc_topic_partition *check_tps(lua_State *L, int idx, const char *what, size_t *count)
{
    /* Keeps the list's memory above every argument (so optional ones after
     * it are still found at their index). */
    if (lua_gettop(L) < 3)
        lua_settop(L, 3);
    luaL_checktype(L, idx, LUA_TTABLE);
    size_t n = lua_objlen(L, idx);
    kc_topic_partition *tps = lua_newuserdata(L, (n ? n : 1) * sizeof *tps);
    for (size_t i = 0; i < n; i++) {
        int entry = (int)i + 1;
        lua_rawgeti(L, idx, entry);
        if (!lua_istable(L, -1))
            kc_lua_errorf(L, "%s: entry %d: expected {topic=..., partition=...}", what, entry);
        lua_getfield(L, -1, "topic");
        lua_getfield(L, -2, "partition");
        lua_getfield(L, -3, "offset");
        if (lua_type(L, -3) != LUA_TSTRING)
            kc_lua_errorf(L, "%s: entry %d: topic: expected a string", what, entry);
        double part = lua_isnil(L, -2) ? 0 : lua_tonumber(L, -2);
        if ((!lua_isnil(L, -2) && lua_type(L, -2) != LUA_TNUMBER) || part < 0 ||
            part != floor(part) || part > INT32_MAX)
            kc_lua_errorf(L, "%s: entry %d: partition: expected a number >= 0", what, entry);
        tps[i].topic = lua_tostring(L, -3);
        tps[i].partition = (int32_t)part;
        tps[i].offset = check_offset(L, -1, what, entry);
        lua_pop(L, 4);
    }
    *count = n;
    return tps;
}

/* Pushes a list of {topic, partition, offset}; offset a number, "beginning",
 * "end", or nil when unknown. */
static void push_tps(lua_State *L, const kc_topic_partition *tps, size_t n)
{
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 3);
        lua_pushstring(L, tps[i].topic);
        lua_setfield(L, -2, "topic");
        lua_pushinteger(L, tps[i].partition);
        lua_setfield(L, -2, "partition");
        if (tps[i].offset >= 0)
            lua_pushnumber(L, (lua_Number)tps[i].offset);
        else if (tps[i].offset == KC_OFFSET_BEGINNING)
            lua_pushliteral(L, "beginning");
        else if (tps[i].offset == KC_OFFSET_END)
            lua_pushliteral(L, "end");
        else
            lua_pushnil(L);
        lua_setfield(L, -2, "offset");
        lua_rawseti(L, -2, (int)i + 1);
    }
}

/* c:assign{{topic=, partition=, offset=}, ...} */
static int l_assign(lua_State *L)
{
    lua_consumer *lc = check_consumer(L);
    size_t n;
    kc_topic_partition *tps = check_tps(L, 2, "assign", &n);
    kc_err err;
    if (kc_consumer_assign(lc->c, tps, n, &err) != KC_OK)
        return kc_lua_error(L, &err);
    return 0;
}

/* c:commit_offsets(list, async) */
static int l_commit_offsets(lua_State *L)
{
    lua_consumer *lc = check_consumer(L);
    size_t n;
    kc_topic_partition *tps = check_tps(L, 2, "commit", &n);
    kc_err err;
    if (kc_consumer_commit_offsets(lc->c, tps, n, lua_toboolean(L, 3), &err) != KC_OK)
        return kc_lua_error(L, &err);
    return 0;
}

/* c:seek(list, timeout_s = 10) */
static int l_seek(lua_State *L)
{
    lua_consumer *lc = check_consumer(L);
    size_t n;
    kc_topic_partition *tps = check_tps(L, 2, "seek", &n);
    kc_err err;
    if (kc_consumer_seek(lc->c, tps, n, kc_lua_opt_ms(L, 3, 10000), &err) != KC_OK)
        return kc_lua_error(L, &err);
    return 0;
}

static int pause_resume(lua_State *L, int pause)
{
    lua_consumer *lc = check_consumer(L);
    size_t n;
    kc_topic_partition *tps = check_tps(L, 2, pause ? "pause" : "resume", &n);
    kc_err err;
    if (kc_consumer_pause(lc->c, tps, n, pause, &err) != KC_OK)
        return kc_lua_error(L, &err);
    return 0;
}

static int l_pause(lua_State *L) { return pause_resume(L, 1); }
static int l_resume(lua_State *L) { return pause_resume(L, 0); }

/* c:position(list) / c:committed(list, timeout_s = 10) / c:offsets_for_times(list
 * with offset = ms, timeout_s = 10) -> list with offsets filled in */
static int tps_query(lua_State *L, const char *what)
{
    lua_consumer *lc = check_consumer(L);
    size_t n;
    kc_topic_partition *tps = check_tps(L, 2, what, &n);
    kc_err err;
    kc_status st = !strcmp(what, "position")
                       ? kc_consumer_position(lc->c, tps, n, &err)
                   : !strcmp(what, "committed")
                       ? kc_consumer_committed(lc->c, tps, n, kc_lua_opt_ms(L, 3, 10000), &err)
                       : kc_consumer_offsets_for_times(lc->c, tps, n, kc_lua_opt_ms(L, 3, 10000), &err);
    if (st != KC_OK)
        return kc_lua_error(L, &err);
    push_tps(L, tps, n);
    return 1;
}

static int l_position(lua_State *L) { return tps_query(L, "position"); }
static int l_committed(lua_State *L) { return tps_query(L, "committed"); }
static int l_offsets_for_times(lua_State *L) { return tps_query(L, "offsets for times"); }

static int l_assignment(lua_State *L)
{
    lua_consumer *lc = check_consumer(L);
    kc_topic_partition *tps;
    size_t n;
    kc_err err;
    if (kc_consumer_assignment(lc->c, &tps, &n, &err) != KC_OK)
        return kc_lua_error(L, &err);
    push_tps(L, tps, n);
    kc_topic_partitions_free(tps, n);
    return 1;
}

/* c:watermarks(topic, partition, timeout_s = 10) -> low, high */
static int l_watermarks(lua_State *L)
{
    lua_consumer *lc = check_consumer(L);
    const char *topic = luaL_checkstring(L, 2);
    lua_Integer part = luaL_checkinteger(L, 3);
    int64_t lo, hi;
    kc_err err;
    if (part < 0 || part > INT32_MAX)
        return kc_lua_errorf(L, "watermarks: partition: expected a number >= 0");
    if (kc_consumer_watermarks(lc->c, topic, (int32_t)part, kc_lua_opt_ms(L, 4, 10000), &lo, &hi,
                               &err) != KC_OK)
        return kc_lua_error(L, &err);
    lua_pushnumber(L, (lua_Number)lo);
    lua_pushnumber(L, (lua_Number)hi);
    return 2;
}

/* c:partition_count(topic, timeout_s = 5) -> n, 0 if the topic does not exist */
static int l_partition_count(lua_State *L)
{
    lua_consumer *lc = check_consumer(L);
    const char *topic = luaL_checkstring(L, 2);
    int count;
    kc_err err;
    if (kc_consumer_partition_count(lc->c, topic, kc_lua_opt_ms(L, 3, 5000), &count, &err) != KC_OK)
        return kc_lua_error(L, &err);
    lua_pushinteger(L, count);
    return 1;
}

static void set_bytes(lua_State *L, const char *field, const uint8_t *p, size_t n)
{
    if (!p)
        return;   /* Kafka null stays nil */
    lua_pushlstring(L, (const char *)p, n);
    lua_setfield(L, -2, field);
}

/* The record's fields except the value into a new table; for an
 * end-of-partition event {topic, partition, offset, eof = true}. */
static void push_record(lua_State *L, const kc_record *m)
{
    lua_createtable(L, 0, 9);
    lua_pushstring(L, m->topic);
    lua_setfield(L, -2, "topic");
    lua_pushinteger(L, m->partition);
    lua_setfield(L, -2, "partition");
    lua_pushnumber(L, (lua_Number)m->offset);
    lua_setfield(L, -2, "offset");
    if (m->eof) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "eof");
        return;
    }
    lua_pushnumber(L, (lua_Number)m->timestamp_ms);
    lua_setfield(L, -2, "timestamp");
    if (m->timestamp_type != KC_TS_NONE) {
        lua_pushstring(L, m->timestamp_type == KC_TS_CREATE ? "create" : "log_append");
        lua_setfield(L, -2, "timestamp_type");
    }
    set_bytes(L, "key", m->key, m->key_len);
    if (m->broker_id >= 0) {
        lua_pushinteger(L, m->broker_id);
        lua_setfield(L, -2, "broker");
    }
    lua_createtable(L, (int)m->nheaders, 0);
    for (size_t i = 0; i < m->nheaders; i++) {
        lua_createtable(L, 2, 0);
        lua_pushstring(L, m->headers[i].name);
        lua_rawseti(L, -2, 1);
        if (m->headers[i].value) {
            lua_pushlstring(L, m->headers[i].value, m->headers[i].value_len);
            lua_rawseti(L, -2, 2);
        }
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "headers");
}

/* True if the skip function at skip_idx (nil: none) wants m dropped
 * before it is deserialized: kafka.lua's filter of key-exchange topics on
 * a pattern subscription. m is freed if the function raises. */
static bool skipped(lua_State *L, int skip_idx, kc_record *m)
{
    if (lua_isnoneornil(L, skip_idx) || m->eof)
        return false;
    lua_pushvalue(L, skip_idx);
    lua_pushstring(L, m->topic);
    if (lua_pcall(L, 1, 1, 0) != 0) {
        kc_record_free(m);
        lua_error(L);
    }
    bool skip = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return skip;
}

/* Pushes the next pooled result (a record table whose value is a message
 * object, nil for a null value; or an end-of-partition event) waiting up to
 * wait_ms; 0 if none. The record's offset is stored for commits only now
 * that it is handed on. */
static int take_pooled(lua_State *L, lua_consumer *lc, int wait_ms)
{
    kc_pool_result *r;
    if (kc_serde_pool_next(lc->pool, wait_ms, &r) != KC_OK)
        return 0;
    kc_record *m = r->user;
    kc_err err = r->err;
    kc_status st = r->status;
    if (st == KC_OK && !m->eof)
        st = kc_consumer_store_offset(lc->c, m, &err);
    if (st != KC_OK) {
        kc_record_free(m);
        return kc_lua_error(L, &err);
    }
    push_record(L, m);
    if (!m->eof && !kc_message_is_null(r->msg)) {
        kc_lua_push_message_moved(L, r->msg);
        lua_setfield(L, -2, "value");
    }
    kc_record_free(m);
    return 1;
}

/* Submits lc->pending if there is room; true if it went in (or was none).
 * An end-of-partition event goes through the pool too (as a null value),
 * so that it keeps its place after its partition's messages. A record the
 * skip function drops is not queued; its offset counts as handed on. */
static bool submit_pending(lua_State *L, lua_consumer *lc, kc_kind kind, int skip_idx)
{
    kc_record *m = lc->pending;
    if (!m)
        return true;
    kc_err err;
    lc->pending = NULL;   /* skipped() frees m if it raises */
    if (skipped(L, skip_idx, m)) {
        kc_status st = kc_consumer_store_offset(lc->c, m, &err);
        kc_record_free(m);
        if (st != KC_OK)
            kc_lua_error(L, &err);
        return true;
    }
    lc->pending = m;
    kc_status st = kc_serde_pool_submit(lc->pool, kind, m->topic, m->partition,
                                        m->eof ? NULL : m->value, m->eof ? 0 : m->value_len, m,
                                        &err);
    if (st == KC_ERR_BUSY)
        return false;
    if (st != KC_OK)
        kc_lua_error(L, &err);
    lc->pending = NULL;
    return true;
}

/* poll with a pool: keep it fed from librdkafka (without waiting while
 * results are due), hand back results in order per partition. */
static int poll_pooled(lua_State *L, lua_consumer *lc, int timeout_ms, int skip_idx)
{
    kc_kind kind = lc->pool_kind;
    double deadline = kc_clock_mono() + (timeout_ms < 0 ? 1e9 : timeout_ms / 1e3);
    kc_err err;
    for (;;) {
        /* feed: as many records as librdkafka has ready and the pool takes */
        while (submit_pending(L, lc, kind, skip_idx)) {
            if (kc_consumer_poll(lc->c, 0, &lc->pending, &err) != KC_OK)
                return kc_lua_error(L, &err);
            if (!lc->pending)
                break;
        }
        if (take_pooled(L, lc, 0))
            return 1;
        double left = deadline - kc_clock_mono();
        if (left <= 0)
            break;
        int wait = left > 1e6 ? -1 : (int)(left * 1e3) + 1;
        if (kc_serde_pool_in_flight(lc->pool) > 0) {
            /* results are on their way: wait for them in short steps so
             * that new records keep the workers busy */
            if (take_pooled(L, lc, wait < 0 || wait > 5 ? 5 : wait))
                return 1;
        } else {
            if (kc_consumer_poll(lc->c, wait, &lc->pending, &err) != KC_OK)
                return kc_lua_error(L, &err);
            if (!lc->pending)
                continue;   /* the deadline check above ends the loop */
        }
    }
    lua_pushnil(L);
    return 1;
}

/* c:poll(timeout_s = 0[, deserializer[, skip]]) -> {topic, partition,
 * offset, key, value, timestamp, timestamp_type, broker, headers}, an
 * end-of-partition event, or nil. With a kafkacrypto deserializer the value
 * is a message object decrypted here (no Lua string of the ciphertext);
 * skip(topic) -> true drops a record before it is deserialized. */
static int l_consumer_poll(lua_State *L)
{
    lua_consumer *lc = check_consumer(L);
    if (!lua_isnoneornil(L, 4) && !lua_isfunction(L, 4))
        return kc_lua_errorf(L, "poll: expected a function (or nil) as 4th argument");
    int timeout_ms = kc_lua_opt_ms(L, 2, 0);
    if (lc->pool)
        return poll_pooled(L, lc, timeout_ms, 4);
    if (!lua_isnoneornil(L, 3) && !kc_lua_to_deserializer(L, 3, NULL))
        return kc_lua_errorf(L, "poll: expected a kafkacrypto deserializer as 3rd argument");
    double deadline = kc_clock_mono() + (timeout_ms < 0 ? 1e9 : timeout_ms / 1e3);
    kc_record *m;
    kc_err err;
    for (;;) {
        if (kc_consumer_poll(lc->c, timeout_ms, &m, &err) != KC_OK)
            return kc_lua_error(L, &err);
        if (!m) {
            lua_pushnil(L);
            return 1;
        }
        if (!skipped(L, 4, m))
            break;
        kc_record_free(m);
        double left = deadline - kc_clock_mono();
        timeout_ms = timeout_ms < 0 ? -1 : left > 0 ? (int)(left * 1e3) : 0;
    }
    push_record(L, m);
    if (m->eof) {
        /* no value */
    } else if (lua_isnoneornil(L, 3)) {
        set_bytes(L, "value", m->value, m->value_len);
    } else if (m->value) {
        /* a kafkacrypto deserializer as 3rd argument: the value becomes a
         * message object without a Lua string of the ciphertext */
        kc_lua_push_deserialized(L, 3, m->topic, m->value, m->value_len);
        lua_setfield(L, -2, "value");
    }
    kc_record_free(m);
    return 1;
}

/* Frees the pool, with every record still in it. */
static void drop_pool(lua_consumer *lc)
{
    if (!lc->pool)
        return;
    kc_pool_result *r;
    while (kc_serde_pool_next(lc->pool, -1, &r) == KC_OK)
        kc_record_free(r->user);
    kc_serde_pool_free(lc->pool);
    lc->pool = NULL;
    kc_record_free(lc->pending);
    lc->pending = NULL;
}

/* c:use_pool(value_deserializer, threads, max_in_flight): values are
 * deserialized on a kc_serde_pool from now on, and poll returns them as
 * message objects. The consumer must have been made with
 * enable.auto.offset.store = false: offsets are stored as messages are
 * handed back, never for those still in the pool. */
static int l_use_pool(lua_State *L)
{
    lua_consumer *lc = check_consumer(L);
    kc_kind kind;
    kc_serde *serde = kc_lua_to_deserializer(L, 2, &kind);
    if (!serde || kind != KC_KIND_VALUE)
        return kc_lua_errorf(L, "deserialize_threads: the value_deserializer must be a "
                             "kafkacrypto value deserializer (or a serde.stack starting with one)");
    int threads = (int)luaL_checkinteger(L, 3);
    lua_Integer in_flight = luaL_optinteger(L, 4, 256);
    if (lc->pool)
        return kc_lua_errorf(L, "deserialize_threads: this consumer already has a pool");
    kc_err err;
    if (kc_serde_pool_new(serde, threads, in_flight < 1 ? 0 : (size_t)in_flight, &lc->pool,
                          &err) != KC_OK)
        return kc_lua_error(L, &err);
    lc->pool_kind = kind;
    return 0;
}

static int l_consumer_close(lua_State *L)
{
    lua_consumer *lc = luaL_checkudata(L, 1, CONSUMER);
    drop_pool(lc);
    if (lc->c) {
        kc_consumer_close(lc->c);
        lc->c = NULL;
        track(L, 1, 0);
    }
    return 0;
}

/* ---- broker ---------------------------------------------------------------------- */

static kc_broker *check_broker(lua_State *L)
{
    lua_broker *lb = luaL_checkudata(L, 1, BROKER);
    /* The embedded broker may have been stopped through another handle. */
    kc_broker *b = lb->embedded ? kc_broker_embedded_get() : lb->b;
    if (!b)
        kc_lua_errorf(L, "broker is stopped");
    return b;
}

static int push_broker(lua_State *L, kc_broker *b, int embedded)
{
    lua_broker *lb = kc_lua_class_push(L, BROKER, sizeof *lb);
    lb->b = embedded ? NULL : b;
    lb->embedded = embedded;
    return 1;
}

static int l_broker_start(lua_State *L)
{
    kc_broker *b;
    kc_err err;
    if (kc_broker_start(&b, &err) != KC_OK)
        return kc_lua_error(L, &err);
    return push_broker(L, b, 0);
}

static int l_broker_embedded(lua_State *L)
{
    kc_broker *b;
    kc_err err;
    if (kc_broker_embedded(&b, &err) != KC_OK)
        return kc_lua_error(L, &err);
    return push_broker(L, b, 1);
}

static int l_bootstrap(lua_State *L)
{
    lua_pushstring(L, kc_broker_bootstrap(check_broker(L)));
    return 1;
}

static int l_create_topic(lua_State *L)
{
    kc_broker *b = check_broker(L);
    kc_err err;
    if (kc_broker_create_topic(b, luaL_checkstring(L, 2), (int)luaL_optinteger(L, 3, 1), &err) !=
        KC_OK)
        return kc_lua_error(L, &err);
    return 0;
}

static int l_create_key_topics(lua_State *L)
{
    kc_broker *b = check_broker(L);
    kc_err err;
    if (kc_broker_create_key_topics(b, &kc_lua_settings(L)->tunables, luaL_optstring(L, 2, NULL),
                                    &err) != KC_OK)
        return kc_lua_error(L, &err);
    return 0;
}

static int l_listen(lua_State *L)
{
    kc_broker *b = check_broker(L);
    int port;
    kc_err err;
    if (kc_broker_listen(b, (int)luaL_optinteger(L, 2, 0), &port, &err) != KC_OK)
        return kc_lua_error(L, &err);
    lua_pushinteger(L, port);
    return 1;
}

static int l_broker_stop(lua_State *L)
{
    lua_broker *lb = luaL_checkudata(L, 1, BROKER);
    if (lb->embedded)
        kc_broker_embedded_stop();
    else
        kc_broker_stop(lb->b);
    lb->b = NULL;
    lb->embedded = 0;
    return 0;
}

static int l_broker_gc(lua_State *L)
{
    lua_broker *lb = luaL_checkudata(L, 1, BROKER);
    if (!lb->embedded)   /* the embedded one outlives its handles */
        kc_broker_stop(lb->b);
    lb->b = NULL;
    return 0;
}

/* ---- registration ------------------------------------------------------------------ */

void kc_lua_kafka_close_all(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, REG_OPEN);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    /* Collect first: closing edits the table. */
    lua_newtable(L);
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, -3)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, ++n);
    }
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        lua_getmetatable(L, -1);
        lua_getfield(L, -1, "__index");
        lua_getfield(L, -1, "close");
        lua_pushvalue(L, -4);
        lua_pushnumber(L, 10);   /* s: bounded, the process is ending */
        lua_pcall(L, 2, 0, 0);   /* errors here are not worth stopping for */
        lua_settop(L, lua_gettop(L) - 3);
    }
    lua_pop(L, 2);
}

void kc_lua_open_kafka(lua_State *L)
{
    static const luaL_Reg producer[] = {
        {"send", l_send},   {"poll", l_producer_poll}, {"flush", l_flush},
        {"deliveries", l_deliveries}, {"stats", l_stats}, {"close", l_producer_close},
        {"queued", l_queued}, {"statistics", l_statistics},
        {NULL, NULL},
    };
    static const luaL_Reg consumer[] = {
        {"subscribe", l_subscribe}, {"assign", l_assign}, {"poll", l_consumer_poll},
        {"commit", l_commit}, {"partition_count", l_partition_count},
        {"close", l_consumer_close}, {"commit_offsets", l_commit_offsets}, {"seek", l_seek},
        {"pause", l_pause}, {"resume", l_resume}, {"position", l_position},
        {"committed", l_committed}, {"offsets_for_times", l_offsets_for_times},
        {"assignment", l_assignment}, {"watermarks", l_watermarks}, {"use_pool", l_use_pool},
        {NULL, NULL},
    };
    static const luaL_Reg broker[] = {
        {"bootstrap", l_bootstrap}, {"create_topic", l_create_topic},
        {"create_key_topics", l_create_key_topics}, {"listen", l_listen},
        {"stop", l_broker_stop}, {NULL, NULL},
    };
    static const luaL_Reg producer_meta[] = {{"__gc", l_producer_gc}, {NULL, NULL}};
    static const luaL_Reg consumer_meta[] = {{"__gc", l_consumer_close}, {NULL, NULL}};
    static const luaL_Reg broker_meta[] = {{"__gc", l_broker_gc}, {NULL, NULL}};
    kc_lua_class_new(L, PRODUCER, producer, producer_meta);
    kc_lua_class_new(L, CONSUMER, consumer, consumer_meta);
    kc_lua_class_new(L, BROKER, broker, broker_meta);
    static const luaL_Reg fns[] = {
        {"producer", l_producer}, {"consumer", l_consumer},
        {"broker_start", l_broker_start}, {"broker_embedded", l_broker_embedded},
        {NULL, NULL},
    };
    luaL_register(L, NULL, fns);
}
