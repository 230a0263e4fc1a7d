/* A node's identity does not depend on where it is started (spec D1): its
 * files are found beside its config from any working directory and after
 * the directory is moved, a provisioned node whose .crypto or .seed is gone
 * refuses to start and writes nothing, oldkeys wrapped by another key are
 * never rewritten, and a node without a signing key never falls back to
 * short key indices. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kc_broker.h"
#include "kc_cryptokey.h"
#include "kc_file.h"
#include "kc_keyidx.h"
#include "kc_log.h"
#include "kc_node.h"
#include "kc_provision_node.h"
#include "kc_store.h"
#include "kc_test.h"
#include "kc_test_fixture.h"

static char *top;      /* the test's directory */
static char *nodes;    /* top/nodes: the node directory */
static char *scratch;  /* top/scratch: the working directory while nodes run */
static char cwd[4096];

static int setup(void **state)
{
    top = tc_tmpdir();
    nodes = tc_path(top, "nodes");
    scratch = tc_path(top, "scratch");
    assert_int_equal(mkdir(nodes, 0700), 0);
    assert_int_equal(mkdir(scratch, 0700), 0);
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(scratch), 0);
    return 0;
}

static int teardown(void **state)
{
    assert_int_equal(chdir(cwd), 0);
    tc_rmtree(top);
    free(top);
    free(nodes);
    free(scratch);
    return 0;
}

static void provision(const char *dir, const char *node)
{
    free(tc_provision(dir, node, KC_ROLE_PRODUCER, "root of trust password", -1));
}

static char *node_path(const char *dir, const char *node, const char *suffix)
{
    char name[128];
    snprintf(name, sizeof name, "%s%s", node, suffix);
    return tc_path(dir, name);
}

static kc_status open_node(kc_node **n, const char *config, const char *node_id, kc_err *err)
{
    kc_node_options o;
    kc_node_options_init(&o);
    o.config_path = config;
    o.node_id = node_id;
    return kc_node_open(n, &o, err);
}

static kc_node *opened(const char *config)
{
    kc_node *n = NULL;
    kc_err err = {0};
    if (open_node(&n, config, NULL, &err) != KC_OK)
        fail_msg("open %s: %s", config, err.msg);
    return n;
}

static kc_status produce(kc_node *n, kc_buf *wire, kc_err *err)
{
    return kc_serde_serialize(kc_node_serde(n), KC_KIND_VALUE, "sensor.temp",
                              (const uint8_t *)"21.5 C", 6, wire, err);
}

/* The names in dir, sorted, one per line (for before/after comparisons). */
static char *listing(const char *dir)
{
    struct dirent **e;
    int k = scandir(dir, &e, NULL, alphasort);
    assert_true(k >= 0);
    kc_buf b = KC_BUF_INIT;
    for (int i = 0; i < k; i++) {
        if (strcmp(e[i]->d_name, ".") && strcmp(e[i]->d_name, "..")) {
            kc_buf_append(&b, (const uint8_t *)e[i]->d_name, strlen(e[i]->d_name));
            kc_buf_append_byte(&b, '\n');
        }
        free(e[i]);
    }
    free(e);
    kc_buf_append_byte(&b, 0);
    return (char *)b.data;
}

static char *file_text(const char *path)
{
    kc_buf b = tc_read_file(path);
    kc_buf_append_byte(&b, 0);
    return (char *)b.data;
}

/* crypto.oldkeys of the config, opened with the .crypto file at `crypto`. */
static kc_buf oldkeys_plain(const char *config, const char *crypto)
{
    kc_store *s;
    kc_cryptokey *ck;
    kc_err err = {0};
    assert_int_equal(kc_store_open(&s, config, NULL, NULL, &err), KC_OK);
    kc_value v = kc_value_none();
    assert_int_equal(kc_store_load_value(s, "crypto", "oldkeys", &v, &err), KC_OK);
    assert_int_equal(v.type, KC_VALUE_BYTES);
    assert_int_equal(kc_cryptokey_open(&ck, crypto, NULL, 0, &err), KC_OK);
    kc_buf plain = KC_BUF_INIT;
    assert_int_equal(kc_cryptokey_unwrap_opaque(ck, v.data, v.len, &plain), KC_OK);
    kc_cryptokey_close(ck);
    kc_value_clear(&v);
    kc_store_close(s);
    return plain;
}

static void assert_holds_ki(const kc_buf *plain, const kc_keyidx *ki)
{
    assert_int_equal(ki->type, KC_KEYIDX_BYTES);
    assert_non_null(memmem(plain->data, plain->len, ki->bytes, ki->len));
}

/* The node's current key index for root "sensor" (long: it hashes the
 * signing key, so it also proves which .crypto the node uses). */
static kc_keyidx current_ki(kc_node *n)
{
    kc_keyidx ki;
    assert_int_equal(kc_serde_producer_state(kc_node_serde(n), "sensor", KC_KIND_VALUE, &ki, NULL),
                     KC_OK);
    return ki;
}

static void assert_same_key(kc_node *n, const char *crypto)
{
    kc_cryptokey *ck;
    kc_err err = {0};
    assert_int_equal(kc_cryptokey_open(&ck, crypto, NULL, 0, &err), KC_OK);
    kc_buf a = KC_BUF_INIT, b = KC_BUF_INIT;
    assert_int_equal(kc_cryptokey_get_id_spk(ck, &a, &err), KC_OK);
    assert_int_equal(kc_cryptokey_get_id_spk(kc_node_cryptokey(n), &b, &err), KC_OK);
    assert_int_equal(a.len, 32);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    kc_buf_free(&a);
    kc_buf_free(&b);
    kc_cryptokey_close(ck);
}

static void test_started_from_elsewhere_and_moved(void **state)
{
    provision(nodes, "prod");
    char *config = node_path(nodes, "prod", ".config");
    char *text = file_text(config);
    /* relative references, as upstream's simple-provision writes them */
    assert_non_null(strstr(text, "cryptokey : file#prod.crypto\n"));
    assert_non_null(strstr(text, "ratchet : file#prod.seed\n"));
    free(text);

    /* run 1 from the scratch directory */
    kc_buf wire = KC_BUF_INIT;
    kc_err err = {0};
    kc_node *n = opened(config);
    char *crypto = node_path(nodes, "prod", ".crypto");
    assert_same_key(n, crypto);
    assert_int_equal(produce(n, &wire, &err), KC_OK);
    kc_keyidx first = current_ki(n);
    kc_node_close(n);
    char *empty = listing(scratch);
    assert_string_equal(empty, "");
    free(empty);
    kc_buf plain = oldkeys_plain(config, crypto);
    assert_holds_ki(&plain, &first);
    kc_buf_free(&plain);

    /* run 2 after the directory moved: the same key, run 1's key kept */
    char *moved = tc_path(top, "moved");
    assert_int_equal(rename(nodes, moved), 0);
    char *config2 = node_path(moved, "prod", ".config"), *crypto2 = node_path(moved, "prod", ".crypto");
    n = opened(config2);
    assert_same_key(n, crypto2);
    assert_int_equal(produce(n, &wire, &err), KC_OK);
    kc_keyidx second = current_ki(n);
    assert_false(kc_keyidx_equal(&first, &second));
    kc_node_close(n);
    plain = oldkeys_plain(config2, crypto2);
    assert_holds_ki(&plain, &first);
    assert_holds_ki(&plain, &second);
    kc_buf_free(&plain);
    empty = listing(scratch);
    assert_string_equal(empty, "");
    free(empty);
    char *files = listing(moved);
    assert_string_equal(files, "prod.config\nprod.crypto\nprod.seed\n");
    free(files);
    assert_int_equal(rename(moved, nodes), 0);
    kc_buf_free(&wire);
    free(config);
    free(config2);
    free(crypto);
    free(crypto2);
    free(moved);
}

static void test_missing_files_of_a_provisioned_node_change_nothing(void **state)
{
    provision(nodes, "prod");
    char *config = node_path(nodes, "prod", ".config");
    const char *suffixes[2] = {".crypto", ".seed"};
    for (int i = 0; i < 2; i++) {
        char *gone = node_path(nodes, "prod", suffixes[i]), *kept = node_path(top, "kept", "");
        assert_int_equal(rename(gone, kept), 0);
        char *before = listing(nodes), *config_before = file_text(config);
        kc_node *n = NULL;
        kc_err err = {0};
        /* with and without the node ID (which the store would write) */
        for (int with_id = 0; with_id < 2; with_id++) {
            assert_int_equal(open_node(&n, config, with_id ? "prod" : NULL, &err), KC_ERR_NOTFOUND);
            assert_null(n);
            assert_non_null(strstr(err.msg, gone));
            assert_non_null(strstr(err.msg, "is missing"));
            assert_non_null(strstr(err.msg, "Restore the file from a backup"));
            assert_non_null(strstr(err.msg, "provision the node again"));
        }
        char *after = listing(nodes), *config_after = file_text(config), *cwd_files = listing(scratch);
        assert_string_equal(after, before);
        assert_string_equal(config_after, config_before);
        assert_string_equal(cwd_files, "");
        assert_int_equal(rename(kept, gone), 0);
        free(before);
        free(after);
        free(config_before);
        free(config_after);
        free(cwd_files);
        free(gone);
        free(kept);
    }
    kc_node_close(opened(config)); /* restored: it starts again */
    free(config);
}

static void set_option(const char *config, const char *section, const char *name,
                       const kc_value *v)
{
    kc_store *s;
    kc_err err = {0};
    assert_int_equal(kc_store_open(&s, config, NULL, NULL, &err), KC_OK);
    assert_int_equal(kc_store_store_value(s, section, name, v, &err), KC_OK);
    kc_store_close(s);
}

/* oldkeys that the node's .crypto cannot open (wrapped by another key) are
 * kept byte for byte; the node refuses to hand out a key it cannot save. */
static void test_oldkeys_are_never_rewrapped(void **state)
{
    provision(nodes, "prod");
    char *config = node_path(nodes, "prod", ".config");
    char *other = tc_path(top, "other.crypto");
    kc_cryptokey *ck;
    kc_err err = {0};
    assert_int_equal(kc_cryptokey_open(&ck, other, NULL, 0, &err), KC_OK);
    kc_buf foreign = KC_BUF_INIT;
    static const uint8_t empty_pgens[] = {0x81, 0xa5, 'p', 'g', 'e', 'n', 's', 0x90};
    assert_int_equal(kc_cryptokey_wrap_opaque(ck, empty_pgens, sizeof empty_pgens, &foreign, &err),
                     KC_OK);
    kc_cryptokey_close(ck);
    kc_value v = kc_value_bytes(foreign.data, foreign.len);
    set_option(config, "crypto", "oldkeys", &v);
    char *before = file_text(config);

    kc_node *n = opened(config);
    kc_buf wire = KC_BUF_INIT;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(produce(n, &wire, &err), KC_ERR_CRYPTO);
        assert_int_equal(wire.len, 0);
        assert_non_null(strstr(err.msg, "oldkeys was wrapped with a key other than"));
        assert_non_null(strstr(err.msg, "kept unchanged"));
    }
    kc_node_close(n);
    char *after = file_text(config);
    assert_string_equal(after, before);
    free(after);

    /* the rightful .crypto back (here: the option removed): it produces again */
    set_option(config, "crypto", "oldkeys", NULL);
    n = opened(config);
    assert_int_equal(produce(n, &wire, &err), KC_OK);
    kc_node_close(n);
    kc_buf_free(&wire);
    kc_buf_free(&foreign);
    free(before);
    free(other);
    free(config);
}

/* A new, unprovisioned node: its files are created beside its config, and
 * without a signing key it refuses to produce rather than use a short key
 * index, unless mgmt_long_keyindex is turned off. */
static void test_no_signing_key_never_uses_short_indices(void **state)
{
    char *config = node_path(nodes, "fresh", ".config");
    kc_node *n = NULL;
    kc_err err = {0};
    assert_int_equal(open_node(&n, config, "fresh", &err), KC_OK);
    char *files = listing(nodes), *cwd_files = listing(scratch);
    assert_string_equal(files, "fresh.config\nfresh.crypto\nfresh.seed\n");
    assert_string_equal(cwd_files, "");
    free(files);
    free(cwd_files);
    assert_int_equal(kc_cryptokey_num_spk(kc_node_cryptokey(n)), 0);
    kc_buf wire = KC_BUF_INIT;
    assert_int_equal(produce(n, &wire, &err), KC_ERR_STATE);
    assert_int_equal(wire.len, 0);
    assert_non_null(strstr(err.msg, "mgmt_long_keyindex"));
    assert_non_null(strstr(err.msg, "no signing key"));
    kc_node_close(n);

    kc_value no = kc_value_bool(false);
    set_option(config, NULL, "mgmt_long_keyindex", &no);
    n = opened(config);
    assert_int_equal(produce(n, &wire, &err), KC_OK);
    assert_true(wire.len > 3);
    assert_int_equal(wire.data[0], 0x01);
    assert_true(wire.data[2] < 0x80); /* [ki, ...]: ki a small msgpack integer */
    kc_node_close(n);
    kc_buf_free(&wire);
    free(config);
}

int main(void)
{
    kc_init();
    kc_log_set_level(getenv("KC_TEST_LOG") ? KC_LOG_INFO : KC_LOG_CRITICAL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_started_from_elsewhere_and_moved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_files_of_a_provisioned_node_change_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_oldkeys_are_never_rewrapped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_signing_key_never_uses_short_indices, setup,
                                        teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    kc_broker_embedded_stop();
    return rc;
}
