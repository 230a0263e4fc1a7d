/* kafkacrypto — the host binary: global options, then a command. */
#include <dirent.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host.h"
#include "kafkacrypto.h"
#include "kc_broker.h"
#include "kc_file.h"

static const char USAGE[] =
    "usage: kafkacrypto [-c FILE] [--broker HOST:PORT] [--log-level LEVEL]\n"
    "                   [--set NAME=VALUE]... COMMAND [ARGS...]\n"
    "commands:\n"
    "  run SCRIPT.lua [ARGS...]  run a Lua script with the kafkacrypto module\n"
    "  broker [--port N] [--bootstrap-file FILE] [--topic NAME[:PARTITIONS]]...\n"
    "                            run a Kafka broker on 127.0.0.1 until SIGINT/SIGTERM\n"
    "  demo                      show key exchange and encryption on an embedded broker\n"
    "  TOOL [ARGS...]            run the tool script TOOL.lua of the scripts directory\n"
    "options:\n"
    "  -c FILE             settings file (default: ./kafkacrypto.cfg when present)\n"
    "  --broker HOST:PORT  Kafka bootstrap servers (default: an embedded broker)\n"
    "  --log-level LEVEL   DEBUG, INFO, WARNING (default) or ERROR\n"
    "  --set NAME=VALUE    any setting of kafkacrypto.cfg, e.g. tunables.crypto_sub_interval=30\n"
    "  -h, --help          this text      --version   the version\n";

/* First "-- text" line of a script, for the list of tools. */
static void describe(const char *path, char *out, size_t n)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "-- ", 3) == 0) {
            line[strcspn(line, "\r\n")] = '\0';
            snprintf(out, n, "%.*s", (int)(n - 1), line + 3);
            break;
        }
    fclose(f);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

void kc_host_usage(const kc_host *h, FILE *out)
{
    fputs(USAGE, out);
    struct dirent **list;
    int n = h && h->scripts_dir ? scandir(h->scripts_dir, &list, NULL, by_name) : -1;
    int shown = 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(list[i]->d_name);
        if (len > 4 && strcmp(list[i]->d_name + len - 4, ".lua") == 0 &&
            list[i]->d_name[0] != '_' && list[i]->d_name[0] != '.') {
            char path[PATH_MAX], what[200];
            snprintf(path, sizeof path, "%s/%s", h->scripts_dir, list[i]->d_name);
            describe(path, what, sizeof what);
            if (!shown++)
                fprintf(out, "tools (in %s):\n", h->scripts_dir);
            fprintf(out, "  %-24.*s  %s\n", (int)(len - 4), list[i]->d_name, what);
        }
        free(list[i]);
    }
    if (n >= 0)
        free(list);
}

int kc_host_usage_error(const kc_host *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kafkacrypto: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    kc_host_usage(h, stderr);
    return KC_EXIT_USAGE;
}

static int has_init(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/lua/kafkacrypto/init.lua", dir);
    return kc_file_exists(path);
}

char *kc_host_find_home(const char *exe)
{
    char dir[PATH_MAX], candidate[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", exe);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    const char *tails[] = {"/..", "/../share/kafkacrypto"};
    for (size_t i = 0; slash && i < 2; i++) {
        snprintf(candidate, sizeof candidate, "%s%s", dir, tails[i]);
        char *real = realpath(candidate, NULL);
        if (real && has_init(real))
            return real;
        free(real);
    }
#ifdef KC_SOURCE_DIR
    if (has_init(KC_SOURCE_DIR))
        return strdup(KC_SOURCE_DIR);
#endif
    return NULL;
}

static int load_settings(kc_host *h, const char *file)
{
    kc_err err;
    const char *path = file ? file : kc_file_exists("kafkacrypto.cfg") ? "kafkacrypto.cfg" : NULL;
    if (path && kc_settings_load(&h->settings, path, &err) != KC_OK) {
        fprintf(stderr, "kafkacrypto: %s\n", err.msg);
        return KC_EXIT_FAILED;
    }
    return KC_EXIT_OK;
}

/* The value of an option given as "--opt VALUE" or "--opt=VALUE". */
static const char *option_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] != '\0' || *i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

int main(int argc, char **argv)
{
    static kc_host host;
    kc_host *h = &host;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    h->exe = n > 0 ? exe : argv[0];
    h->home = kc_host_find_home(h->exe);
    kc_settings_init(&h->settings);

    /* Global options. Settings given here are applied after the file's. */
    struct { const char *name; const char *value; } sets[argc];
    int nsets = 0, i = 1, status;
    const char *cfg = NULL;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help") || !strcmp(a, "--version"))
            break;
        if (!strcmp(a, "-c")) {
            if (i + 1 >= argc)
                return kc_host_usage_error(h, "option -c needs a file name");
            cfg = argv[++i];
        } else if ((v = option_value(argc, argv, &i, "--broker")))
            sets[nsets].name = "broker", sets[nsets++].value = v;
        else if ((v = option_value(argc, argv, &i, "--log-level")))
            sets[nsets].name = "log_level", sets[nsets++].value = v;
        else if ((v = option_value(argc, argv, &i, "--set")))
            sets[nsets].name = NULL, sets[nsets++].value = v;
        else
            return kc_host_usage_error(h, "bad option '%s'", a);
    }
    int command = i;
    if ((status = load_settings(h, cfg)) != KC_EXIT_OK)
        goto out;
    for (int k = 0; k < nsets; k++) {
        char name[256];
        const char *value = sets[k].value;
        if (sets[k].name) {
            snprintf(name, sizeof name, "%s", sets[k].name);
        } else {   /* --set NAME=VALUE */
            const char *eq = strchr(value, '=');
            if (!eq || eq == value || (size_t)(eq - value) >= sizeof name) {
                status = kc_host_usage_error(h, "--set %s: expected NAME=VALUE", value);
                goto out;
            }
            snprintf(name, sizeof name, "%.*s", (int)(eq - value), value);
            value = eq + 1;
        }
        kc_err err;
        if (kc_settings_set(&h->settings, name, value, "command line", &err) != KC_OK) {
            status = kc_host_usage_error(h, "%s", err.msg);
            goto out;
        }
    }
    kc_err err;
    if (kc_settings_check(&h->settings, &err) != KC_OK) {
        if (strncmp(err.msg, "command line", 12) == 0) {
            status = kc_host_usage_error(h, "%s", err.msg);
        } else {
            fprintf(stderr, "kafkacrypto: %s\n", err.msg);
            status = KC_EXIT_FAILED;
        }
        goto out;
    }
    kc_log_set_level(h->settings.log_level);
    if (h->settings.scripts_dir)
        h->scripts_dir = strdup(h->settings.scripts_dir);
    else if (h->home && asprintf(&h->scripts_dir, "%s/scripts", h->home) < 0)
        h->scripts_dir = NULL;

    const char *cmd = command < argc ? argv[command] : NULL;
    if (!cmd) {
        status = kc_host_usage_error(h, "no command given");
    } else if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        kc_host_usage(h, stdout);
        status = KC_EXIT_OK;
    } else if (!strcmp(cmd, "--version")) {
        printf("kafkacrypto %s\n", kc_version());
        status = KC_EXIT_OK;
    } else if (!strcmp(cmd, "run")) {
        if (command + 1 < argc && (!strcmp(argv[command + 1], "--help") ||
                                   !strcmp(argv[command + 1], "-h"))) {
            printf("usage: kafkacrypto [GLOBAL OPTIONS] run SCRIPT.lua [ARGS...]\n"
                   "  Runs SCRIPT.lua with the kafkacrypto Lua module (require \"kafkacrypto\");\n"
                   "  ARGS are the script's `...` and `arg`. The exit status is the script's\n"
                   "  os.exit status, 0 when it ends, 1 on an uncaught error.\n"
                   "  See `kafkacrypto --help` for the global options.\n");
            status = KC_EXIT_OK;
        } else if (command + 1 >= argc)
            status = kc_host_usage_error(h, "run: no script given");
        else if (access(argv[command + 1], R_OK) != 0)
            status = kc_host_usage_error(h, "run: cannot read script '%s'", argv[command + 1]);
        else
            status = kc_host_run(h, argv[command + 1], argc - command - 2, argv + command + 2);
    } else if (!strcmp(cmd, "broker")) {
        status = kc_host_broker(h, argc - command - 1, argv + command + 1);
    } else if ((status = kc_host_tool(h, cmd, argc - command - 1, argv + command + 1)) < 0) {
        if (!strcmp(cmd, "demo")) {
            printf("kafkacrypto %s: the demo (scripts/demo.lua) is not written yet.\n"
                   "Meanwhile: kafkacrypto run SCRIPT.lua, kafkacrypto broker.\n", kc_version());
            status = KC_EXIT_OK;
        } else {
            status = kc_host_usage_error(h, "unknown command '%s'", cmd);
        }
    }
out:
    kc_broker_embedded_stop();
    kc_settings_free(&h->settings);
    free(h->home);
    free(h->scripts_dir);
    return status;
}
