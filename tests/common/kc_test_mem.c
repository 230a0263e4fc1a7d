#include "kc_test_mem.h"

#include <linux/capability.h>
#include <msgpack.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "kc_keyidx.h"
#include "kc_mp.h"
#include "kc_node.h"
#include "kc_serde.h"
#include "kc_test.h"
#include "kc_test_fixture.h"
#include "kc_test_node.h"

size_t tc_mappings(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        abort();
    size_t n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

size_t tc_locked_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        abort();
    char line[256];
    size_t kib = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmLck: %zu kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

void tc_limit_memlock(size_t bytes)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) != 0)
        abort();
    d[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
    if (syscall(SYS_capset, &h, d) != 0)
        abort();
    struct rlimit rl;
    if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0)
        abort();
    rl.rlim_cur = bytes;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < bytes)
        rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0)
        abort();
}

char *tc_node_with_oldkeys(const char *dir, const char *node, const char *root, size_t n,
                           kc_keyidx *oldest_ki, uint8_t oldest_secret[KC_SECRET_BYTES])
{
    char *config = tc_provision(dir, node, KC_ROLE_PRODUCER, "old keys root password", 1);
    kc_err err;
    kc_node *nd = tc_open_node(config, 0.01);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double now = (double)ts.tv_sec, span = 6 * 86400.0;
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    msgpack_pack_map(&mo.pk, 1);
    kc_mp_pack_text(&mo.pk, "pgens");
    msgpack_pack_array(&mo.pk, n);
    for (size_t i = 0; i < n; i++) {
        uint8_t ki[32], secret[KC_SECRET_BYTES];
        randombytes_buf(ki, sizeof ki);
        randombytes_buf(secret, sizeof secret);
        if (i == 0) {
            kc_keyidx_from_bytes(oldest_ki, ki, sizeof ki);
            memcpy(oldest_secret, secret, sizeof secret);
        }
        msgpack_pack_array(&mo.pk, 4);
        kc_mp_pack_text(&mo.pk, root);
        kc_mp_pack_bin(&mo.pk, ki, sizeof ki);
        kc_mp_pack_bin(&mo.pk, secret, sizeof secret);
        msgpack_pack_double(&mo.pk, now - span + span * (double)i / (double)n);
        sodium_memzero(secret, sizeof secret);
    }
    kc_buf wire = KC_BUF_INIT;
    char topic[256];
    snprintf(topic, sizeof topic, "%s.data", root);
    /* The records, then one new producer key: saving it saves them all. */
    if (kc_mp_out_status(&mo) != KC_OK ||
        kc_serde_import_pgens(kc_node_serde(nd), mo.buf.data, mo.buf.len, &err) != KC_OK ||
        kc_serde_serialize(kc_node_serde(nd), KC_KIND_VALUE, topic, (const uint8_t *)"x", 1, &wire,
                           &err) != KC_OK) {
        fprintf(stderr, "test: old keys for %s: %s\n", node, err.msg);
        abort();
    }
    kc_buf_free(&wire);
    kc_mp_out_free(&mo);
    kc_node_close(nd);
    return config;
}
