/* The settings file (kafkacrypto.cfg) and the protocol tunables: values,
 * precedence, and errors that name the file, the line and the setting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_settings.h"
#include "kc_test.h"


static char *write_cfg(const char *text)
{
    char *path = tc_path(tc_dir, "kafkacrypto.cfg");
    tc_write_file(path, (const uint8_t *)text, strlen(text));
    return path;
}

/* Loads text and expects failure with a message containing each of the
 * NULL-terminated fragments. */
static void expect_error(const char *text, ...)
{
    char *path = write_cfg(text);
    kc_settings s;
    kc_err err;
    kc_settings_init(&s);
    if (kc_settings_load(&s, path, &err) == KC_OK)
        fail_msg("accepted: %s", text);
    va_list ap;
    va_start(ap, text);
    for (const char *frag; (frag = va_arg(ap, const char *));)
        if (!strstr(err.msg, frag))
            fail_msg("error '%s' lacks '%s'", err.msg, frag);
    va_end(ap);
    kc_settings_free(&s);
    free(path);
}

static void test_defaults(void **state)
{
    kc_settings s;
    kc_settings_init(&s);
    assert_null(s.broker);
    assert_null(s.file);
    assert_int_equal(s.log_level, KC_LOG_WARNING);
    assert_string_equal(s.tunables.topic_separator, ".");
    assert_string_equal(s.tunables.topic_suffix_reqs, ".reqs");
    assert_true(s.tunables.crypto_max_pgen_age == 604800);
    assert_true(s.tunables.mgmt_poll_interval == 500);
    assert_int_equal(s.tunables.mgmt_poll_records, 8);
    assert_true(s.tunables.mgmt_long_keyindex);
    assert_int_equal(s.tunables.deser_initial_wait_intervals, 10);
    assert_int_equal(kc_tunables_check(&s.tunables, NULL, NULL), KC_OK);
    kc_settings_free(&s);
}

static void test_load_values(void **state)
{
    char *path = write_cfg(
        "broker = [\"127.0.0.1:9092\", \"127.0.0.1:9093\"];\n"
        "node_config = \"nodes/a.config\";\n"
        "node_id = \"a\";\n"
        "log_level = \"info\";\n"
        "lua_path = [\"lib\", \"/abs/?.lua\"];\n"
        "lua_cpath = \"/abs/c\";\n"
        "scripts_dir = \"/opt/scripts\";\n"
        "policies = [\"p1.lua\", \"/etc/p2.lua\"];\n"
        "kafka = { security_protocol = \"PLAINTEXT\"; session_timeout_ms = 6000; "
        "enable_auto_commit = false; };\n"
        "rdkafka = [\"socket.timeout.ms=1000\"];\n"
        "tunables = { topic_separator = \"_\"; topic_suffix_subs = \"_subs\"; "
        "topic_suffix_keys = \"_keys\"; topic_suffix_reqs = \"_reqs\"; "
        "crypto_sub_interval = 1.5; mgmt_poll_records = 3; mgmt_long_keyindex = false; };\n");
    kc_settings s;
    kc_err err;
    kc_settings_init(&s);
    if (kc_settings_load(&s, path, &err) != KC_OK)
        fail_msg("%s", err.msg);
    assert_string_equal(s.file, path);
    assert_string_equal(s.broker, "127.0.0.1:9092,127.0.0.1:9093");
    char *want = tc_path(tc_dir, "nodes/a.config");
    assert_string_equal(s.node_config, want);
    free(want);
    assert_string_equal(s.node_id, "a");
    assert_int_equal(s.log_level, KC_LOG_INFO);
    char want_path[1024];
    snprintf(want_path, sizeof want_path, "%s/lib/?.lua;%s/lib/?/init.lua;/abs/?.lua;", tc_dir,
             tc_dir);
    assert_string_equal(s.lua_path, want_path);
    assert_string_equal(s.lua_cpath, "/abs/c/?.so;");
    assert_string_equal(s.scripts_dir, "/opt/scripts");
    assert_int_equal(s.npolicies, 2);
    want = tc_path(tc_dir, "p1.lua");
    assert_string_equal(s.policies[0], want);
    free(want);
    assert_string_equal(s.policies[1], "/etc/p2.lua");
    assert_true(s.tunables.crypto_sub_interval == 1.5);
    assert_int_equal(s.tunables.source[KC_T_CRYPTO_SUB_INTERVAL], KC_SOURCE_SETTINGS);
    assert_int_equal(s.tunables.source[KC_T_CRYPTO_RATCHET_INTERVAL], KC_SOURCE_DEFAULT);
    assert_int_equal(s.tunables.mgmt_poll_records, 3);
    assert_false(s.tunables.mgmt_long_keyindex);
    assert_string_equal(s.tunables.topic_suffix_keys, "_keys");

    /* Kafka options, translated for each kind of client */
    assert_int_equal(s.nkafka, 4);
    assert_non_null(strstr(s.kafka[0].origin, "kafkacrypto.cfg:9"));
    kc_kafka_config c;
    kc_kafka_config_init(&c);
    assert_int_equal(kc_settings_apply_kafka(&s, KC_KAFKA_CONSUMER, &c, &err), KC_OK);
    assert_string_equal(kc_kafka_config_get(&c, "bootstrap.servers"), "127.0.0.1:9092,127.0.0.1:9093");
    assert_string_equal(kc_kafka_config_get(&c, "security.protocol"), "PLAINTEXT");
    assert_string_equal(kc_kafka_config_get(&c, "session.timeout.ms"), "6000");
    assert_string_equal(kc_kafka_config_get(&c, "enable.auto.commit"), "false");
    assert_string_equal(kc_kafka_config_get(&c, "socket.timeout.ms"), "1000");
    kc_kafka_config_clear(&c);
    kc_settings_free(&s);
    free(path);
}

static void test_command_line_beats_file_beats_node_config(void **state)
{
    char *path = write_cfg("tunables = { crypto_sub_interval = 30; mgmt_flush_time = 4; };\n"
                           "log_level = \"ERROR\";\n");
    kc_settings s;
    kc_err err;
    kc_settings_init(&s);
    /* the command line is applied first here: order does not matter */
    assert_int_equal(kc_settings_set(&s, "tunables.crypto_sub_interval", "10", NULL, &err), KC_OK);
    assert_int_equal(kc_settings_load(&s, path, &err), KC_OK);
    assert_true(s.tunables.crypto_sub_interval == 10);
    assert_true(s.tunables.mgmt_flush_time == 4);
    /* a node config read afterwards fills only what nobody set */
    assert_int_equal(kc_tunables_set(&s.tunables, "mgmt_flush_time", "9", KC_SOURCE_NODE_CONFIG,
                                     "a.config", &err), KC_OK);
    assert_int_equal(kc_tunables_set(&s.tunables, "crypto_sub_interval", "9",
                                     KC_SOURCE_NODE_CONFIG, "a.config", &err), KC_OK);
    assert_int_equal(kc_tunables_set(&s.tunables, "crypto_ratchet_interval", "9",
                                     KC_SOURCE_NODE_CONFIG, "a.config", &err), KC_OK);
    assert_true(s.tunables.mgmt_flush_time == 4);
    assert_true(s.tunables.crypto_sub_interval == 10);
    assert_true(s.tunables.crypto_ratchet_interval == 9);
    /* command line over the file for plain settings too */
    assert_int_equal(s.log_level, KC_LOG_ERROR);
    assert_int_equal(kc_settings_set(&s, "log_level", "debug", NULL, &err), KC_OK);
    assert_int_equal(s.log_level, KC_LOG_DEBUG);
    assert_int_equal(kc_settings_set(&s, "broker", "h:1", NULL, &err), KC_OK);
    assert_string_equal(s.broker, "h:1");
    assert_int_equal(kc_settings_set(&s, "policies", "a.lua,b.lua", NULL, &err), KC_OK);
    assert_int_equal(s.npolicies, 2);
    assert_string_equal(s.policies[1], "b.lua");
    assert_int_equal(kc_settings_set(&s, "rdkafka", "client.id=x", NULL, &err), KC_OK);
    assert_int_equal(kc_settings_set(&s, "kafka.client_id", "y", NULL, &err), KC_OK);
    kc_kafka_config c;
    kc_kafka_config_init(&c);
    assert_int_equal(kc_settings_apply_kafka(&s, KC_KAFKA_PRODUCER, &c, &err), KC_OK);
    assert_string_equal(kc_kafka_config_get(&c, "client.id"), "y");   /* the later one */
    assert_string_equal(kc_kafka_config_get(&c, "bootstrap.servers"), "h:1");
    kc_kafka_config_clear(&c);

    assert_int_equal(kc_settings_set(&s, "nonsense", "1", NULL, &err), KC_ERR_NOTFOUND);
    assert_non_null(strstr(err.msg, "command line"));
    assert_non_null(strstr(err.msg, "nonsense"));
    /* whole-set checks wait until every setting is in */
    assert_int_equal(kc_settings_set(&s, "tunables.topic_separator", "_", NULL, &err), KC_OK);
    assert_int_equal(kc_settings_check(&s, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "command line: setting 'tunables.topic_suffix_subs'"));
    const char *sfx[] = {"tunables.topic_suffix_subs", "tunables.topic_suffix_keys",
                         "tunables.topic_suffix_reqs"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(kc_settings_set(&s, sfx[i], "_x", NULL, &err), KC_OK);
    assert_int_equal(kc_settings_check(&s, &err), KC_OK);
    assert_int_equal(kc_settings_set(&s, "tunables.topic_suffix_keys", "keys", NULL, &err), KC_OK);
    assert_int_equal(kc_settings_check(&s, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "command line: setting 'tunables.topic_suffix_keys': "
                                    "expected the separator '_'"));
    assert_int_equal(kc_settings_set(&s, "tunables.crypto_sub_interval", "soon", NULL, &err),
                     KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "command line: setting 'tunables.crypto_sub_interval': "
                                    "expected a number, got 'soon'"));
    assert_int_equal(kc_settings_set(&s, "log_level", "LOUD", NULL, &err), KC_ERR_INVALID);
    assert_int_equal(kc_settings_set(&s, "rdkafka", "noequals", NULL, &err), KC_ERR_INVALID);
    kc_settings_free(&s);
    free(path);
}

static void test_errors_name_file_line_setting(void **state)
{
    expect_error("broker = \"a:1\";\n\nbrokr = \"x\";\n", "kafkacrypto.cfg:3", "brokr",
                 "unknown setting", NULL);
    expect_error("log_level = \"LOUD\";\n", "kafkacrypto.cfg:1", "log_level", "LOUD", NULL);
    expect_error("node_id = 5;\n", "kafkacrypto.cfg:1", "node_id", "expected a string", NULL);
    expect_error("policies = [1, 2];\n", ":1", "policies", "strings", NULL);
    expect_error("\ntunables = {\n  crypto_sub_interval = \"60\";\n};\n", "kafkacrypto.cfg:3",
                 "tunables.crypto_sub_interval", "expected a number", NULL);
    expect_error("tunables = { crypto_sub_intervall = 60; };\n", ":1",
                 "tunables.crypto_sub_intervall", NULL);
    expect_error("tunables = { crypto_sub_interval = -1; };\n", "kafkacrypto.cfg:1: setting "
                 "'tunables.crypto_sub_interval': expected a non-negative number", NULL);
    expect_error("tunables = { mgmt_poll_records = 2.5; };\n", ":1", "mgmt_poll_records",
                 "whole", NULL);
    expect_error("tunables = { mgmt_long_keyindex = 1; };\n", ":1", "mgmt_long_keyindex",
                 "true or false", NULL);
    /* cross-field check: the line of the offending tunable */
    expect_error("tunables = {\n topic_separator = \"_\";\n};\n", "kafkacrypto.cfg:2: setting "
                 "'tunables.topic_suffix_subs': expected the separator '_'", "(the default)", NULL);
    expect_error("tunables = {\n topic_separator = \"_\";\n topic_suffix_subs = \".subs\";\n};\n",
                 "kafkacrypto.cfg:3: setting 'tunables.topic_suffix_subs'", NULL);
    expect_error("tunables = {\n mgmt_topic_chains = \"bad name\";\n};\n", "kafkacrypto.cfg:2",
                 "mgmt_topic_chains", NULL);
    expect_error("tunables = 3;\n", ":1", "tunables", "group", NULL);
    expect_error("kafka = { security_protocl = \"SSL\"; };\n", "kafkacrypto.cfg:1",
                 "security_protocl", NULL);
    expect_error("kafka = { session_timeout_ms = \"soon\"; };\n", ":1", "session_timeout_ms", NULL);
    expect_error("kafka = { produce_timeout = \"soon\"; };\n", ":1", "produce_timeout", NULL);
    expect_error("kafka = { nested = { a = 1; }; };\n", ":1", "kafka.nested", NULL);
    expect_error("rdkafka = [ \"socket.timeout.ms\" ];\n", ":1", "rdkafka", "property=value", NULL);
    expect_error("rdkafka = [ \"no.such.property=1\" ];\n", ":1", "no.such.property", NULL);
    /* syntax errors: file and line from libconfig */
    expect_error("broker = \"a:1\";\nnode_id = ;\n", "kafkacrypto.cfg:2", "syntax", NULL);
    expect_error("broker = \"a:1\";\nbroker = \"b:1\";\n", "kafkacrypto.cfg:2", NULL);

    kc_settings s;
    kc_err err;
    kc_settings_init(&s);
    char *missing = tc_path(tc_dir, "missing.cfg");
    assert_int_equal(kc_settings_load(&s, missing, &err), KC_ERR_NOTFOUND);
    assert_non_null(strstr(err.msg, "missing.cfg"));
    free(missing);
    kc_settings_free(&s);
}

/* The repository's sample documents every setting and every tunable, and
 * is valid once its disabled lines ('#') are enabled. */
static void test_sample_documents_everything(void **state)
{
    const char *src = getenv("KC_SOURCE_DIR");
    char *sample = tc_path(src ? src : ".", "kafkacrypto.cfg");
    kc_buf text = tc_read_file(sample);
    kc_settings s;
    kc_err err;

    /* as shipped: every setting disabled, so loading changes nothing */
    kc_settings_init(&s);
    assert_int_equal(kc_settings_load(&s, sample, &err), KC_OK);
    assert_null(s.broker);
    assert_int_equal(s.nkafka, 0);
    kc_settings_free(&s);

    kc_buf enabled = KC_BUF_INIT;
    int at_line_start = 1;
    for (size_t i = 0; i < text.len; i++) {
        if (!(at_line_start && text.data[i] == '#'))
            kc_buf_append_byte(&enabled, text.data[i]);
        at_line_start = text.data[i] == '\n';
    }
    char *path = tc_path(tc_dir, "enabled.cfg");
    tc_write_file(path, enabled.data, enabled.len);
    kc_settings_init(&s);
    if (kc_settings_load(&s, path, &err) != KC_OK)
        fail_msg("enabled sample: %s", err.msg);
    for (const char *const *n = kc_settings_names; *n; n++) {
        char pattern[64];
        snprintf(pattern, sizeof pattern, "\n#%s = ", *n);
        if (!memmem(text.data, text.len, pattern, strlen(pattern)))
            fail_msg("the sample does not show setting %s", *n);
    }
    for (int id = 0; id < KC_T_COUNT; id++) {
        assert_int_equal(s.tunables.source[id], KC_SOURCE_SETTINGS);
        /* the sample shows the defaults */
        kc_tunables defaults;
        kc_tunables_init(&defaults);
        char a[300], b[300];
        kc_tunables_format(&s.tunables, (kc_tunable_id)id, a, sizeof a);
        kc_tunables_format(&defaults, (kc_tunable_id)id, b, sizeof b);
        assert_string_equal(a, b);
    }
    assert_non_null(s.broker);
    assert_true(s.nkafka > 0);
    assert_true(s.npolicies > 0);
    kc_settings_free(&s);
    free(path);
    kc_buf_free(&enabled);
    kc_buf_free(&text);
    free(sample);
}

static void test_tunables_text(void **state)
{
    kc_tunables t;
    kc_err err;
    char out[64];
    kc_tunables_init(&t);
    assert_int_equal(kc_tunables_set(&t, "mgmt_long_keyindex", "1", KC_SOURCE_NODE_CONFIG, "n",
                                     &err), KC_OK);
    assert_true(t.mgmt_long_keyindex);
    assert_int_equal(kc_tunables_set(&t, "mgmt_long_keyindex", "False", KC_SOURCE_NODE_CONFIG,
                                     "n", &err), KC_OK);
    assert_false(t.mgmt_long_keyindex);
    assert_int_equal(kc_tunables_set(&t, "mgmt_long_keyindex", "yes", KC_SOURCE_NODE_CONFIG,
                                     "n.config", &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "n.config"));
    assert_int_equal(kc_tunables_set(&t, "crypto_sub_interval", "12x", KC_SOURCE_NODE_CONFIG,
                                     "n", &err), KC_ERR_INVALID);
    assert_int_equal(kc_tunables_set(&t, "nope", "1", KC_SOURCE_NODE_CONFIG, "n", &err),
                     KC_ERR_NOTFOUND);
    assert_int_equal(kc_tunables_set_number(&t, "topic_separator", 1, KC_SOURCE_NODE_CONFIG, "n",
                                            &err), KC_ERR_INVALID);
    assert_int_equal(kc_tunables_set_number(&t, "mgmt_flush_time", 0.25, KC_SOURCE_NODE_CONFIG,
                                            "n", &err), KC_OK);
    kc_tunables_format(&t, KC_T_MGMT_FLUSH_TIME, out, sizeof out);
    assert_string_equal(out, "0.25");
    kc_tunables_format(&t, KC_T_CRYPTO_MAX_PGEN_AGE, out, sizeof out);
    assert_string_equal(out, "604800");
    kc_tunables_format(&t, KC_T_MGMT_LONG_KEYINDEX, out, sizeof out);
    assert_string_equal(out, "False");
    char big[300];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(kc_tunables_set(&t, "mgmt_topic_chains", big, KC_SOURCE_NODE_CONFIG, "n",
                                     &err), KC_ERR_INVALID);
    assert_true(kc_topic_name_valid("a.b-c_D9"));
    assert_false(kc_topic_name_valid(".."));
    assert_false(kc_topic_name_valid(""));
    assert_false(kc_topic_name_valid("a b"));
    assert_false(kc_topic_name_valid("a/b"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_load_values),
        cmocka_unit_test(test_command_line_beats_file_beats_node_config),
        cmocka_unit_test(test_errors_name_file_line_setting),
        cmocka_unit_test(test_sample_documents_everything),
        cmocka_unit_test(test_tunables_text),
    };
    return cmocka_run_group_tests_name("settings", tests, tc_setup_dir, tc_teardown_dir);
}
