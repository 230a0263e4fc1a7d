/* `kafkacrypto run SCRIPT` and `kafkacrypto TOOL`: a Lua script in a fresh
 * state with the kafkacrypto module. */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "kc_file.h"
#include "kc_lua.h"

int kc_host_run(kc_host *h, const char *script, int argc, char **argv)
{
    char *real = realpath(script, NULL);
    char *slash = real ? strrchr(real, '/') : NULL;
    if (slash)
        *slash = '\0';
    kc_lua_options opts = {&h->settings, h->home, slash ? real : NULL, h->exe};
    lua_State *L;
    kc_err err;
    int status = KC_EXIT_OK;
    if (kc_lua_new(&L, &opts, &err) != KC_OK) {
        fprintf(stderr, "kafkacrypto: %s\n", err.msg);
        free(real);
        return KC_EXIT_FAILED;
    }
    char *traceback = NULL;
    if (kc_lua_run_file(L, script, argc, argv, &traceback, &err) != KC_OK) {
        fprintf(stderr, "kafkacrypto: %s\n", err.msg);
        if (traceback)
            fprintf(stderr, "%s\n", traceback);
        status = KC_EXIT_FAILED;
    }
    free(traceback);
    kc_lua_close(L);
    free(real);
    return status;
}

int kc_host_tool(kc_host *h, const char *tool, int argc, char **argv)
{
    /* Tool names are plain words: no paths, no hidden or private files. */
    if (!h->scripts_dir || !isalnum((unsigned char)tool[0]))
        return -1;
    for (const char *p = tool; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
            return -1;
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s.lua", h->scripts_dir, tool) >= (int)sizeof path ||
        !kc_file_exists(path))
        return -1;
    return kc_host_run(h, path, argc, argv);
}
