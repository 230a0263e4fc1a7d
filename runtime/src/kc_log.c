#include "kc_log.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static kc_log_level threshold = KC_LOG_WARNING;
static kc_log_sink current_sink;
static void *current_ctx;

const char *kc_log_level_name(kc_log_level level)
{
    if (level >= KC_LOG_CRITICAL) return "CRITICAL";
    if (level >= KC_LOG_ERROR) return "ERROR";
    if (level >= KC_LOG_WARNING) return "WARNING";
    if (level >= KC_LOG_INFO) return "INFO";
    return "DEBUG";
}

int kc_log_level_parse(const char *text, kc_log_level *out)
{
    static const struct { const char *name; kc_log_level level; } names[] = {
        {"DEBUG", KC_LOG_DEBUG}, {"INFO", KC_LOG_INFO}, {"WARNING", KC_LOG_WARNING},
        {"WARN", KC_LOG_WARNING}, {"ERROR", KC_LOG_ERROR}, {"CRITICAL", KC_LOG_CRITICAL},
    };
    if (!text || !*text)
        return -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(text, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    char *end;
    long v = strtol(text, &end, 10);
    if (*end != '\0' || v < 0 || v > 100)
        return -1;
    *out = (kc_log_level)v;
    return 0;
}

void kc_log_set_level(kc_log_level level) { threshold = level; }
kc_log_level kc_log_get_level(void) { return threshold; }
int kc_log_enabled(kc_log_level level) { return level >= threshold; }

void kc_log_set_sink(kc_log_sink sink, void *ctx)
{
    pthread_mutex_lock(&log_lock);
    current_sink = sink;
    current_ctx = ctx;
    pthread_mutex_unlock(&log_lock);
}

void kc_logv(kc_log_level level, const char *logger, const char *fmt, va_list ap)
{
    if (level < threshold)
        return;
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    pthread_mutex_lock(&log_lock);
    if (current_sink)
        current_sink(current_ctx, level, logger, msg);
    else
        fprintf(stderr, "%s:%s:%s\n", kc_log_level_name(level), logger, msg);
    pthread_mutex_unlock(&log_lock);
}

void kc_log(kc_log_level level, const char *logger, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kc_logv(level, logger, fmt, ap);
    va_end(ap);
}
