/* core.metrics_server(listen): a Prometheus endpoint whose page a script
 * sets (the tools without a node, e.g. key-monitor). The server's thread
 * never enters Lua: it serves the last page set, copied under a lock. */
#include <lauxlib.h>
#include <pthread.h>
#include <stdlib.h>

#include "kc_lua.h"
#include "kc_lua_class.h"
#include "kc_metrics.h"

#define METRICS_SERVER "kafkacrypto.metrics_server"

typedef struct page {
    pthread_mutex_t mu;
    kc_buf text;
} page;

typedef struct lua_metrics_server {
    kc_metrics_server *server;
    page *page;
} lua_metrics_server;

static kc_status fill(void *ctx, kc_buf *out)
{
    page *p = ctx;
    pthread_mutex_lock(&p->mu);
    kc_status st = kc_buf_append(out, p->text.data, p->text.len);
    pthread_mutex_unlock(&p->mu);
    return st;
}

static lua_metrics_server *check(lua_State *L)
{
    return luaL_checkudata(L, 1, METRICS_SERVER);
}

/* server:set(text): what GET /metrics returns from now on. */
static int l_set(lua_State *L)
{
    lua_metrics_server *s = check(L);
    size_t len;
    const char *text = luaL_checklstring(L, 2, &len);
    if (!s->page)
        return kc_lua_errorf(L, "metrics server: closed");
    pthread_mutex_lock(&s->page->mu);
    kc_status st = kc_buf_set(&s->page->text, (const uint8_t *)text, len);
    pthread_mutex_unlock(&s->page->mu);
    if (st != KC_OK)
        return kc_lua_errorf(L, "metrics server: out of memory");
    return 0;
}

static int l_port(lua_State *L)
{
    lua_pushinteger(L, kc_metrics_server_port(check(L)->server));
    return 1;
}

static int l_close(lua_State *L)
{
    lua_metrics_server *s = check(L);
    kc_metrics_server_stop(s->server);  /* waits for a request being served */
    s->server = NULL;
    if (s->page) {
        kc_buf_free(&s->page->text);
        pthread_mutex_destroy(&s->page->mu);
        free(s->page);
        s->page = NULL;
    }
    return 0;
}

/* core.metrics_server("HOST:PORT") -> server (port 0: any free one). */
static int l_metrics_server(lua_State *L)
{
    const char *listen = luaL_checkstring(L, 1);
    lua_metrics_server *s = kc_lua_class_push(L, METRICS_SERVER, sizeof *s);
    if (!(s->page = calloc(1, sizeof *s->page)))
        return kc_lua_errorf(L, "metrics server: out of memory");
    pthread_mutex_init(&s->page->mu, NULL);
    kc_err err;
    if (kc_metrics_server_start(listen, fill, s->page, &s->server, &err) != KC_OK)
        return kc_lua_error(L, &err);  /* __gc frees the page */
    return 1;
}

void kc_lua_open_metrics(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"set", l_set}, {"port", l_port}, {"close", l_close}, {NULL, NULL},
    };
    static const luaL_Reg meta[] = {{"__gc", l_close}, {NULL, NULL}};
    kc_lua_class_new(L, METRICS_SERVER, methods, meta);
    lua_pushcfunction(L, l_metrics_server);
    lua_setfield(L, -2, "metrics_server");
}
