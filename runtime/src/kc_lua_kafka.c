/* Lua binding of kc_kafka and kc_broker: raw producer, consumer and broker
 * handles. lua/kafkacrypto/kafka.lua builds the user-facing objects (with
 * serializers) on top. Times are in seconds, as Lua users expect. */
#include <lauxlib.h>
#include <math.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_broker.h"
#include "kc_kafka.h"
#include "kc_lua.h"
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

/* seconds (nil = default) -> ms; negative = wait without limit */
static int opt_ms(lua_State *L, int idx, int dflt)
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
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    lua_getfield(L, LUA_REGISTRYINDEX, REG_OPEN);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_createtable(L, 0, 1);
        lua_pushliteral(L, "k");
        lua_setfield(L, -2, "__mode");
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, REG_OPEN);
    }
    lua_pushvalue(L, idx);
    if (open)
        lua_pushboolean(L, 1);
    else
        lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 1);
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
    lua_newtable(L);   /* name -> text */
    int texts = lua_gettop(L);
    if (!lua_isnoneornil(L, idx)) {
        luaL_checktype(L, idx, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            if (lua_type(L, -2) != LUA_TSTRING)
                kc_lua_errorf(L, "kafka config: expected option names as keys, got a %s key",
                           luaL_typename(L, -2));
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
    lua_settop(L, texts - 1);
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
    lua_producer *lp = lua_newuserdata(L, sizeof *lp);
    lp->p = NULL;
    luaL_getmetatable(L, PRODUCER);
    lua_setmetatable(L, -2);
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

/* p:send(topic, key, value[, partition]) -> seq */
static int l_send(lua_State *L)
{
    lua_producer *lp = check_producer(L);
    const char *topic = luaL_checkstring(L, 2);
    size_t klen, vlen;
    const void *key = opt_bytes(L, 3, &klen);
    const void *value = lua_isnoneornil(L, 6) ? opt_bytes(L, 4, &vlen) : NULL;
    lua_Integer part = luaL_optinteger(L, 5, KC_PARTITION_ANY);
    if (part < KC_PARTITION_ANY || part > INT32_MAX)
        return kc_lua_errorf(L, "send: partition: expected a number >= 0");
    /* a kafkacrypto value serializer as 6th argument: the value is
     * encrypted straight into the send, no Lua string in between */
    if (!lua_isnoneornil(L, 6))
        value = kc_lua_serialize_arg(L, 6, topic, 4, &vlen);
    uint64_t seq;
    kc_err err;
    if (kc_producer_send(lp->p, topic, (int32_t)part, key, klen, value, vlen, &seq, &err) != KC_OK)
        return kc_lua_error(L, &err);
    lua_pushnumber(L, (lua_Number)seq);
    return 1;
}

static int l_producer_poll(lua_State *L)
{
    kc_producer_poll(check_producer(L)->p, opt_ms(L, 2, 0));
    return 0;
}

static int l_flush(lua_State *L)
{
    lua_producer *lp = check_producer(L);
    kc_err err;
    if (kc_producer_flush(lp->p, opt_ms(L, 2, -1), &err) != KC_OK)
        return kc_lua_error(L, &err);
    return 0;
}

/* p:deliveries() -> array of {seq, topic, partition, offset, error} */
static int l_deliveries(lua_State *L)
{
    lua_producer *lp = check_producer(L);
    kc_delivery d;
    lua_newtable(L);
    for (int i = 1; kc_producer_next_delivery(lp->p, &d); i++) {
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
        kc_producer_close(lp->p, opt_ms(L, 2, -1));
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
    lua_consumer *lc = lua_newuserdata(L, sizeof *lc);
    memset(lc, 0, sizeof *lc);
    luaL_getmetatable(L, CONSUMER);
    lua_setmetatable(L, -2);
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

static int64_t check_offset(lua_State *L, int idx, int entry)
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
    kc_lua_errorf(L, "assign: entry %d: offset: expected a number >= 0, \"beginning\", \"end\" "
                  "or \"stored\"", entry);
    return 0;
}

/* c:assign{{topic=, partition=, offset=}, ...} */
static int l_assign(lua_State *L)
{
    lua_consumer *lc = check_consumer(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    size_t n = lua_objlen(L, 2);
    kc_topic_partition *tps = lua_newuserdata(L, (n ? n : 1) * sizeof *tps);
    for (size_t i = 0; i < n; i++) {
        int entry = (int)i + 1;
        lua_rawgeti(L, 2, entry);
        if (!lua_istable(L, -1))
            return kc_lua_errorf(L, "assign: entry %d: expected {topic=..., partition=...}", entry);
        lua_getfield(L, -1, "topic");
        lua_getfield(L, -2, "partition");
        lua_getfield(L, -3, "offset");
        if (lua_type(L, -3) != LUA_TSTRING)
            return kc_lua_errorf(L, "assign: entry %d: topic: expected a string", entry);
        double part = lua_isnil(L, -2) ? 0 : lua_tonumber(L, -2);
        if ((!lua_isnil(L, -2) && lua_type(L, -2) != LUA_TNUMBER) || part < 0 ||
            part != floor(part) || part > INT32_MAX)
            return kc_lua_errorf(L, "assign: entry %d: partition: expected a number >= 0", entry);
        tps[i].topic = lua_tostring(L, -3);   /* kept alive by the table */
        tps[i].partition = (int32_t)part;
        tps[i].offset = check_offset(L, -1, entry);
        lua_pop(L, 4);
    }
    kc_err err;
    if (kc_consumer_assign(lc->c, tps, n, &err) != KC_OK)
        return kc_lua_error(L, &err);
    return 0;
}

/* c:partition_count(topic, timeout_s = 5) -> n, 0 if the topic does not exist */
static int l_partition_count(lua_State *L)
{
    lua_consumer *lc = check_consumer(L);
    const char *topic = luaL_checkstring(L, 2);
    int count;
    kc_err err;
    if (kc_consumer_partition_count(lc->c, topic, opt_ms(L, 3, 5000), &count, &err) != KC_OK)
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

/* The record's fields except the value into a new table. */
static void push_record(lua_State *L, const kc_record *m)
{
    lua_createtable(L, 0, 6);
    lua_pushstring(L, m->topic);
    lua_setfield(L, -2, "topic");
    lua_pushinteger(L, m->partition);
    lua_setfield(L, -2, "partition");
    lua_pushnumber(L, (lua_Number)m->offset);
    lua_setfield(L, -2, "offset");
    lua_pushnumber(L, (lua_Number)m->timestamp_ms);
    lua_setfield(L, -2, "timestamp");
    set_bytes(L, "key", m->key, m->key_len);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Pushes the next pooled result (a record table whose value is a message
 * object, nil for a null value) waiting up to wait_ms; 0 if none. The
 * record's offset is stored for commits only now that it is handed on. */
static int take_pooled(lua_State *L, lua_consumer *lc, int wait_ms)
{
    kc_pool_result *r;
    if (kc_serde_pool_next(lc->pool, wait_ms, &r) != KC_OK)
        return 0;
    kc_record *m = r->user;
    kc_err err = r->err;
    kc_status st = r->status;
    if (st == KC_OK)
        st = kc_consumer_store_offset(lc->c, m, &err);
    if (st != KC_OK) {
        kc_record_free(m);
        return kc_lua_error(L, &err);
    }
    push_record(L, m);
    if (!kc_message_is_null(r->msg)) {
        kc_lua_push_message_moved(L, r->msg);
        lua_setfield(L, -2, "value");
    }
    kc_record_free(m);
    return 1;
}

/* Submits lc->pending if there is room; true if it went in (or was none). */
static bool submit_pending(lua_State *L, lua_consumer *lc, kc_kind kind)
{
    if (!lc->pending)
        return true;
    kc_err err;
    kc_status st = kc_serde_pool_submit(lc->pool, kind, lc->pending->topic, lc->pending->partition,
                                        lc->pending->value, lc->pending->value_len, lc->pending,
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
static int poll_pooled(lua_State *L, lua_consumer *lc, int timeout_ms)
{
    kc_kind kind = lc->pool_kind;
    double deadline = now_s() + (timeout_ms < 0 ? 1e9 : timeout_ms / 1e3);
    kc_err err;
    for (;;) {
        /* feed: as many records as librdkafka has ready and the pool takes */
        while (submit_pending(L, lc, kind)) {
            if (kc_consumer_poll(lc->c, 0, &lc->pending, &err) != KC_OK)
                return kc_lua_error(L, &err);
            if (!lc->pending)
                break;
        }
        if (take_pooled(L, lc, 0))
            return 1;
        double left = deadline - now_s();
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
                break;
        }
    }
    lua_pushnil(L);
    return 1;
}

/* c:poll(timeout_s = 0) -> {topic, partition, offset, key, value, timestamp} or nil */
static int l_consumer_poll(lua_State *L)
{
    lua_consumer *lc = check_consumer(L);
    if (lc->pool)
        return poll_pooled(L, lc, opt_ms(L, 2, 0));
    if (!lua_isnoneornil(L, 3) && !kc_lua_to_deserializer(L, 3, NULL))
        return kc_lua_errorf(L, "poll: expected a kafkacrypto deserializer as 3rd argument");
    kc_record *m;
    kc_err err;
    if (kc_consumer_poll(lc->c, opt_ms(L, 2, 0), &m, &err) != KC_OK)
        return kc_lua_error(L, &err);
    if (!m) {
        lua_pushnil(L);
        return 1;
    }
    push_record(L, m);
    if (lua_isnoneornil(L, 3)) {
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
    lua_broker *lb = lua_newuserdata(L, sizeof *lb);
    lb->b = embedded ? NULL : b;
    lb->embedded = embedded;
    luaL_getmetatable(L, BROKER);
    lua_setmetatable(L, -2);
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

static void new_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc)
{
    luaL_newmetatable(L, name);
    lua_newtable(L);
    for (const luaL_Reg *m = methods; m->name; m++) {
        lua_pushcfunction(L, m->func);
        lua_setfield(L, -2, m->name);
    }
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
}

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
        {NULL, NULL},
    };
    static const luaL_Reg consumer[] = {
        {"subscribe", l_subscribe}, {"assign", l_assign}, {"poll", l_consumer_poll},
        {"commit", l_commit}, {"partition_count", l_partition_count},
        {"use_pool", l_use_pool}, {"close", l_consumer_close}, {NULL, NULL},
    };
    static const luaL_Reg broker[] = {
        {"bootstrap", l_bootstrap}, {"create_topic", l_create_topic},
        {"create_key_topics", l_create_key_topics}, {"listen", l_listen},
        {"stop", l_broker_stop}, {NULL, NULL},
    };
    new_class(L, PRODUCER, producer, l_producer_gc);
    new_class(L, CONSUMER, consumer, l_consumer_close);
    new_class(L, BROKER, broker, l_broker_gc);
    static const luaL_Reg fns[] = {
        {"producer", l_producer}, {"consumer", l_consumer},
        {"broker_start", l_broker_start}, {"broker_embedded", l_broker_embedded},
        {NULL, NULL},
    };
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
}
