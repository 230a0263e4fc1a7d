/* host.h — pieces of the `kafkacrypto` binary. */
#ifndef KC_HOST_H
#define KC_HOST_H

#include <stdio.h>

#include "kc_settings.h"

/* Exit statuses */
#define KC_EXIT_OK 0
#define KC_EXIT_FAILED 1   /* the command ran and failed */
#define KC_EXIT_USAGE 2    /* unknown command or bad arguments */

typedef struct kc_host {
    const char *exe;        /* absolute path of this program */
    char *home;             /* directory holding lua/ and scripts/, or NULL */
    char *scripts_dir;      /* where `kafkacrypto TOOL` looks, or NULL */
    kc_settings settings;
} kc_host;

void kc_host_usage(const kc_host *h, FILE *out);
/* "kafkacrypto: MESSAGE" + usage on stderr; returns KC_EXIT_USAGE. */
int kc_host_usage_error(const kc_host *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Finds home: next to the binary (build/.. or ../share/kafkacrypto), then
 * the source tree it was built from. */
char *kc_host_find_home(const char *exe);

int kc_host_run(kc_host *h, const char *script, int argc, char **argv);
/* `kafkacrypto TOOL`: scripts/TOOL.lua, or -1 if there is no such tool. */
int kc_host_tool(kc_host *h, const char *tool, int argc, char **argv);
int kc_host_broker(kc_host *h, int argc, char **argv);

#endif
