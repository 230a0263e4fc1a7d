/* kc_log.h — logging in the manner of upstream's Python `logging` use.
 *
 * Lines go to stderr as `LEVEL:logger:message` (Python's basicConfig
 * format) unless a sink is installed. The default threshold is WARNING, as
 * upstream's. Logger names follow upstream ("kafkacrypto.crypto", ...), so
 * operators can grep for the same lines. Never log secret material. */
#ifndef KC_LOG_H
#define KC_LOG_H

#include <stdarg.h>

typedef enum kc_log_level {
    KC_LOG_DEBUG = 10,
    KC_LOG_INFO = 20,
    KC_LOG_WARNING = 30,
    KC_LOG_ERROR = 40,
    KC_LOG_CRITICAL = 50
} kc_log_level;

typedef void (*kc_log_sink)(void *ctx, kc_log_level level, const char *logger,
                            const char *message);

void kc_log(kc_log_level level, const char *logger, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void kc_logv(kc_log_level level, const char *logger, const char *fmt, va_list ap);

/* Threshold below which lines are dropped (default KC_LOG_WARNING). */
void kc_log_set_level(kc_log_level level);
kc_log_level kc_log_get_level(void);
int kc_log_enabled(kc_log_level level);

/* Replaces the stderr writer (NULL restores it). The sink is called with
 * the log lock held: it must not log itself. */
void kc_log_set_sink(kc_log_sink sink, void *ctx);

/* Parses "DEBUG", "info", "30", ... Returns 0 on success. */
int kc_log_level_parse(const char *text, kc_log_level *out);
const char *kc_log_level_name(kc_log_level level);

#endif
