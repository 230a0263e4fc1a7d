/* kc_store: NODE.config as upstream's CryptoStore / KafkaCryptoStore keep
 * it — new files, node IDs, typed loads and stores, locking against other
 * processes (ours and Python's), atomic rewrites, get_kafka_config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kc_file.h"
#include "kc_log.h"
#include "kc_store.h"
#include "kc_test.h"

static char *dir;
static char *path; /* dir/n1.config */
static const char *const no_ca[] = {NULL};
static const kc_store_options kafka = {.kafka = true, .keep_log_level = true, .ca_files = no_ca,
                                      .trust_temporary_rot = true};
static const kc_store_options plain = {.trust_temporary_rot = true};
static const kc_store_options untrusting = {0};

/* ---- helpers ------------------------------------------------------------------------- */

typedef struct captured {
    char lines[64][600];
    int n;
} captured;

static captured logs;

static void capture(void *ctx, kc_log_level level, const char *logger, const char *msg)
{
    captured *c = ctx;
    if (c->n < 64)
        snprintf(c->lines[c->n++], sizeof c->lines[0], "%s:%s:%s", kc_log_level_name(level),
                 logger, msg);
}

static bool logged(const char *needle)
{
    for (int i = 0; i < logs.n; i++)
        if (strstr(logs.lines[i], needle))
            return true;
    return false;
}

static int setup(void **state)
{
    dir = tc_tmpdir();
    path = tc_path(dir, "n1.config");
    memset(&logs, 0, sizeof logs);
    kc_log_set_sink(capture, &logs);
    return 0;
}

static int teardown(void **state)
{
    kc_log_set_sink(NULL, NULL);
    kc_log_set_level(KC_LOG_WARNING);
    tc_rmtree(dir);
    free(dir);
    free(path);
    return 0;
}

static void put(const char *text)
{
    tc_write_file(path, (const uint8_t *)text, strlen(text));
}

static char *contents(void)
{
    static kc_buf b;
    kc_buf_free(&b);
    b = tc_read_file(path);
    kc_buf_append_byte(&b, 0);
    return (char *)b.data;
}

static kc_store *opened(const char *node, const kc_store_options *opts)
{
    kc_store *s = NULL;
    kc_err err = {0};
    if (kc_store_open(&s, path, node, opts, &err) != KC_OK)
        fail_msg("open failed: %s", err.msg);
    return s;
}

static kc_value load(kc_store *s, const char *section, const char *name, kc_status want)
{
    kc_value v = kc_value_none();
    kc_err err = {0};
    kc_status st = kc_store_load_value(s, section, name, &v, &err);
    if (st != want)
        fail_msg("load %s/%s: status %d (%s), want %d", section ? section : "-", name, st,
                 err.msg, want);
    return v;
}

static void store(kc_store *s, const char *section, const char *name, kc_value v)
{
    kc_err err = {0};
    if (kc_store_store_value(s, section, name, &v, &err) != KC_OK)
        fail_msg("store %s: %s", name, err.msg);
}

static ino_t inode(void)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_ino;
}

#define NEW_CRYPTOSTORE                                                                     \
    "[DEFAULT]\nnode_id : n1\n\n[n1]\nmgmt_long_keyindex : True\n\n[n1-allowlist]\n"        \
    "temporary : base64#kwDEC5GSp3BhdGhsZW4CxCAaE7CuzdZ1HH36Q+QyhDJq0B28IKigCxVmCSqwpUJiDw==\n" \
    "\n[n1-denylist]\n\n[n1-crypto]\n\n"

/* ---- new files and node IDs --------------------------------------------------------- */

static void test_new_cryptostore_file(void **state)
{
    kc_store *s = opened("n1", &plain);
    assert_string_equal(kc_store_node_id(s), "n1");
    assert_string_equal(contents(), NEW_CRYPTOSTORE);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    char want[512];
    snprintf(want, sizeof want, "WARNING:kafkacrypto.cryptostore:Initializing new CryptoStore "
             "file=%s, nodeID=n1.", path);
    assert_true(logged(want));
    assert_true(logged("  Including a default/temporary root of trust."));
    assert_true(logged("  CryptoStore Initialized."));
    kc_store_close(s);
}

static void test_new_file_trusts_no_temporary_root_by_default(void **state)
{
    kc_store *s = opened("n1", &untrusting);
    assert_string_equal(contents(), "[DEFAULT]\nnode_id : n1\n\n[n1]\nmgmt_long_keyindex : True\n\n"
                                    "[n1-allowlist]\n\n[n1-denylist]\n\n[n1-crypto]\n\n");
    assert_false(logged("  Including a default/temporary root of trust."));
    assert_true(logged("  No root of trust included"));
    kc_store_close(s);
}

static void test_new_kafkacryptostore_file_and_ca_lookup(void **state)
{
    char *ca = tc_path(dir, "ca.pem");
    tc_write_file(ca, (const uint8_t *)"x", 1);
    const char *const cas[] = {"/nonexistent/ca.pem", ca, NULL};
    kc_store_options opts = {.kafka = true, .keep_log_level = true, .ca_files = cas,
                             .trust_temporary_rot = true};
    kc_store *s = opened("n1", &opts);
    char want[2048];
    snprintf(want, sizeof want,
             NEW_CRYPTOSTORE "[n1-kafka]\nbootstrap_servers : \nsecurity_protocol : SSL\n"
             "ssl_cafile : %s\n\n[n1-kafka-consumer]\n\n[n1-kafka-producer]\n\n"
             "[n1-kafka-crypto]\n\n[n1-kafka-crypto-consumer]\n\n[n1-kafka-crypto-producer]\n\n",
             ca);
    assert_string_equal(contents(), want);
    assert_true(logged("  Looking for system CA list."));
    kc_store_close(s);
    /* a set ssl_cafile is left alone; an empty one is looked up on every open */
    logs.n = 0;
    s = opened("n1", &opts);
    assert_false(logged("Looking for system CA list"));
    store(s, "kafka", "ssl_cafile", kc_value_text(""));
    kc_store_close(s);
    s = opened(NULL, &kafka);
    assert_true(logged("No system-wide CA list found. Update ssl_cafile in"));
    kc_store_close(s);
    free(ca);
}

static void test_node_id_rules(void **state)
{
    kc_store *s = NULL;
    kc_err err = {0};
    assert_int_equal(kc_store_open(&s, path, NULL, &plain, &err), KC_ERR_NOTFOUND);
    assert_non_null(strstr(err.msg, path));

    put("[DEFAULT]\nnode_id : other\n");
    assert_int_equal(kc_store_open(&s, path, "n1", &plain, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "Node ID mismatch in file"));
    assert_non_null(strstr(err.msg, "'other'"));
    assert_string_equal(contents(), "[DEFAULT]\nnode_id : other\n");

    s = opened(NULL, &plain); /* the file's node ID */
    assert_string_equal(kc_store_node_id(s), "other");
    kc_store_close(s);

    put("[x]\nk : v\n");
    assert_int_equal(kc_store_open(&s, path, NULL, &plain, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "no node_id"));
    s = opened("n1", &plain); /* given and absent: written, no initialisation */
    assert_string_equal(contents(), "[DEFAULT]\nnode_id : n1\n\n[x]\nk : v\n\n");
    kc_store_close(s);

    /* a node ID that loads as a number stays text for the store */
    put("[DEFAULT]\nnode_id : 123\n");
    s = opened(NULL, &plain);
    assert_string_equal(kc_store_node_id(s), "123");
    kc_value v = load(s, NULL, "node_id", KC_OK);
    assert_int_equal(v.type, KC_VALUE_INT);
    kc_store_close(s);

    assert_int_equal(kc_store_open(&s, path, "a\nb", &plain, &err), KC_ERR_INVALID);
    assert_int_equal(kc_store_open(&s, NULL, NULL, &plain, &err), KC_ERR_INVALID);
}

static void test_default_path_is_relative_to_cwd(void **state)
{
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    kc_store *s = NULL;
    kc_err err;
    kc_status st = kc_store_open(&s, NULL, "n1", &plain, &err);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(st, KC_OK);
    assert_string_equal(kc_store_path(s), "n1.config");
    kc_store_close(s);
    assert_true(kc_file_exists(path));
}

static void test_parse_errors_name_the_file_and_line(void **state)
{
    put("[DEFAULT]\nnode_id : n1\n[n1]\nkey = value\n");
    kc_store *s = NULL;
    kc_err err;
    assert_int_equal(kc_store_open(&s, path, "n1", &plain, &err), KC_ERR_INVALID);
    char want[600];
    snprintf(want, sizeof want, "file %s: line 4: ", path);
    assert_non_null(strstr(err.msg, want));
}

/* ---- values ---------------------------------------------------------------------------- */

static void test_store_and_reload_every_type(void **state)
{
    kc_store *s = opened("n1", &plain);
    store(s, "crypto", "maxage", kc_value_int(316224000));
    store(s, "crypto", "ratio", kc_value_float(0.143));
    store(s, NULL, "MGMT_LONG_KEYINDEX", kc_value_bool(false)); /* names are lower-cased */
    store(s, "chains", "chain0", kc_value_bytes("\x92\xc4\x01\x00", 4));
    store(s, NULL, "cryptokey", kc_value_text("file#n1.crypto"));
    store(s, NULL, "multi", kc_value_text("line one\nline two"));
    store(s, NULL, "pct", kc_value_text("50%%"));
    kc_value key = kc_value_bytes("\xfa\xfb", 2);
    kc_value val = kc_value_text("by bytes key");
    kc_err err;
    assert_int_equal(kc_store_store_keyed(s, "allowlist", &key, &val, &err), KC_OK);
    kc_store_close(s);
    assert_non_null(strstr(contents(), "[n1-allowlist]\ntemporary : base64#"));
    assert_non_null(strstr(contents(), "base64#+vs= : by bytes key\n"));
    assert_non_null(strstr(contents(), "multi : line one\n\tline two\n"));

    s = opened("n1", &plain);
    kc_value v = load(s, "crypto", "maxage", KC_OK);
    assert_int_equal(v.type, KC_VALUE_INT);
    assert_int_equal(v.i, 316224000);
    v = load(s, "crypto", "ratio", KC_OK);
    assert_true(v.type == KC_VALUE_FLOAT && v.f == 0.143);
    v = load(s, NULL, "mgmt_long_keyindex", KC_OK);
    assert_true(v.type == KC_VALUE_BOOL && v.i == 0);
    v = load(s, "chains", "chain0", KC_OK);
    assert_int_equal(v.type, KC_VALUE_BYTES);
    assert_memory_equal(v.data, "\x92\xc4\x01\x00", 4);
    kc_value_clear(&v);
    v = load(s, NULL, "multi", KC_OK);
    assert_string_equal((const char *)v.data, "line one\nline two");
    kc_value_clear(&v);
    v = load(s, NULL, "pct", KC_OK); /* "%%" reads back as '%', as in Python */
    assert_string_equal((const char *)v.data, "50%");
    kc_value_clear(&v);
    assert_int_equal(kc_store_load_keyed(s, "allowlist", &key, &v, &err), KC_OK);
    assert_string_equal((const char *)v.data, "by bytes key");
    kc_value_clear(&v);

    assert_int_equal(kc_store_store_value(s, "crypto", "maxage", NULL, &err), KC_OK);
    load(s, "crypto", "maxage", KC_ERR_NOTFOUND);
    kc_store_close(s);
}

static void test_refused_stores_change_nothing(void **state)
{
    kc_store *s = opened("n1", &plain);
    char *before = strdup(contents());
    kc_err err;
    static const struct { const char *name, *value, *why; } bad[] = {
        {"k", "50%", "'%'"},
        {"k", "a\rb", "carriage return"},
        {"a:b", "v", "':'"},
        {"", "v", "empty"},
        {"[x", "v", "'['"},
        {";x", "v", "';'"},
        {" x", "v", "whitespace"},
        {"a\nb", "v", "line break"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kc_value v = kc_value_text(bad[i].value);
        assert_int_equal(kc_store_store_value(s, NULL, bad[i].name, &v, &err), KC_ERR_INVALID);
        if (!strstr(err.msg, bad[i].why) || !strstr(err.msg, path))
            fail_msg("message '%s' should name the file and mention %s", err.msg, bad[i].why);
    }
    kc_value names[2] = {kc_value_text("good"), kc_value_text("bad")};
    kc_value values[2] = {kc_value_int(1), kc_value_text("%")};
    assert_int_equal(kc_store_store_values(s, NULL, 2, names, values, &err), KC_ERR_INVALID);
    load(s, NULL, "good", KC_ERR_NOTFOUND); /* all or nothing */
    kc_value v = kc_value_text("x");
    assert_int_equal(kc_store_store_value(s, "bad\nsection", "k", &v, &err), KC_ERR_INVALID);
    assert_string_equal(contents(), before);
    free(before);
    kc_store_close(s);
}

static void test_case_and_default_inheritance(void **state)
{
    put("[DEFAULT]\nnode_id : n1\nshared : 5\n"
        "[n1]\nUpper : 1\nlower : 2\n"
        "[n1-sec]\nshared : 5\nown : x\n"
        "[n1-other]\nshared : 6\n");
    kc_store *s = opened("n1", &plain);
    load(s, NULL, "Upper", KC_ERR_NOTFOUND); /* looked up as "upper" */
    kc_value v = load(s, NULL, "LOWER", KC_OK);
    assert_int_equal(v.i, 2);
    v = load(s, "nosuch", "shared", KC_OK); /* from [DEFAULT] */
    assert_int_equal(v.i, 5);

    kc_section sec;
    kc_err err;
    assert_int_equal(kc_store_load_section(s, NULL, true, &sec, &err), KC_OK);
    assert_int_equal(sec.n, 4); /* upper, lower, node_id, shared */
    assert_non_null(kc_section_get(&sec, "upper"));
    assert_int_equal(kc_section_get(&sec, "upper")->i, 1);
    assert_non_null(kc_section_get(&sec, "node_id"));
    kc_section_clear(&sec);

    assert_int_equal(kc_store_load_section(s, "sec", false, &sec, &err), KC_OK);
    assert_int_equal(sec.n, 1); /* shared repeats [DEFAULT], node_id is [DEFAULT]'s */
    assert_non_null(kc_section_get(&sec, "own"));
    kc_section_clear(&sec);
    assert_int_equal(kc_store_load_section(s, "other", false, &sec, &err), KC_OK);
    assert_int_equal(sec.n, 1);
    assert_int_equal(kc_section_get(&sec, "shared")->i, 6);
    kc_section_clear(&sec);
    assert_int_equal(kc_store_load_section(s, "nosuch", true, &sec, &err), KC_OK);
    assert_int_equal(sec.n, 2);
    kc_section_clear(&sec);
    assert_int_equal(kc_store_load_section(s, "nosuch", false, &sec, &err), KC_ERR_NOTFOUND);
    kc_store_close(s);
}

static void test_typing_of_file_values(void **state)
{
    put("[DEFAULT]\nnode_id : n1\n[n1]\na : 123\nb : 1_000\nc : 1e5\nd : nan\ne : True\n"
        "f : base64#!!\ng : base64#AAFi\nh : text\ni : 99999999999999999999\n"
        "j : %(a)s%%\nk : 50%\n1 : one\nTRUE : two\n");
    kc_store *s = opened("n1", &plain);
    kc_value v = load(s, NULL, "a", KC_OK);
    assert_true(v.type == KC_VALUE_INT && v.i == 123);
    v = load(s, NULL, "b", KC_OK);
    assert_true(v.type == KC_VALUE_INT && v.i == 1000);
    v = load(s, NULL, "c", KC_OK);
    assert_true(v.type == KC_VALUE_FLOAT && v.f == 1e5);
    v = load(s, NULL, "d", KC_OK);
    assert_true(v.type == KC_VALUE_FLOAT && isnan(v.f));
    v = load(s, NULL, "e", KC_OK);
    assert_true(v.type == KC_VALUE_BOOL && v.i == 1);
    v = load(s, NULL, "f", KC_OK);
    assert_int_equal(v.type, KC_VALUE_NONE);
    v = load(s, NULL, "g", KC_OK);
    assert_true(v.type == KC_VALUE_BYTES && v.len == 3);
    kc_value_clear(&v);
    v = load(s, NULL, "i", KC_OK);
    assert_int_equal(v.type, KC_VALUE_BIGINT);
    kc_value_clear(&v);
    v = load(s, NULL, "j", KC_OK);
    assert_string_equal((const char *)v.data, "123%");
    kc_value_clear(&v);
    kc_err err;
    assert_int_equal(kc_store_load_value(s, NULL, "k", &v, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "option 'k'"));
    /* keys are typed too: "1" is the int 1, "TRUE" the bool True, and
     * Python's dict treats them as one key (1 == True) */
    kc_value_clear(&v);
    kc_value one = kc_value_int(1);
    assert_int_equal(kc_store_load_keyed(s, NULL, &one, &v, &err), KC_OK);
    kc_value_clear(&v);
    kc_section sec;
    assert_int_equal(kc_store_load_section(s, NULL, false, &sec, &err), KC_ERR_INVALID);
    kc_store_close(s);
    put("[DEFAULT]\nnode_id : n1\n[n1]\n1 : one\nTRUE : two\n");
    s = opened("n1", &plain);
    assert_int_equal(kc_store_load_section(s, NULL, false, &sec, &err), KC_OK);
    assert_int_equal(sec.n, 1);
    assert_int_equal(sec.items[0].key.type, KC_VALUE_INT);
    assert_string_equal((const char *)sec.items[0].value.data, "two");
    kc_section_clear(&sec);
    kc_store_close(s);
}

/* ---- files: locks and atomic rewrites -------------------------------------------------- */

static int fcntl_lock(int fd, int cmd, short type)
{
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    return fcntl(fd, cmd, &fl);
}

static void test_second_opener_is_busy(void **state)
{
    kc_store *s = opened("n1", &plain), *t = NULL;
    kc_err err;
    /* in the same process too */
    assert_int_equal(kc_store_open(&t, path, "n1", &plain, &err), KC_ERR_BUSY);
    assert_non_null(strstr(err.msg, path));
    int ready[2], go[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    pid_t pid = fork();
    if (pid == 0) {
        /* Python's fcntl.lockf(LOCK_EX | LOCK_NB) is F_SETLK on the whole file */
        int fd = open(path, O_RDWR);
        char r = fcntl_lock(fd, F_SETLK, F_WRLCK) == 0 ? 'y' : 'n';
        (void)!write(ready[1], &r, 1);
        _exit(0);
    }
    char r = 0;
    assert_int_equal(read(ready[0], &r, 1), 1);
    assert_int_equal(r, 'n');
    waitpid(pid, NULL, 0);
    kc_store_close(s);

    /* another process holding the store (or a lockf lock) keeps us out */
    pid = fork();
    if (pid == 0) {
        kc_store *c = NULL;
        char ok = kc_store_open(&c, path, "n1", &plain, NULL) == KC_OK ? 'y' : 'n';
        (void)!write(ready[1], &ok, 1);
        (void)!read(go[0], &ok, 1);
        kc_store_close(c);
        _exit(0);
    }
    assert_int_equal(read(ready[0], &r, 1), 1);
    assert_int_equal(r, 'y');
    assert_int_equal(kc_store_open(&t, path, "n1", &plain, &err), KC_ERR_BUSY);
    assert_non_null(strstr(err.msg, "locked by another process"));
    assert_int_equal(write(go[1], "x", 1), 1);
    waitpid(pid, NULL, 0);
    s = opened("n1", &plain); /* free again once the other process is gone */
    kc_store_close(s);
    close(ready[0]);
    close(ready[1]);
    close(go[0]);
    close(go[1]);
}

static void test_python_lockf_interoperates(void **state)
{
    if (system("python3 -c 'import fcntl' >/dev/null 2>&1") != 0)
        skip();
    kc_store *s = opened("n1", &plain);
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import fcntl,sys; f=open(sys.argv[1],\"r+\"); "
             "fcntl.lockf(f.fileno(), fcntl.LOCK_EX|fcntl.LOCK_NB)' '%s' 2>/dev/null", path);
    assert_int_not_equal(system(cmd), 0); /* Python cannot lock what we hold */
    kc_store_close(s);
    assert_int_equal(system(cmd), 0);
    /* and we cannot open what Python holds */
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import fcntl,sys,time; f=open(sys.argv[1],\"r+\"); "
             "fcntl.lockf(f.fileno(), fcntl.LOCK_EX|fcntl.LOCK_NB); print(\"locked\", flush=True); "
             "sys.stdin.read()' '%s' >/dev/null", path);
    FILE *py = popen(cmd, "w");
    assert_non_null(py);
    kc_store *t = NULL;
    kc_err err;
    kc_status st = KC_OK;
    for (int i = 0; i < 100 && st != KC_ERR_BUSY; i++) { /* until Python has the lock */
        st = kc_store_open(&t, path, "n1", &plain, &err);
        if (st == KC_OK)
            kc_store_close(t);
        usleep(50000);
    }
    pclose(py);
    assert_int_equal(st, KC_ERR_BUSY);
}

static bool temp_files_left(void)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q tmp", dir);
    return system(cmd) == 0;
}

static void test_rewrite_keeps_mode_and_skips_no_ops(void **state)
{
    kc_store *s = opened("n1", &plain);
    assert_int_equal(chmod(path, 0640), 0);
    ino_t before = inode();
    store(s, NULL, "mgmt_long_keyindex", kc_value_bool(true)); /* unchanged: no rewrite */
    assert_true(inode() == before);
    store(s, NULL, "x", kc_value_int(1));
    assert_true(inode() != before);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0640);
    /* the lock moved to the new file */
    kc_store *t = NULL;
    assert_int_equal(kc_store_open(&t, path, "n1", &plain, NULL), KC_ERR_BUSY);
    kc_store_close(s);
    assert_false(temp_files_left());
}

static void test_kill_during_rewrites_leaves_old_or_new(void **state)
{
    kc_store *s = opened("n1", &plain);
    kc_store_close(s);
    /* two large states the writer alternates between */
    char *big_a = malloc(300001), *big_b = malloc(300001);
    memset(big_a, 'a', 300000);
    memset(big_b, 'b', 300000);
    big_a[300000] = big_b[300000] = 0;
    srand((unsigned)time(NULL));
    int killed_mid_write = 0;
    for (int round = 0; round < 12; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            kc_store *c = NULL;
            if (kc_store_open(&c, path, "n1", &plain, NULL) != KC_OK)
                _exit(1);
            for (unsigned i = 0;; i++)
                if (kc_store_store_value(c, NULL, "big",
                                         &(kc_value){KC_VALUE_TEXT, 0, 0, (uint8_t *)(i % 2 ? big_a : big_b),
                                                     300000, false}, NULL) != KC_OK)
                    _exit(2);
        }
        usleep(20000 + (useconds_t)(rand() % 80000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        assert_true(WIFSIGNALED(status));
        killed_mid_write += temp_files_left();
        /* it parses, the lock died with the writer, stale temporaries go */
        kc_store *r = opened("n1", &plain);
        assert_false(temp_files_left());
        kc_value v = kc_value_none();
        kc_err err;
        kc_status st = kc_store_load_value(r, NULL, "big", &v, &err);
        if (st == KC_OK) {
            assert_int_equal(v.len, 300000);
            assert_true(v.data[0] == v.data[299999]);
        }
        kc_value_clear(&v);
        kc_store_close(r);
    }
    free(big_a);
    free(big_b);
    if (getenv("KC_TEST_VERBOSE"))
        fprintf(stderr, "%d of 12 kills hit a rewrite in progress\n", killed_mid_write);
}

/* ---- start-up helpers ----------------------------------------------------------------------- */

/* The path of option `name`, resolved (spec D1). */
static char *file_option(kc_store *s, const char *name, const char *suffix)
{
    char *p = NULL;
    kc_err err = {0};
    if (kc_store_file_option(s, name, suffix, &p, &err) != KC_OK)
        fail_msg("file option %s: %s", name, err.msg);
    return p;
}

static void assert_in_dir(char *p, const char *name)
{
    char *want = tc_path(dir, name);
    assert_string_equal(p, want);
    free(want);
    free(p);
}

static void test_file_options(void **state)
{
    put("[DEFAULT]\nnode_id : n1\n[n1]\ncryptokey : file#keys/n1.crypto\nratchet : plain.seed\n"
        "bad : 5\nabs : file#/srv/x/n1.crypto\n");
    kc_store *s = opened("n1", &plain);
    char *p;
    kc_err err;
    /* relative paths are in the config's directory, whatever the cwd */
    assert_in_dir(file_option(s, "cryptokey", ".crypto"), "keys/n1.crypto");
    assert_in_dir(file_option(s, "ratchet", ".seed"), "plain.seed");
    p = file_option(s, "abs", ".x");
    assert_string_equal(p, "/srv/x/n1.crypto");
    free(p);
    assert_int_equal(kc_store_file_option(s, "bad", ".x", &p, &err), KC_ERR_INVALID);
    assert_null(p);
    /* a default is stored relative, as upstream's tools write it */
    assert_in_dir(file_option(s, "other", ".other"), "n1.other");
    assert_non_null(strstr(contents(), "other : file#n1.other\n"));
    assert_int_equal(kc_store_file_path(s, "unset", ".u", &p, &err), KC_OK);
    assert_in_dir(p, "n1.u");
    assert_null(strstr(contents(), "unset"));
    kc_store_close(s);
    /* a config named without a directory: relative to the cwd, as it is */
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    kc_status st = kc_store_open(&s, "n1.config", "n1", &plain, &err);
    p = NULL;
    if (st == KC_OK)
        st = kc_store_file_path(s, "cryptokey", ".crypto", &p, &err);
    kc_store_close(s);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(st, KC_OK);
    assert_string_equal(p, "keys/n1.crypto");
    free(p);
    const char *ref;
    size_t len;
    kc_value t = kc_value_text("file#x"), i = kc_value_int(1);
    assert_true(kc_store_file_ref(&t, &ref, &len));
    assert_int_equal(len, 1);
    assert_false(kc_store_file_ref(&i, &ref, &len));
}

/* kc_store_node_files succeeds with the two files in the test directory. */
static void assert_node_files(kc_store *s, const kc_store_file *files, const char *crypto,
                              const char *seed)
{
    char *paths[2];
    kc_err err = {0};
    assert_int_equal(kc_store_node_files(s, 2, files, paths, &err), KC_OK);
    assert_string_equal(paths[0], crypto);
    assert_string_equal(paths[1], seed);
    free(paths[0]);
    free(paths[1]);
}

/* A provisioned node (it holds a chain) never gets a new .crypto or .seed
 * silently: the missing file is named, with the way out, and the config is
 * not touched; an unprovisioned one gets relative defaults. */
static void test_missing_files_of_a_provisioned_node(void **state)
{
    static const kc_store_file files[2] = {{"cryptokey", ".crypto", false},
                                           {"ratchet", ".seed", true}};
    char *paths[2], *crypto = tc_path(dir, "n1.crypto"), *seed = tc_path(dir, "n1.seed");
    kc_err err;
    const char *configs[] = {
        "[DEFAULT]\nnode_id : n1\n\n[n1]\ncryptokey : file#n1.crypto\nratchet : file#n1.seed\n\n"
        "[n1-chains]\nchain0 : base64#AA==\n\n",
        /* legacy: the chain still in crypto; no cryptokey option */
        "[DEFAULT]\nnode_id : n1\n\n[n1]\nratchet : file#n1.seed\n\n[n1-crypto]\n"
        "chain : base64#AA==\n\n",
    };
    for (size_t c = 0; c < 2; c++) {
        put(configs[c]);
        char *before = strdup(contents());
        kc_store *s = opened("n1", &plain);
        for (int missing = 0; missing < 2; missing++) {
            tc_write_file(missing ? crypto : seed, (const uint8_t *)"x", 1);
            unlink(missing ? seed : crypto);
            assert_int_equal(kc_store_node_files(s, 2, files, paths, &err), KC_ERR_NOTFOUND);
            assert_null(paths[0]);
            assert_null(paths[1]);
            assert_non_null(strstr(err.msg, missing ? seed : crypto));
            assert_non_null(strstr(err.msg, "provisioned"));
            assert_non_null(strstr(err.msg, "Restore"));
            assert_non_null(strstr(err.msg, "provision the node again"));
            assert_string_equal(contents(), before);
        }
        tc_write_file(seed, (const uint8_t *)"x", 1);
        tc_write_file(crypto, (const uint8_t *)"x", 1);
        assert_node_files(s, files, crypto, seed);
        kc_store_close(s);
        free(before);
        unlink(crypto);
        unlink(seed);
    }
    /* a path that cannot be checked is not taken for a missing file */
    put("[DEFAULT]\nnode_id : n1\n\n[n1]\ncryptokey : file#n1.seed/n1.crypto\n\n[n1-chains]\n"
        "chain0 : base64#AA==\n\n");
    tc_write_file(seed, (const uint8_t *)"x", 1);
    kc_store *s = opened("n1", &plain);
    assert_int_equal(kc_store_node_files(s, 2, files, paths, &err), KC_ERR_IO);
    assert_non_null(strstr(err.msg, "cannot check the node's .crypto file"));
    kc_store_close(s);
    unlink(seed);
    /* a provisioned node that names no .seed (controller provisioning) may
     * create one; a new config names both, relative */
    const char *ok_configs[] = {
        "[DEFAULT]\nnode_id : n1\n\n[n1]\ncryptokey : file#n1.crypto\n\n[n1-chains]\n"
        "chain0 : base64#AA==\n\n",
        NULL,
    };
    for (size_t c = 0; c < 2; c++) {
        unlink(path);
        if (ok_configs[c]) {
            put(ok_configs[c]);
            tc_write_file(crypto, (const uint8_t *)"x", 1);
        }
        s = opened("n1", &plain);
        assert_int_equal(kc_store_is_provisioned(s), ok_configs[c] != NULL);
        assert_node_files(s, files, crypto, seed);
        kc_store_close(s);
        assert_non_null(strstr(contents(), "cryptokey : file#n1.crypto\n"));
        assert_non_null(strstr(contents(), "ratchet : file#n1.seed\n"));
        unlink(crypto);
    }
    free(crypto);
    free(seed);
}

static void test_legacy_migrations(void **state)
{
    put("[DEFAULT]\nnode_id : n1\n[n1]\n"
        "[n1-crypto]\nrot : base64#AQ==\nchainrot : base64#AQ==\nchain : base64#Ag==\nmaxage : 5\n"
        "[n1-provisioners]\np1 : base64#Aw==\n");
    kc_store *s = opened("n1", &plain);
    kc_err err;
    assert_int_equal(kc_store_migrate_legacy(s, &err), KC_OK);
    assert_int_equal(kc_store_migrate_provisioners(s, &err), KC_OK);
    kc_store_close(s);
    /* chainrot equal to rot is not copied; SHA256(0x03) as the key */
    assert_string_equal(contents(),
                        "[DEFAULT]\nnode_id : n1\n\n[n1]\n\n[n1-crypto]\nmaxage : 5\n\n"
                        "[n1-provisioners]\n\n[n1-allowlist]\nrot : base64#AQ==\n"
                        "base64#CE/tCLl4r019GWp0RqhrWACeY2thHbFiEbZamq3/KcU= : base64#Aw==\n\n"
                        "[n1-chains]\nchain0 : base64#Ag==\n\n");
}

static void test_log_level_from_the_crypto_section(void **state)
{
    put("[DEFAULT]\nnode_id : n1\n[n1-crypto]\nlog_level : DEBUG\n[n1-kafka]\nssl_cafile : x\n");
    kc_store_options opts = {.kafka = true, .ca_files = no_ca};
    kc_store *s = opened("n1", &opts);
    assert_int_equal(kc_log_get_level(), KC_LOG_DEBUG);
    kc_store_close(s);
    put("[DEFAULT]\nnode_id : n1\n[n1-crypto]\nlog_level : 20\n[n1-kafka]\nssl_cafile : x\n");
    s = opened("n1", &opts);
    assert_int_equal(kc_log_get_level(), KC_LOG_INFO);
    kc_store_close(s);
    put("[DEFAULT]\nnode_id : n1\n[n1-crypto]\nlog_level : loud\n[n1-kafka]\nssl_cafile : x\n");
    s = opened("n1", &opts);
    assert_int_equal(kc_log_get_level(), KC_LOG_WARNING);
    assert_true(logged("is not a logging level"));
    kc_store_close(s);
}

/* ---- get_kafka_config -------------------------------------------------------------------- */

static const char *prop(const kc_kafka_config *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->props[i].name, name) == 0)
            return c->props[i].value;
    return NULL;
}

static void test_kafka_config_precedence_and_unset(void **state)
{
    put("[DEFAULT]\nnode_id : n1\n"
        "[n1-kafka]\nbootstrap_servers : k1:9092\nsecurity_protocol : SSL\nssl_cafile : /ca\n"
        "client_id : base\nfetch_min_bytes : 5\nlinger_ms : 7\n"
        "[n1-kafka-consumer]\nclient_id : consumer\nenable_auto_commit : False\n"
        "[n1-kafka-crypto]\nclient_id : crypto\nfetch_min_bytes : 10\nssl_cafile : \n"
        "[n1-kafka-crypto-consumer]\nclient_id : crypto-consumer\n"
        "[n1-kafka-crypto-producer]\nsecurity_protocol : \nacks : all\n");
    kc_store *s = opened("n1", &kafka);
    kc_kafka_config c;
    kc_err err;
    assert_int_equal(kc_store_kafka_config(s, KC_KAFKA_CONSUMER, "crypto", &c, &err), KC_OK);
    assert_string_equal(prop(&c, "bootstrap.servers"), "k1:9092");
    assert_string_equal(prop(&c, "client.id"), "crypto-consumer");
    assert_string_equal(prop(&c, "fetch.min.bytes"), "10"); /* a number overrides (B13) */
    assert_null(prop(&c, "ssl.ca.location"));               /* an empty text unsets */
    assert_string_equal(prop(&c, "enable.auto.commit"), "false");
    assert_string_equal(prop(&c, "group.id"), "n1.kafkacrypto");
    assert_string_equal(prop(&c, "linger_ms"), "7"); /* a producer option: passed through */
    assert_int_equal(c.max_poll_records, 500);
    kc_kafka_config_clear(&c);

    assert_int_equal(kc_store_kafka_config(s, KC_KAFKA_CONSUMER, NULL, &c, &err), KC_OK);
    assert_string_equal(prop(&c, "client.id"), "consumer");
    assert_string_equal(prop(&c, "ssl.ca.location"), "/ca");
    assert_string_equal(prop(&c, "group.id"), "n1");
    kc_kafka_config_clear(&c);

    assert_int_equal(kc_store_kafka_config(s, KC_KAFKA_PRODUCER, "crypto", &c, &err), KC_OK);
    assert_null(prop(&c, "group.id"));
    assert_null(prop(&c, "security.protocol"));
    assert_string_equal(prop(&c, "request.required.acks"), "all");
    assert_string_equal(prop(&c, "queue.buffering.max.ms"), "7");
    assert_string_equal(prop(&c, "fetch_min_bytes"), "10"); /* a consumer option, passed through */
    assert_true(c.produce_timeout == 30);
    kc_kafka_config_clear(&c);
    kc_store_close(s);
}

static void test_kafka_config_mapping_and_warnings(void **state)
{
    kc_log_set_level(KC_LOG_INFO); /* an empty parameter removed is said at INFO */
    put("[DEFAULT]\nnode_id : n1\n"
        "[n1-kafka]\nbootstrap_servers : \napi_version : 2\nsasl.password : hunter2\n"
        "sasl_plain_password : p\ngroup_id : mine\nmax_poll_records : 10\n"
        "delivery.timeout.ms : 5000\nratio : 1.5\n"
        "[n1-kafka-producer]\nkeyblob : base64#AA==\n");
    kc_store *s = opened("n1", &kafka);
    kc_kafka_config c;
    kc_err err;
    assert_int_equal(kc_store_kafka_config(s, KC_KAFKA_CONSUMER, NULL, &c, &err), KC_OK);
    assert_null(prop(&c, "bootstrap.servers"));
    assert_true(logged("Warning: Removing empty parameter bootstrap.servers passed to confluent wrapper"));
    assert_null(prop(&c, "api_version"));
    assert_true(logged("Warning: Unsupported kafka-python parameter passed to confluent wrapper: api_version, 2"));
    assert_string_equal(prop(&c, "sasl.password"), "p"); /* the mapped name wins, as in a dict */
    assert_true(logged("Filtering out sasl.password:(hidden) from kafka config."));
    assert_false(logged("hunter2"));
    assert_string_equal(prop(&c, "group.id"), "mine");
    assert_string_equal(prop(&c, "ratio"), "1.5");
    assert_null(prop(&c, "max_poll_records"));
    assert_int_equal(c.max_poll_records, 10);
    kc_kafka_config_clear(&c);
    /* bytes have no librdkafka form */
    assert_int_equal(kc_store_kafka_config(s, KC_KAFKA_PRODUCER, NULL, &c, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "keyblob"));
    kc_value none = kc_value_none();
    store(s, "kafka-producer", "keyblob", none);
    assert_int_equal(kc_store_kafka_config(s, KC_KAFKA_PRODUCER, NULL, &c, &err), KC_OK);
    assert_true(c.produce_timeout == 5.0);
    assert_string_equal(prop(&c, "max_poll_records"), "10"); /* not local for producers */
    kc_kafka_config_clear(&c);
    kc_store_close(s);

    put("[DEFAULT]\nnode_id : n1\n");
    s = opened("n1", &plain);
    assert_int_equal(kc_store_kafka_config(s, KC_KAFKA_CONSUMER, NULL, &c, &err), KC_ERR_NOTFOUND);
    assert_non_null(strstr(err.msg, "[n1-kafka]"));
    kc_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_cryptostore_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_file_trusts_no_temporary_root_by_default, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_new_kafkacryptostore_file_and_ca_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_id_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_path_is_relative_to_cwd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_errors_name_the_file_and_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_and_reload_every_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_stores_change_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_case_and_default_inheritance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_typing_of_file_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_opener_is_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_python_lockf_interoperates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewrite_keeps_mode_and_skips_no_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_during_rewrites_leaves_old_or_new, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_files_of_a_provisioned_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legacy_migrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_level_from_the_crypto_section, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kafka_config_precedence_and_unset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kafka_config_mapping_and_warnings, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
