/* SIGINT/SIGTERM for Lua scripts that serve until told to stop, and the
 * kc_clock_mono clock their loops need (kafkacrypto.wait_for_signal,
 * catch_signals, clock; documented in lua/kafkacrypto/init.lua).
 *
 * A handler writes the signal number to a non-blocking self-pipe and
 * nothing else, so it is safe in whichever thread the kernel picks,
 * librdkafka's included (SA_RESTART: their system calls resume). Waiting
 * is poll() on the pipe. Catching is process-wide and off by default, so
 * a script that never asks still dies on Ctrl-C as usual. */
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "kc_clock.h"
#include "kc_lua.h"

static int sig_pipe[2] = {-1, -1};
static pthread_mutex_t sig_mu = PTHREAD_MUTEX_INITIALIZER;
static const int CAUGHT[] = {SIGINT, SIGTERM};

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t r = write(sig_pipe[1], &b, 1); /* a full pipe already says enough */
    (void)r;
    errno = saved;
}

static int open_pipe(void)
{
    if (sig_pipe[0] >= 0)
        return 0;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0)
        return -1;
    sig_pipe[0] = fds[0];
    sig_pipe[1] = fds[1];
    return 0;
}

/* Installs (catch) or removes the handler. */
static int set_catching(lua_State *L, bool catch)
{
    pthread_mutex_lock(&sig_mu);
    int rc = catch ? open_pipe() : 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = catch ? on_signal : SIG_DFL;
    sa.sa_flags = catch ? SA_RESTART : 0;
    for (size_t i = 0; rc == 0 && i < sizeof CAUGHT / sizeof CAUGHT[0]; i++)
        rc = sigaction(CAUGHT[i], &sa, NULL);
    if (!catch && sig_pipe[0] >= 0) { /* forget what was caught */
        unsigned char drain[64];
        while (read(sig_pipe[0], drain, sizeof drain) > 0)
            ;
    }
    int saved = errno;
    pthread_mutex_unlock(&sig_mu);
    if (rc != 0)
        return kc_lua_errorf(L, "catch_signals: %s", strerror(saved));
    return 0;
}

static bool is_catching(void)
{
    struct sigaction sa;
    return sigaction(SIGTERM, NULL, &sa) == 0 && sa.sa_handler == on_signal;
}

/* core.catch_signals(on) */
static int l_catch_signals(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TBOOLEAN);
    set_catching(L, lua_toboolean(L, 1));
    return 0;
}

/* core.wait_for_signal([seconds]) -> "SIGINT" | "SIGTERM" | nil on timeout */
static int l_wait_for_signal(lua_State *L)
{
    double seconds = luaL_optnumber(L, 1, -1);
    if (!lua_isnoneornil(L, 1) && (isnan(seconds) || seconds < 0))
        return kc_lua_errorf(L, "wait_for_signal: seconds: expected a number >= 0 or nil");
    if (!is_catching())
        set_catching(L, true);
    double deadline = seconds < 0 ? INFINITY : kc_clock_mono() + seconds;
    for (;;) {
        unsigned char b;
        if (read(sig_pipe[0], &b, 1) == 1) {
            lua_pushstring(L, b == SIGINT ? "SIGINT" : "SIGTERM");
            return 1;
        }
        double left = deadline - kc_clock_mono();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = sig_pipe[0], .events = POLLIN};
        int ms = isinf(left) || left > 1e6 ? 1000000000 : (int)ceil(left * 1000);
        if (poll(&p, 1, ms) < 0 && errno != EINTR)
            return kc_lua_errorf(L, "wait_for_signal: %s", strerror(errno));
    }
}

/* core.clock() -> seconds, kc_clock_mono (os.clock is CPU time, os.time whole seconds) */
static int l_clock(lua_State *L)
{
    lua_pushnumber(L, kc_clock_mono());
    return 1;
}

void kc_lua_open_signal(lua_State *L)
{
    lua_pushcfunction(L, l_clock);
    lua_setfield(L, -2, "clock");
    lua_pushcfunction(L, l_catch_signals);
    lua_setfield(L, -2, "catch_signals");
    lua_pushcfunction(L, l_wait_for_signal);
    lua_setfield(L, -2, "wait_for_signal");
}
