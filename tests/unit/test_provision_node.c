/* Node files written from passwords, as simple-provision writes them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "kc_chain.h"
#include "kc_log.h"
#include "kc_provision_node.h"
#include "kc_store.h"
#include "kc_test.h"



static kc_value load(kc_store *s, const char *section, const char *name)
{
    kc_value v = kc_value_none();
    assert_int_equal(kc_store_load_value(s, section, name, &v, NULL), KC_OK);
    return v;
}

/* The chain in the node file validates under the root in the node file for
 * `usage` on `root`, and not for `bad_usage`. */
static void check_node(const char *node, const char *root, const char *usage,
                       const char *bad_usage)
{
    char name[64];
    snprintf(name, sizeof name, "%s.config", node);
    char *path = tc_path(tc_dir, name);
    kc_store *s;
    kc_store_options so = {.kafka = true, .keep_log_level = true};
    assert_int_equal(kc_store_open(&s, path, NULL, &so, NULL), KC_OK);
    kc_value chain = load(s, "chains", "chain0"), rot = load(s, "allowlist", "rot0");
    kc_value maxage = load(s, "crypto", "maxage"), ck = load(s, NULL, "cryptokey");
    assert_int_equal(chain.type, KC_VALUE_BYTES);
    assert_int_equal(maxage.i, 316224000);
    assert_int_equal(strncmp((const char *)ck.data, "file#", 5), 0);
    kc_value tmp = kc_value_none();
    assert_int_equal(kc_store_load_value(s, "allowlist", "temporary", &tmp, NULL), KC_ERR_NOTFOUND);
    kc_bytes entry = {rot.data, rot.len};
    kc_chain_list list = {&entry, 1};
    assert_int_equal(kc_chain_process(chain.data, chain.len, root, usage, &list, NULL, 1.9e9, NULL,
                                      NULL), KC_OK);
    assert_int_not_equal(kc_chain_process(chain.data, chain.len, root, bad_usage, &list, NULL,
                                          1.9e9, NULL, NULL), KC_OK);
    assert_int_not_equal(kc_chain_process(chain.data, chain.len, "other", usage, &list, NULL,
                                          1.9e9, NULL, NULL), KC_OK);
    snprintf(name, sizeof name, "%s.seed", node);
    char *seed = tc_path(tc_dir, name);
    struct stat sb;
    assert_int_equal(stat(seed, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    kc_value *vals[] = {&chain, &rot, &maxage, &ck};
    for (int i = 0; i < 4; i++)
        kc_value_clear(vals[i]);
    kc_store_close(s);
    free(path);
    free(seed);
}

static void test_roles_and_topics(void **state)
{
    const char *topics[] = {"sensor.temp", "sensor.humidity", "metrics"};
    kc_provision_request r = {.dir = tc_dir, .node_id = "p1", .role = KC_ROLE_PRODUCER,
                              .rot_password = "correct horse battery staple",
                              .prov_password = "provision-pw", .topics = topics, .ntopics = 3,
                              .pathlen = 1, .now = 1.8e9};
    kc_err err;
    assert_int_equal(kc_provision_node(&r, &err), KC_OK);
    check_node("p1", "sensor", "key-encrypt", "key-encrypt-request");
    check_node("p1", "metrics", "key-encrypt", "key-encrypt-subscribe");
    r.node_id = "c1";
    r.role = KC_ROLE_CONSUMER_LIMITED;
    assert_int_equal(kc_provision_node(&r, &err), KC_OK);
    check_node("c1", "sensor", "key-encrypt-subscribe", "key-encrypt-request");
}

static void test_bad_requests(void **state)
{
    kc_provision_request r = {.dir = tc_dir, .node_id = "n", .role = KC_ROLE_CONSUMER,
                              .rot_password = "short", .prov_password = "provision-pw"};
    kc_err err;
    assert_int_equal(kc_provision_node(&r, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "12 or more"));
    r.rot_password = "correct horse battery staple";
    r.prov_password = "pw";
    assert_int_equal(kc_provision_node(&r, &err), KC_ERR_INVALID);
    r.prov_password = "provision-pw";
    r.node_id = "../escape";
    assert_int_equal(kc_provision_node(&r, &err), KC_ERR_INVALID);
}

int main(void)
{
    kc_log_set_level(KC_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roles_and_topics, tc_setup_dir, tc_teardown_dir),
        cmocka_unit_test_setup_teardown(test_bad_requests, tc_setup_dir, tc_teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
