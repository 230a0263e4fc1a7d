#include "kc_metrics.h"

#include <arpa/inet.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static kc_status put(kc_buf *out, const char *s)
{
    return kc_buf_append(out, s, strlen(s));
}

/* A label value: backslash, double quote and newline escaped. */
static kc_status put_label(kc_buf *out, const char *v)
{
    kc_status st = KC_OK;
    for (const char *p = v; *p && st == KC_OK; p++) {
        if (*p == '\\')
            st = put(out, "\\\\");
        else if (*p == '"')
            st = put(out, "\\\"");
        else if (*p == '\n')
            st = put(out, "\\n");
        else
            st = kc_buf_append_byte(out, (uint8_t)*p);
    }
    return st;
}

static void format_value(char *buf, size_t cap, double v)
{
    if (isinf(v))
        snprintf(buf, cap, "%sInf", v > 0 ? "+" : "-");
    else
        snprintf(buf, cap, "%.17g", v);
}

kc_status kc_metrics_family(kc_buf *out, const char *name, const char *help, kc_metric_type type)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    char line[512];
    snprintf(line, sizeof line, "# HELP kafkacrypto_%s %s\n# TYPE kafkacrypto_%s %s\n", name, help,
             name, types[type]);
    return put(out, line);
}

kc_status kc_metrics_sample(kc_buf *out, const char *name, const kc_label *labels, size_t nlabels,
                            double value)
{
    char v[64];
    format_value(v, sizeof v, value);
    kc_status st = put(out, "kafkacrypto_");
    if (st == KC_OK)
        st = put(out, name);
    for (size_t i = 0; i < nlabels && st == KC_OK; i++) {
        st = put(out, i ? "," : "{");
        if (st == KC_OK)
            st = put(out, labels[i].name);
        if (st == KC_OK)
            st = put(out, "=\"");
        if (st == KC_OK)
            st = put_label(out, labels[i].value ? labels[i].value : "");
        if (st == KC_OK)
            st = put(out, "\"");
    }
    if (st == KC_OK && nlabels)
        st = put(out, "}");
    if (st == KC_OK)
        st = put(out, " ");
    if (st == KC_OK)
        st = put(out, v);
    if (st == KC_OK)
        st = put(out, "\n");
    return st;
}

const double kc_histogram_bounds[KC_HISTOGRAM_BUCKETS - 1] = {0.05, 0.1, 0.25, 0.5, 1,  2.5,
                                                              5,    10,  30,   60,  300};

void kc_histogram_add(kc_histogram *h, double seconds)
{
    size_t b = 0;
    while (b < KC_HISTOGRAM_BUCKETS - 1 && seconds > kc_histogram_bounds[b])
        b++;
    h->bucket[b]++;
    h->count++;
    h->sum += seconds;
}

#define MAX_LABELS 8

kc_status kc_metrics_histogram(kc_buf *out, const char *name, const kc_label *labels,
                               size_t nlabels, const kc_histogram *h)
{
    if (nlabels >= MAX_LABELS)
        return KC_ERR_INVALID;
    kc_label l[MAX_LABELS];
    memcpy(l, labels, nlabels * sizeof *l);
    char sample[128], le[32];
    snprintf(sample, sizeof sample, "%s_bucket", name);
    uint64_t cumulative = 0;
    kc_status st = KC_OK;
    for (size_t b = 0; b < KC_HISTOGRAM_BUCKETS && st == KC_OK; b++) {
        cumulative += h->bucket[b];
        if (b < KC_HISTOGRAM_BUCKETS - 1)
            snprintf(le, sizeof le, "%g", kc_histogram_bounds[b]);
        else
            snprintf(le, sizeof le, "+Inf");
        l[nlabels] = (kc_label){"le", le};
        st = kc_metrics_sample(out, sample, l, nlabels + 1, (double)cumulative);
    }
    snprintf(sample, sizeof sample, "%s_sum", name);
    if (st == KC_OK)
        st = kc_metrics_sample(out, sample, labels, nlabels, h->sum);
    snprintf(sample, sizeof sample, "%s_count", name);
    if (st == KC_OK)
        st = kc_metrics_sample(out, sample, labels, nlabels, (double)h->count);
    return st;
}

kc_status kc_metrics_render(const char *node_id, const kc_metric *m, size_t n, kc_buf *out)
{
    const kc_label node = {"node", node_id};
    kc_status st = KC_OK;
    for (size_t i = 0; i < n && st == KC_OK; i++) {
        st = kc_metrics_family(out, m[i].name, m[i].help, m[i].type);
        if (st == KC_OK)
            st = kc_metrics_sample(out, m[i].name, &node, 1, m[i].value);
    }
    return st;
}

struct kc_metrics_server {
    struct MHD_Daemon *d;
    kc_metrics_fill_fn fill;
    void *ctx;
    int port;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type,
                             const void *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result ok = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **req)
{
    kc_metrics_server *s = cls;
    static const char text[] = "text/plain; charset=utf-8";
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, text, "GET /metrics\n", 13);
    if (strcmp(url, "/metrics") != 0)
        return reply(c, MHD_HTTP_NOT_FOUND, text, "not found: try /metrics\n", 24);
    kc_buf page = KC_BUF_INIT;
    enum MHD_Result ok;
    if (s->fill(s->ctx, &page) == KC_OK)
        ok = reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", page.data, page.len);
    else
        ok = reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, text, "metrics unavailable\n", 20);
    kc_buf_free(&page);
    return ok;
}

bool kc_metrics_parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen)
        return false;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end || port < 0 || port > 65535)
        return false;
    char host[64];
    size_t hl = (size_t)(colon - listen);
    if (hl >= sizeof host)
        return false;
    memcpy(host, listen, hl);
    host[hl] = '\0';
    memset(ss, 0, sizeof *ss);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        host[hl - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
            return false;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        *len = sizeof *a;
        return true;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
        return false;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    *len = sizeof *a;
    return true;
}

kc_status kc_metrics_server_start(const char *listen, kc_metrics_fill_fn fill, void *ctx,
                                  kc_metrics_server **out, kc_err *err)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (!listen || !fill || !out || !kc_metrics_parse_listen(listen, &ss, &sl))
        return kc_err_set(err, KC_ERR_INVALID,
                          "metrics_listen: '%s': expected HOST:PORT (an IPv4 address or [IPv6])",
                          listen ? listen : "(none)");
    kc_metrics_server *s = calloc(1, sizeof *s);
    if (!s)
        return kc_err_set(err, KC_ERR_NOMEM, "metrics_listen: out of memory");
    s->fill = fill;
    s->ctx = ctx;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, 16u,
                            MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (!s->d) {
        free(s);
        return kc_err_set(err, KC_ERR_IO, "metrics_listen: cannot listen on %s", listen);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    *out = s;
    return KC_OK;
}

int kc_metrics_server_port(const kc_metrics_server *s)
{
    return s ? s->port : 0;
}

void kc_metrics_server_stop(kc_metrics_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->d);
    free(s);
}
