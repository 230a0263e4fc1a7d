/* Lua binding of kc_log: levels, logging from scripts, and capturing lines
 * (for tests). Lines may come from any thread (librdkafka's included), so
 * captured lines are kept in C under a lock and handed to Lua on request. */
#include <lauxlib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_array.h"
#include "kc_log.h"
#include "kc_lua.h"

#define CAPTURE_MAX_LINES 10000

static pthread_mutex_t capture_lock = PTHREAD_MUTEX_INITIALIZER;
static char **captured;
static size_t ncaptured, capture_cap;

/* Called with kc_log's lock held. */
static void capture_sink(void *ctx, kc_log_level level, const char *logger, const char *msg)
{
    char *line;
    if (asprintf(&line, "%s:%s:%s", kc_log_level_name(level), logger, msg) < 0)
        return;
    pthread_mutex_lock(&capture_lock);
    if (ncaptured < CAPTURE_MAX_LINES)
        (void)KC_ARRAY_GROW(captured, ncaptured, capture_cap); /* full: the line is dropped */
    if (ncaptured < capture_cap) {
        captured[ncaptured++] = line;
        line = NULL;
    }
    pthread_mutex_unlock(&capture_lock);
    free(line);
}

/* Pushes the captured lines as an array and forgets them. */
static int push_captured(lua_State *L)
{
    pthread_mutex_lock(&capture_lock);
    char **lines = captured;
    size_t n = ncaptured;
    captured = NULL;
    ncaptured = capture_cap = 0;
    pthread_mutex_unlock(&capture_lock);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, lines[i]);
        lua_rawseti(L, -2, (int)i + 1);
        free(lines[i]);
    }
    free(lines);
    return 1;
}

static kc_log_level check_level(lua_State *L, int idx)
{
    kc_log_level level;
    const char *text = luaL_checkstring(L, idx);   /* numbers convert too */
    if (kc_log_level_parse(text, &level) != 0)
        kc_lua_errorf(L, "log level: expected DEBUG, INFO, WARNING, ERROR or CRITICAL, "
                         "got '%s'", text);
    return level;
}

static int l_set_level(lua_State *L)
{
    kc_log_set_level(check_level(L, 1));
    return 0;
}

static int l_get_level(lua_State *L)
{
    lua_pushstring(L, kc_log_level_name(kc_log_get_level()));
    return 1;
}

/* core.log(level, logger, message) */
static int l_log(lua_State *L)
{
    kc_log_level level = check_level(L, 1);
    kc_log(level, luaL_checkstring(L, 2), "%s", luaL_checkstring(L, 3));
    return 0;
}

static int l_capture_start(lua_State *L)
{
    lua_pop(L, push_captured(L));   /* drop leftovers */
    kc_log_set_sink(capture_sink, NULL);
    return 0;
}

static int l_capture_stop(lua_State *L)
{
    kc_log_set_sink(NULL, NULL);
    return push_captured(L);
}

void kc_lua_open_log(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"log_set_level", l_set_level},   {"log_get_level", l_get_level},
        {"log", l_log},                   {"log_capture_start", l_capture_start},
        {"log_capture_take", push_captured}, {"log_capture_stop", l_capture_stop},
        {NULL, NULL},
    };
    luaL_register(L, NULL, fns);
}
