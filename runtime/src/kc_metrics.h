/* kc_metrics.h — a node's health in the Prometheus text format (0.0.4),
 * and an HTTP endpoint serving it (libmicrohttpd, one internal thread).
 * Turned on by `metrics_listen = "127.0.0.1:9464"` (kafkacrypto.cfg, or
 * the node option of the same name). */
#ifndef KC_METRICS_H
#define KC_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "kafkacrypto.h"
#include "kc_buf.h"

typedef enum kc_metric_type { KC_METRIC_COUNTER, KC_METRIC_GAUGE, KC_METRIC_HISTOGRAM } kc_metric_type;

typedef struct kc_label {
    const char *name, *value;
} kc_label;

/* The "# HELP" and "# TYPE" lines of kafkacrypto_NAME. */
kc_status kc_metrics_family(kc_buf *out, const char *name, const char *help, kc_metric_type type);
/* One sample: kafkacrypto_NAME{labels} VALUE (values escaped; INFINITY is +Inf). */
kc_status kc_metrics_sample(kc_buf *out, const char *name, const kc_label *labels, size_t nlabels,
                            double value);

/* Seconds, from 50 ms to 5 min: key exchange latencies. The last bucket is +Inf. */
#define KC_HISTOGRAM_BUCKETS 12
extern const double kc_histogram_bounds[KC_HISTOGRAM_BUCKETS - 1];

typedef struct kc_histogram {
    uint64_t bucket[KC_HISTOGRAM_BUCKETS]; /* observations per bucket, not cumulative */
    uint64_t count;
    double sum;
} kc_histogram;

void kc_histogram_add(kc_histogram *h, double seconds);
/* NAME_bucket{labels,le=...} (cumulative), NAME_sum and NAME_count. */
kc_status kc_metrics_histogram(kc_buf *out, const char *name, const kc_label *labels,
                               size_t nlabels, const kc_histogram *h);

/* "A.B.C.D:PORT" or "[V6]:PORT" (port 0-65535) into *ss; false otherwise. */
bool kc_metrics_parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len);

typedef struct kc_metric {
    const char *name;   /* without the kafkacrypto_ prefix */
    const char *help;
    kc_metric_type type;
    double value;       /* INFINITY is written +Inf */
} kc_metric;

/* Appends the samples, each labelled node="node_id" (escaped). */
kc_status kc_metrics_render(const char *node_id, const kc_metric *m, size_t n, kc_buf *out);

/* Fills out with the whole page (called on the server's thread). */
typedef kc_status (*kc_metrics_fill_fn)(void *ctx, kc_buf *out);

typedef struct kc_metrics_server kc_metrics_server;

/* Serves GET /metrics on listen ("HOST:PORT", HOST an IPv4 address or
 * [IPv6]; port 0: any free one, see kc_metrics_server_port). Other paths:
 * 404; other methods: 405. */
kc_status kc_metrics_server_start(const char *listen, kc_metrics_fill_fn fill, void *ctx,
                                  kc_metrics_server **out, kc_err *err);
int kc_metrics_server_port(const kc_metrics_server *s);
/* Stops it (waits for a request being served); NULL is fine. */
void kc_metrics_server_stop(kc_metrics_server *s);

#endif
