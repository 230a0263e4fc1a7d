#include "kc_lua.h"

#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafkacrypto.h"
#include "kc_broker.h"
#include "kc_buf.h"
#include "kc_lua_chain.h"
#include "kc_lua_crypto.h"
#include "kc_lua_crypto_args.h"

static const char REG_SETTINGS[] = "kafkacrypto.settings";
static const char REG_TRACEBACK[] = "kafkacrypto.traceback";

static kc_settings default_settings;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void init_default_settings(void)
{
    kc_settings_init(&default_settings);
}

const kc_settings *kc_lua_settings(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, REG_SETTINGS);
    const kc_settings *s = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!s) {
        pthread_once(&default_once, init_default_settings);
        s = &default_settings;
    }
    return s;
}

/* ---- errors with the user's line ------------------------------------------- */

/* 1 if a chunk is one of our modules: a file directly in .../lua/kafkacrypto/
 * or in its tools/ or authorities/ folder. */
static int is_module_source(const char *source)
{
    const char *p = strstr(source, "lua/kafkacrypto/");
    if (!p)
        return 0;
    p += strlen("lua/kafkacrypto/");
    if (strncmp(p, "tools/", 6) == 0)
        p += 6;
    else if (strncmp(p, "authorities/", 12) == 0)
        p += 12;
    return !strchr(p, '/');
}

/* Errors raised by our C functions or our Lua modules point at the first
 * caller outside them, i.e. the user's script line. */
static void push_user_where(lua_State *L)
{
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0 || is_module_source(ar.source))
            continue;
        lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
        return;
    }
    lua_pushliteral(L, "");
}

int kc_lua_error(lua_State *L, const kc_err *err)
{
    push_user_where(L);
    lua_pushstring(L, err && err->msg[0] ? err->msg : "kafkacrypto: unknown error");
    lua_concat(L, 2);
    return lua_error(L);
}

int kc_lua_errorf(lua_State *L, const char *fmt, ...)
{
    va_list ap;
    push_user_where(L);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_concat(L, 2);
    return lua_error(L);
}

int kc_lua_raise(lua_State *L, const char *kind, const char *fmt, ...)
{
    va_list ap;
    lua_getglobal(L, "require");
    lua_pushliteral(L, "kafkacrypto.errors");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "new");
    lua_pushstring(L, kind);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    push_user_where(L);
    lua_call(L, 3, 1);
    return lua_error(L);
}

/* core.where(): "SCRIPT:LINE: " of the user's code, for error objects. */
static int l_where(lua_State *L)
{
    push_user_where(L);
    return 1;
}

/* core.error(message): raise at the user's line. */
static int l_error(lua_State *L)
{
    const char *msg = luaL_checkstring(L, 1);
    push_user_where(L);
    lua_pushstring(L, msg);
    lua_concat(L, 2);
    return lua_error(L);
}

/* ---- the core module --------------------------------------------------------- */

static void set_string(lua_State *L, const char *key, const char *value)
{
    if (!value)
        return;
    lua_pushstring(L, value);
    lua_setfield(L, -2, key);
}

static int l_settings(lua_State *L)
{
    const kc_settings *s = kc_lua_settings(L);
    lua_createtable(L, 0, 10);
    set_string(L, "file", s->file);
    set_string(L, "broker", s->broker);
    set_string(L, "node_config", s->node_config);
    set_string(L, "node_id", s->node_id);
    set_string(L, "log_level", kc_log_level_name(s->log_level));
    set_string(L, "lua_path", s->lua_path);
    set_string(L, "lua_cpath", s->lua_cpath);
    set_string(L, "scripts_dir", s->scripts_dir);
    set_string(L, "exchange_variant", s->exchange_variant);
    set_string(L, "metrics_listen", s->metrics_listen);
    lua_createtable(L, (int)s->npolicies, 0);
    for (size_t i = 0; i < s->npolicies; i++) {
        lua_pushstring(L, s->policies[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "policies");
    return 1;
}

static int l_tunables(lua_State *L)
{
    const kc_tunables *t = &kc_lua_settings(L)->tunables;
    lua_createtable(L, 0, KC_T_COUNT);
    for (int id = 0; id < KC_T_COUNT; id++) {
        kc_tunable_type type;
        char text[KC_TOPIC_NAME_MAX + 1];
        kc_tunable_lookup(kc_tunable_name((kc_tunable_id)id), NULL, &type);
        kc_tunables_format(t, (kc_tunable_id)id, text, sizeof text);
        if (type == KC_TT_STRING)
            lua_pushstring(L, text);
        else if (type == KC_TT_BOOL)
            lua_pushboolean(L, text[0] == 'T');
        else
            lua_pushnumber(L, strtod(text, NULL));
        lua_setfield(L, -2, kc_tunable_name((kc_tunable_id)id));
    }
    return 1;
}

/* ---- modules: kafkacrypto.core and one per binding file ------------------------- */

static void push_msgpack(lua_State *L)
{
    lua_newtable(L);
    kc_lua_msgpack_register(L);
}

/* kafkacrypto.core.<name> is runtime/src/lua/kc_lua_<name>.c: a table of what
 * its open function adds to kafkacrypto.core (the union of these, in this
 * order, plus kc_lua.c's own), or, for `push`, the table it builds (crypto:
 * core.crypto; msgpack: what crypto holds of it, not in core itself). */
static const struct binding {
    const char *name;
    void (*open)(lua_State *L);   /* adds to the table on top */
    void (*push)(lua_State *L);   /* or pushes its own module table */
} bindings[] = {
    {"bytes", kc_lua_open_bytes, NULL},   /* first: the store and crypto use its metatable */
    {"tools", kc_lua_open_tools, NULL},
    {"log", kc_lua_open_log, NULL},
    {"kafka", kc_lua_open_kafka, NULL},
    {"admin", kc_lua_open_admin, NULL},
    {"root", kc_lua_open_root, NULL},
    {"serde", kc_lua_open_serde, NULL},
    {"store", kc_lua_open_store, NULL},
    {"crypto", kc_lua_open_crypto, kc_lua_push_crypto},
    {"msgpack", NULL, push_msgpack},
    {"node", kc_lua_open_node, NULL},
    {"chain", kc_lua_open_chain, NULL},
    {"authority", kc_lua_open_authority, NULL},
    {"signal", kc_lua_open_signal, NULL},
    {"metrics", kc_lua_open_metrics, NULL},
};

int luaopen_kafkacrypto_core(lua_State *L)
{
    lua_newtable(L);
    lua_pushstring(L, kc_version());
    lua_setfield(L, -2, "version");
    lua_pushcfunction(L, l_settings);
    lua_setfield(L, -2, "settings");
    lua_pushcfunction(L, l_tunables);
    lua_setfield(L, -2, "tunables");
    lua_pushcfunction(L, l_error);
    lua_setfield(L, -2, "error");
    lua_pushcfunction(L, l_where);
    lua_setfield(L, -2, "where");
    for (size_t i = 0; i < sizeof bindings / sizeof bindings[0]; i++)
        if (bindings[i].open)
            bindings[i].open(L);
    return 1;
}

static int open_binding(lua_State *L)
{
    const struct binding *b = lua_touserdata(L, lua_upvalueindex(1));
    kc_lua_bytes_init(L);
    if (b->push) {
        b->push(L);
    } else {
        lua_newtable(L);
        b->open(L);
    }
    return 1;
}

/* The names these modules had before lua/kafkacrypto/ was grouped, kept
 * for users' scripts: each loads the module under its new name. */
static const char *const moved[][2] = {
    {"kafkacrypto.cli", "kafkacrypto.tools.cli"},
    {"kafkacrypto.provisioning", "kafkacrypto.tools.provisioning"},
    {"kafkacrypto.kcat", "kafkacrypto.tools.kcat"},
    {"kafkacrypto.controller", "kafkacrypto.authorities.controller"},
    {"kafkacrypto.chainserver", "kafkacrypto.authorities.chainserver"},
};

static int open_moved(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_call(L, 1, 1);
    return 1;
}

static void preload_modules(lua_State *L)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_kafkacrypto_core);
    lua_setfield(L, -2, "kafkacrypto.core");
    for (size_t i = 0; i < sizeof bindings / sizeof bindings[0]; i++) {
        lua_pushlightuserdata(L, (void *)&bindings[i]);
        lua_pushcclosure(L, open_binding, 1);
        lua_pushfstring(L, "kafkacrypto.core.%s", bindings[i].name);
        lua_insert(L, -2);
        lua_settable(L, -3);
    }
    for (size_t i = 0; i < sizeof moved / sizeof moved[0]; i++) {
        lua_pushstring(L, moved[i][1]);
        lua_pushcclosure(L, open_moved, 1);
        lua_setfield(L, -2, moved[i][0]);
    }
    lua_pop(L, 2);
}

/* ---- the state ------------------------------------------------------------------ */

/* os.exit: close Kafka clients (flushing producers) before the process
 * ends, so nothing queued is lost. */
static int l_os_exit(lua_State *L)
{
    int code = lua_isboolean(L, 1) ? !lua_toboolean(L, 1) : (int)luaL_optinteger(L, 1, 0);
    kc_lua_node_close_all(L);
    kc_lua_kafka_close_all(L);
    kc_broker_embedded_stop();
    fflush(NULL);
    exit(code);
}

/* Appends the entries of `defaults` that do not start with "./". */
static kc_status append_defaults(kc_buf *b, const char *defaults)
{
    char *copy = strdup(defaults);
    if (!copy)
        return KC_ERR_NOMEM;
    kc_status st = KC_OK;
    char *save = NULL;
    for (char *e = strtok_r(copy, ";", &save); e && st == KC_OK; e = strtok_r(NULL, ";", &save))
        if (strncmp(e, "./", 2) != 0) {
            st = kc_buf_append(b, e, strlen(e));
            if (st == KC_OK)
                st = kc_buf_append_byte(b, ';');
        }
    free(copy);
    return st;
}

static kc_status set_search_path(lua_State *L, const char *field, const kc_lua_options *o,
                                 const kc_settings *s, int cpath)
{
    kc_buf b = KC_BUF_INIT;
    kc_status st = KC_OK;
    const char *env = cpath ? NULL : getenv("KC_LUA_PATH");
    if (env && *env) {
        char *p = kc_settings_lua_search_path(NULL, env, 0);
        st = p ? kc_buf_append(&b, p, strlen(p)) : KC_ERR_NOMEM;
        free(p);
    }
    const char *extra = cpath ? s->lua_cpath : s->lua_path;
    if (st == KC_OK && extra)
        st = kc_buf_append(&b, extra, strlen(extra));
    const char *dirs[2] = {o->script_dir, o->home};
    for (int i = 0; i < 2 && st == KC_OK; i++) {
        if (!dirs[i])
            continue;
        char *text;
        if (asprintf(&text, cpath ? "%s%s/?.so;" : "%s%s/?.lua;%s%s/?/init.lua;", dirs[i],
                     i ? "/lua" : "", dirs[i], i ? "/lua" : "") < 0)
            st = KC_ERR_NOMEM;
        else {
            st = kc_buf_append(&b, text, strlen(text));
            free(text);
        }
    }
    lua_getglobal(L, "package");
    lua_getfield(L, -1, field);
    if (st == KC_OK)
        st = append_defaults(&b, lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
    lua_pop(L, 1);
    if (st == KC_OK && b.len)
        b.len--;   /* trailing ';' */
    if (st == KC_OK) {
        lua_pushlstring(L, (const char *)b.data, b.len);
        lua_setfield(L, -2, field);
    }
    lua_pop(L, 1);
    kc_buf_free(&b);
    return st;
}

kc_status kc_lua_new(lua_State **out, const kc_lua_options *opts, kc_err *err)
{
    static const kc_lua_options none;
    const kc_lua_options *o = opts ? opts : &none;
    *out = NULL;
    lua_State *L = luaL_newstate();
    if (!L)
        return kc_err_set(err, KC_ERR_NOMEM, "cannot create a Lua state");
    luaL_openlibs(L);
    if (o->settings) {
        lua_pushlightuserdata(L, (void *)o->settings);
        lua_setfield(L, LUA_REGISTRYINDEX, REG_SETTINGS);
    }
    const kc_settings *s = kc_lua_settings(L);
    if (set_search_path(L, "path", o, s, 0) != KC_OK ||
        set_search_path(L, "cpath", o, s, 1) != KC_OK) {
        lua_close(L);
        return kc_err_set(err, KC_ERR_NOMEM, "cannot set the Lua search path");
    }
    preload_modules(L);
    lua_getglobal(L, "os");
    lua_pushcfunction(L, l_os_exit);
    lua_setfield(L, -2, "exit");
    lua_pop(L, 1);
    if (o->exe) {
        lua_pushstring(L, o->exe);
        lua_setfield(L, LUA_REGISTRYINDEX, "kafkacrypto.exe");
    }
    *out = L;
    return KC_OK;
}

/* Message handler: keeps the traceback aside, returns the message. */
static int on_error(lua_State *L)
{
    if (!lua_isstring(L, 1)) {   /* an error object: use its __tostring */
        lua_getglobal(L, "tostring");
        lua_pushvalue(L, 1);
        lua_call(L, 1, 1);
        lua_replace(L, 1);
    }
    luaL_traceback(L, L, NULL, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, REG_TRACEBACK);
    lua_settop(L, 1);
    return 1;
}

kc_status kc_lua_run_file(lua_State *L, const char *path, int argc, char *const *argv,
                          char **traceback, kc_err *err)
{
    if (traceback)
        *traceback = NULL;
    int top = lua_gettop(L);
    lua_createtable(L, argc, 2);
    lua_getfield(L, LUA_REGISTRYINDEX, "kafkacrypto.exe");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushliteral(L, "kafkacrypto");
    }
    lua_rawseti(L, -2, -1);
    lua_pushstring(L, path);
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");

    lua_pushcfunction(L, on_error);
    if (luaL_loadfile(L, path) != 0) {
        kc_status st = kc_err_set(err, KC_ERR_INVALID, "%s", lua_tostring(L, -1));
        lua_settop(L, top);
        return st;
    }
    luaL_checkstack(L, argc + 1, "too many arguments");
    for (int i = 0; i < argc; i++)
        lua_pushstring(L, argv[i]);
    if (lua_pcall(L, argc, 0, top + 1) != 0) {
        const char *msg = lua_tostring(L, -1);
        kc_status st = kc_err_set(err, KC_ERR_INVALID, "%s", msg ? msg : "(error object)");
        lua_getfield(L, LUA_REGISTRYINDEX, REG_TRACEBACK);
        if (traceback && lua_isstring(L, -1))
            *traceback = strdup(lua_tostring(L, -1));
        lua_pushnil(L);
        lua_setfield(L, LUA_REGISTRYINDEX, REG_TRACEBACK);
        lua_settop(L, top);
        return st;
    }
    lua_settop(L, top);
    return KC_OK;
}

void kc_lua_close(lua_State *L)
{
    if (!L)
        return;
    kc_lua_kafka_close_all(L);
    lua_close(L);
}

void kc_lua_mark_open(lua_State *L, const char *registry, int idx, bool open)
{
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    lua_getfield(L, LUA_REGISTRYINDEX, registry);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_createtable(L, 0, 1);
        lua_pushliteral(L, "k");
        lua_setfield(L, -2, "__mode");
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, registry);
    }
    lua_pushvalue(L, idx);
    if (open)
        lua_pushboolean(L, 1);
    else
        lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}
