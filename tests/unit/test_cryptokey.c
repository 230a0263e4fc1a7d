/* The cryptokey: the .crypto file (new, legacy upgrades, unknown keys,
 * malformed content, keytypes), opaque values, the ephemeral key service,
 * the public C API and the backend interface. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kafkacrypto.h"
#include "kc_cryptokey.h"
#include "kc_cryptokey_file.h"
#include "kc_log.h"
#include "kc_test.h"
#include "kc_test_rng.h"

/* spec Appendix A.2: producer key, seed = SHA256("kc-test-producer") */
#define SEED1 "63e1dfb84cd0c455a747301d5a17d2a037afb7ce5df6598bc8de30396962206b"
#define PK1 "363147d88ca75eb438cab346ea307a2f31e12d2b8252bc04198b56ce75b7aa74"
#define SK1 SEED1 PK1
#define EK "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
#define X32 "45ff4a85444f75a82a29331618993a883b343ec4d087efcecca7923c2ec8e3ac"
#define X64 X32 X32
#define X31 "45ff4a85444f75a82a29331618993a883b343ec4d087efcecca7923c2ec8e3"
/* a version-4 signing secret: [4, [bin64, bin64]] */
#define V4_ARRAY "920492c440" X64 "c440" X64
#define V4_BIN "c487" V4_ARRAY
/* the A.2 producer file: [2, [sk], ek, false, [1]] */
#define FILE_V2 "950291c440" SK1 "c420" EK "c29101"

/* ---- log capture --------------------------------------------------------------- */

static char logs[64][700];
static int nlogs;

static void capture(void *ctx, kc_log_level level, const char *logger, const char *message)
{
    (void)ctx;
    if (nlogs < 64)
        snprintf(logs[nlogs++], sizeof logs[0], "%s:%s:%s", kc_log_level_name(level), logger,
                 message);
}

static void logs_reset(void)
{
    nlogs = 0;
}

/* index of the line, or -1 */
static int logged(const char *level, const char *message)
{
    char want[700];
    snprintf(want, sizeof want, "%s:kafkacrypto.cryptokey:%s", level, message);
    for (int i = 0; i < nlogs; i++)
        if (strcmp(logs[i], want) == 0)
            return i;
    return -1;
}

/* ---- files --------------------------------------------------------------------------- */

static char *dir;

static int setup(void **state)
{
    dir = tc_tmpdir();
    logs_reset();
    return 0;
}

static int teardown(void **state)
{
    kc_log_set_level(KC_LOG_WARNING);
    tc_rmtree(dir);
    free(dir);
    dir = NULL;
    return 0;
}

static char *write_hex(const char *name, const char *hex)
{
    char *path = tc_path(dir, name);
    kc_buf b = tc_hex(hex);
    tc_write_file(path, b.data, b.len);
    kc_buf_free(&b);
    return path;
}

static void assert_file_hex(const char *path, const char *hex)
{
    kc_buf b = tc_read_file(path);
    assert_string_equal(tc_tohex(b.data, b.len), hex);
    kc_buf_free(&b);
}

static size_t dir_entries(void)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static kc_cryptokey *open_ok(const char *path, const int *kt, size_t nkt)
{
    kc_cryptokey *ck;
    kc_err err;
    kc_err_clear(&err);
    kc_status st = kc_cryptokey_open(&ck, path, kt, nkt, &err);
    if (st != KC_OK)
        fail_msg("open %s: %s", path, err.msg);
    return ck;
}

static void assert_spk_hex(kc_cryptokey *ck, size_t idx, const char *hex)
{
    kc_key k;
    assert_int_equal(kc_cryptokey_get_spk(ck, idx, &k, NULL), KC_OK);
    assert_string_equal(tc_tohex(k.x, k.x_len), hex);
    kc_key_clear(&k);
}

/* ek never leaves the backend: check it through what it unwraps */
static bool uses_ek(kc_cryptokey *ck, const char *ek_hex)
{
    kc_buf ek = tc_hex(ek_hex), out = KC_BUF_INIT;
    uint8_t box[24 + 16 + 3] = {0};
    crypto_secretbox_easy(box + 24, (const uint8_t *)"abc", 3, box, ek.data);
    bool ok = kc_cryptokey_unwrap_opaque(ck, box, sizeof box, &out) == KC_OK && out.len == 3;
    kc_buf_free(&ek);
    kc_buf_free(&out);
    return ok;
}

/* ---- new files ---------------------------------------------------------------------------- */

static void test_new_file(void **state)
{
    kc_log_set_level(KC_LOG_INFO); /* the skipped post-quantum versions are said at INFO */
    char *path = tc_path(dir, "node1.crypto");
    tc_rng_script_hex(EK);
    kc_cryptokey *ck = open_ok(path, NULL, 0);
    assert_int_equal(tc_rng_pending(), 0);
    /* what upstream writes, PQ versions included; this build then skips them */
    assert_file_hex(path, "950290c420" EK "c293050201");
    char line[600];
    snprintf(line, sizeof line, "Initializing new CryptoKey file %s", path);
    int a = logged("WARNING", line), b = logged("WARNING", "  CryptoKey Initialized."),
        c = logged("INFO", "Cryptokey File IO Object cannot use ephemeral keytype=5"),
        d = logged("INFO", "Cryptokey File IO Object cannot use ephemeral keytype=2");
    assert_true(a >= 0 && a < b && b < c && c < d);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(kc_cryptokey_num_spk(ck), 0);
    kc_buf id = KC_BUF_INIT;
    assert_int_equal(kc_cryptokey_get_id_spk(ck, &id, NULL), KC_OK);
    assert_int_equal(id.len, 0);
    int v[4];
    assert_int_equal(kc_cryptokey_ephemeral_versions(ck, v, 4), 1);
    assert_int_equal(v[0], 1);
    assert_false(kc_cryptokey_legacy(ck));
    assert_true(uses_ek(ck, EK));
    kc_cryptokey_close(ck);
    free(path);
}

static void test_new_file_with_keytype_1(void **state)
{
    char *path = tc_path(dir, "node1.crypto");
    tc_rng_script_hex(EK SEED1);  /* ek, then the Ed25519 seed */
    const int kt[] = {1};
    kc_cryptokey *ck = open_ok(path, kt, 1);
    assert_int_equal(tc_rng_pending(), 0);
    assert_file_hex(path, "950291c440" SK1 "c420" EK "c293050201");
    int add = logged("WARNING", "  Adding New Public Key: " PK1);
    int upd = logged("WARNING", "Cryptokey file updating with new keytypes={1}. Provisioning "
                                "required for successful operation.");
    assert_true(add >= 0 && add < upd);
    assert_int_equal(kc_cryptokey_num_spk(ck), 1);
    assert_spk_hex(ck, 0, PK1);
    kc_cryptokey_close(ck);
    /* reopening finds the key: nothing is rewritten */
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    logs_reset();
    ck = open_ok(path, kt, 1);
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino);
    assert_int_equal(logged("WARNING", "  Adding New Public Key: " PK1), -1);
    kc_cryptokey_close(ck);
    free(path);
}

/* ---- keytypes ---------------------------------------------------------------------------- */

static void test_keytype_4_cannot_be_generated(void **state)
{
    char *path = write_hex("n.crypto", FILE_V2);
    kc_cryptokey *ck;
    kc_err err;
    const int kt[] = {4, 1};
    assert_int_equal(kc_cryptokey_open(&ck, path, kt, 2, &err), KC_ERR_UNSUPPORTED);
    assert_null(ck);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "type 4"));
    assert_true(logged("ERROR", "Cryptokey File IO Object missing requested keytypes = {4}") >= 0);
    assert_file_hex(path, FILE_V2);
    const int unknown_type[] = {7};
    assert_int_equal(kc_cryptokey_open(&ck, path, unknown_type, 1, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "type 7"));
    assert_file_hex(path, FILE_V2);
    free(path);
}

static void test_missing_keytypes_from_memory(void **state)
{
    kc_buf b = tc_hex("950290c420" EK "c29101");
    kc_cryptokey *ck;
    kc_err err;
    const int kt[] = {1};
    assert_int_equal(kc_cryptokey_open_bytes(&ck, b.data, b.len, "node9.crypto", kt, 1, &err),
                     KC_ERR_NOTFOUND);
    assert_non_null(strstr(err.msg, "node9.crypto"));
    assert_non_null(strstr(err.msg, "memory"));
    assert_true(logged("ERROR", "Cryptokey File IO Object missing requested keytypes = {1}") >= 0);
    kc_buf_free(&b);
}

static void test_unknown_keys_block_adding(void **state)
{
    const char *hex = "950292c440" SK1 V4_BIN "c420" EK "c29101";
    char *path = write_hex("n.crypto", hex);
    kc_cryptokey *ck;
    kc_err err;
    const int kt[] = {1, 4};
    assert_int_equal(kc_cryptokey_open(&ck, path, kt, 2, &err), KC_ERR_NOTFOUND);
    assert_non_null(strstr(err.msg, "unknown types"));
    assert_file_hex(path, hex);
    /* without the request it loads, and the unknown key stays in the file */
    ck = open_ok(path, NULL, 0);
    assert_int_equal(kc_cryptokey_num_spk(ck), 1);
    assert_true(logged("WARNING", "Cryptokey File IO Object has at least one unknown keytype.") >= 0);
    kc_cryptokey_close(ck);
    assert_file_hex(path, hex);
    free(path);
}

static void test_keytypes_enable_in_file_order(void **state)
{
    kc_key pk2, sk2;
    kc_buf seed = tc_hex(X32);
    assert_int_equal(kc_sign_keypair_from_seed(&pk2, &sk2, seed.data), KC_OK);
    char hex[1200];
    snprintf(hex, sizeof hex, "950293c440%s%sc440%sc420%sc29101", SK1, V4_BIN,
             tc_tohex(sk2.x, 64), EK);
    char *path = write_hex("n.crypto", hex);
    const int kt[] = {1};
    kc_cryptokey *ck = open_ok(path, kt, 1);
    assert_int_equal(kc_cryptokey_num_spk(ck), 2);
    assert_spk_hex(ck, 0, PK1);
    assert_spk_hex(ck, 1, tc_tohex(pk2.x, 32));
    kc_buf id = KC_BUF_INIT;
    assert_int_equal(kc_cryptokey_get_id_spk(ck, &id, NULL), KC_OK);
    char want[200];
    snprintf(want, sizeof want, "%s%s", PK1, tc_tohex(pk2.x, 32));
    assert_string_equal(tc_tohex(id.data, id.len), want);
    /* sign with each idx; idx 2 does not exist */
    for (size_t idx = 0; idx < 2; idx++) {
        kc_buf sm = KC_BUF_INIT;
        kc_key pk;
        const uint8_t *m;
        size_t mlen;
        assert_int_equal(kc_cryptokey_sign(ck, idx, (const uint8_t *)"msg", 3, &sm, NULL), KC_OK);
        assert_int_equal(kc_cryptokey_get_spk(ck, idx, &pk, NULL), KC_OK);
        assert_int_equal(kc_sign_open(&pk, sm.data, sm.len, &m, &mlen, NULL), KC_OK);
        assert_int_equal(mlen, 3);
        kc_buf_free(&sm);
    }
    kc_buf sm = KC_BUF_INIT;
    kc_err err;
    assert_int_equal(kc_cryptokey_sign(ck, 2, (const uint8_t *)"msg", 3, &sm, &err),
                     KC_ERR_NOTFOUND);
    assert_non_null(strstr(err.msg, "idx=2"));
    kc_key k;
    assert_int_equal(kc_cryptokey_get_spk(ck, 2, &k, NULL), KC_ERR_NOTFOUND);
    kc_cryptokey_close(ck);
    /* an empty keytypes list enables nothing */
    const int none[] = {0};
    ck = open_ok(path, none, 0);
    assert_int_equal(kc_cryptokey_num_spk(ck), 0);
    kc_cryptokey_close(ck);
    assert_file_hex(path, hex);
    kc_key_clear(&sk2);
    kc_buf_free(&seed);
    kc_buf_free(&id);
    free(path);
}

/* ---- upgrades ------------------------------------------------------------------------------- */

static void test_unversioned_upgrade_is_atomic(void **state)
{
    char *path = write_hex("n.crypto", "92c440" SK1 "c420" EK);
    assert_int_equal(chmod(path, 0640), 0);
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    kc_cryptokey *ck = open_ok(path, NULL, 0);
    assert_file_hex(path, "950291c440" SK1 "c420" EK "c39101");
    assert_int_equal(stat(path, &after), 0);
    /* replaced by rename (a new inode), permissions kept, no temporary left */
    assert_int_not_equal(before.st_ino, after.st_ino);
    assert_int_equal(after.st_mode & 0777, 0640);
    assert_int_equal(dir_entries(), 1);
    int a = logged("WARNING", "Cryptokey file is unversioned."),
        b = logged("WARNING", "Cryptokey file updating from unversioned to version 2 format.");
    assert_true(a >= 0 && a < b);
    assert_true(kc_cryptokey_legacy(ck));
    assert_int_equal(kc_cryptokey_num_spk(ck), 1);
    assert_spk_hex(ck, 0, PK1);
    assert_true(uses_ek(ck, EK));
    kc_cryptokey_close(ck);
    free(path);
}

static void test_v1_upgrade_keeps_entries_byte_for_byte(void **state)
{
    /* the key as str (old msgpack) and a sixth element: both kept as they are */
    char *path = write_hex("n.crypto", "9601d940" SK1 "c420" EK "c29101a3616263");
    kc_cryptokey *ck = open_ok(path, NULL, 0);
    assert_file_hex(path, "960291d940" SK1 "c420" EK "c29101a3616263");
    assert_true(logged("WARNING", "Cryptokey file updating from version 1 to version 2 format.") >= 0);
    assert_int_equal(logged("WARNING", "Cryptokey file is unversioned."), -1);
    assert_spk_hex(ck, 0, PK1);
    assert_false(kc_cryptokey_legacy(ck));
    kc_cryptokey_close(ck);
    free(path);
}

static void test_v1_upgrade_with_only_an_unknown_key(void **state)
{
    /* upstream upgrades first, then finds nothing usable; the v4 key (an
     * embedded array here) survives the rewrite unchanged */
    char *path = write_hex("n.crypto", "9501" V4_ARRAY "c420" EK "c29101");
    kc_cryptokey *ck;
    kc_err err;
    assert_int_equal(kc_cryptokey_open(&ck, path, NULL, 0, &err), KC_ERR_UNSUPPORTED);
    assert_file_hex(path, "950291" V4_ARRAY "c420" EK "c29101");
    assert_true(logged("ERROR", "Cryptokey File IO Object has no usable keytypes!") >= 0);
    free(path);
}

static void test_open_bytes_never_writes(void **state)
{
    kc_buf b = tc_hex("92c440" SK1 "c420" EK);
    kc_cryptokey *ck;
    assert_int_equal(kc_cryptokey_open_bytes(&ck, b.data, b.len, "mem", NULL, 0, NULL), KC_OK);
    assert_true(logged("WARNING", "Cryptokey file is unversioned.") >= 0);
    assert_int_equal(logged("WARNING", "Cryptokey file updating from unversioned to version 2 format."),
                     -1);
    assert_int_equal(dir_entries(), 0);
    assert_spk_hex(ck, 0, PK1);
    kc_cryptokey_close(ck);
    kc_buf_free(&b);
}

static void test_trailing_garbage_tolerated(void **state)
{
    const char *tails[] = {"c1", "00", "c1c1c1ff", "95"};
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        char hex[600];
        snprintf(hex, sizeof hex, "%s%s", FILE_V2, tails[i]);
        char *path = write_hex("n.crypto", hex);
        logs_reset();
        kc_cryptokey *ck = open_ok(path, NULL, 0);
        assert_true(logged("WARNING", "Cryptokey file had extraneous bytes at end, attempting "
                                      "load anyways.") >= 0);
        assert_spk_hex(ck, 0, PK1);
        kc_cryptokey_close(ck);
        assert_file_hex(path, hex);
        free(path);
    }
}

/* ---- unusable and malformed content ----------------------------------------------------- */

static void test_only_unknown_keys(void **state)
{
    char *path = write_hex("n.crypto", "950291" V4_BIN "c420" EK "c29101");
    kc_cryptokey *ck;
    kc_err err;
    assert_int_equal(kc_cryptokey_open(&ck, path, NULL, 0, &err), KC_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, path));
    int a = logged("WARNING", "Cryptokey File IO Object has at least one unknown keytype."),
        b = logged("ERROR", "Cryptokey File IO Object has no usable keytypes!");
    assert_true(a >= 0 && a < b);
    assert_file_hex(path, "950291" V4_BIN "c420" EK "c29101");
    free(path);
}

static void test_ephemeral_versions(void **state)
{
    kc_cryptokey *ck;
    kc_err err;
    kc_log_set_level(KC_LOG_INFO);
    char *path = write_hex("a.crypto", "950291c440" SK1 "c420" EK "c2920502");
    assert_int_equal(kc_cryptokey_open(&ck, path, NULL, 0, &err), KC_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "ephemeral versions"));
    assert_true(logged("INFO", "Cryptokey File IO Object cannot use ephemeral keytype=5") >= 0);
    assert_true(logged("INFO", "Cryptokey File IO Object cannot use ephemeral keytype=2") >= 0);
    assert_true(logged("ERROR", "Cryptokey File IO Object has no usable ephemeral keytypes!") >= 0);
    free(path);
    /* unknown numbers are skipped (B14), not treated as 1; so are 3, 6, -1 and text */
    logs_reset();
    path = write_hex("b.crypto", "950291c440" SK1 "c420" EK "c29607030601ffa178");
    ck = open_ok(path, NULL, 0);
    int v[8];
    assert_int_equal(kc_cryptokey_ephemeral_versions(ck, v, 8), 1);
    assert_int_equal(v[0], 1);
    assert_true(logged("WARNING", "Cryptokey File IO Object cannot use ephemeral keytype=7") >= 0);
    assert_true(logged("WARNING", "Cryptokey File IO Object cannot use ephemeral keytype=3") >= 0);
    assert_true(logged("WARNING", "Cryptokey File IO Object cannot use ephemeral keytype=6") >= 0);
    assert_true(logged("WARNING", "Cryptokey File IO Object cannot use ephemeral keytype=-1") >= 0);
    kc_cryptokey_close(ck);
    free(path);
    path = write_hex("c.crypto", "950291c440" SK1 "c420" EK "c29107");
    assert_int_equal(kc_cryptokey_open(&ck, path, NULL, 0, &err), KC_ERR_UNSUPPORTED);
    free(path);
    path = write_hex("d.crypto", "950291c440" SK1 "c420" EK "c290");
    assert_int_equal(kc_cryptokey_open(&ck, path, NULL, 0, &err), KC_ERR_UNSUPPORTED);
    free(path);
}

static void test_future_signing_version_is_skipped(void **state)
{
    /* bin(mp([9, bin32])) and [9, bin32]: a newer upstream's key type */
    const char *hex = "950293c440" SK1 "c4249209c420" X32 "9209c420" X32 "c420" EK "c29101";
    char *path = write_hex("n.crypto", hex);
    kc_cryptokey *ck = open_ok(path, NULL, 0);
    assert_int_equal(kc_cryptokey_num_spk(ck), 1);
    assert_true(logged("WARNING", "Cryptokey File IO Object has at least one unknown keytype.") >= 0);
    kc_cryptokey_close(ck);
    assert_file_hex(path, hex);
    free(path);
}

static void test_malformed_files_are_rejected(void **state)
{
    static const struct { const char *hex, *why; } cases[] = {
        {"", "empty"},
        {"95", "truncated"},
        {"950291c440", "truncated"},
        {"01", "expected a list"},
        {"80", "expected a list"},
        {"93010203", "version 1 with 3 fields"},
        {"91c440" SK1, "list of 1 fields"},
        {"9503c0c420" EK "c29101", "field version: expected 1 or 2"},
        {"9402c0c420" EK "c2", "version 2 with 4 fields"},
        {"9502c0c420" EK "c29101", "field signing keys: expected a list"},
        {"950291c41f" X31 "c420" EK "c29101", "signing key 0: expected 64 bytes"},
        {"950292c440" SK1 "c41f" X31 "c420" EK "c29101", "signing key 1: expected 64 bytes"},
        {"9502919201c420" X32 "c420" EK "c29101", "signing key 0: signing secret key version 1: 32 bytes"},
        {"95029105c420" EK "c29101", "signing key 0"},
        {"950291c0c420" EK "c29101", "signing key 0"},
        {"950291c440" SK1 "c41f" X31 "c29101", "field ek: expected 32 bytes, got 31"},
        {"950291c440" SK1 "05c29101", "field ek: expected a byte string"},
        {"950291c440" SK1 "c420" EK "019101", "field legacy"},
        {"950291c440" SK1 "c420" EK "c201", "field ephemeral versions"},
        {"9502ddffffffff", "malformed"},
        {"9502c6ffffffff", "malformed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%zu.crypto", i);
        char *path = write_hex(name, cases[i].hex);
        kc_cryptokey *ck;
        kc_err err;
        kc_err_clear(&err);
        kc_status st = kc_cryptokey_open(&ck, path, NULL, 0, &err);
        if (st != KC_ERR_INVALID || !strstr(err.msg, path) || !strstr(err.msg, cases[i].why))
            fail_msg("case %zu (%s): got %s: %s", i, cases[i].why, kc_status_str(st), err.msg);
        assert_null(ck);
        assert_file_hex(path, cases[i].hex);
        free(path);
    }
}

static void test_unreadable_path(void **state)
{
    kc_cryptokey *ck;
    kc_err err;
    /* a directory where the file should be */
    assert_int_not_equal(kc_cryptokey_open(&ck, dir, NULL, 0, &err), KC_OK);
    assert_non_null(strstr(err.msg, dir));
    assert_int_equal(kc_cryptokey_open(&ck, "", NULL, 0, &err), KC_ERR_INVALID);
    char *missing_dir = tc_path(dir, "no/such/dir.crypto");
    assert_int_equal(kc_cryptokey_open(&ck, missing_dir, NULL, 0, &err), KC_ERR_IO);
    free(missing_dir);
}

/* ---- opaque values --------------------------------------------------------------------- */

/* spec Appendix A.9 */
#define A9_PLAIN                                                                         \
    "81a57067656e739194aa6578616d706c65303031c42098989898989898989898"                  \
    "98989898989898989898989898989898989898989898c4206a6a6a6a6a6a6a6a"                  \
    "6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6acb41df4add402000"                  \
    "00"
#define A9_WRAPPED                                                                       \
    "000102030405060708090a0b0c0d0e0f10111213141516170864da3a3043f34e"                  \
    "06cbd52f1bd79284bb6bc644353e8f93bee0b6324d4b56bbb10735dab4a00484"                  \
    "e94c98a4c2346e2bbfe659fbb638909f323798b9d8407538afce7891d143dee2"                  \
    "20c6514739576c35f5f6ce22c19068895d92e2253169dbe2d78b6a7256a2c824"                  \
    "b88c743697add9a17b"
/* tests/vectors/data/store.json, the wrap_opaque/unwrap_opaque example */
#define STORE_EK "6cbc060b954a9914c464dd3ace9c5cef18d2d196c493f73650ca34e807b37ad1"
#define STORE_WRONG_EK "4600c7b034d6721673866561b797ffbacc2dccf35184176b91633cd3a0adda4b"
#define STORE_PLAIN                                                                      \
    "fccd14d824f1e7bc2a47c0422a2a0a08ec355671d9a879b248b6bb143ac62c832bc778b28f818d89835d55b1" \
    "a7059cc6e2f6041edb619775b9fcfedefafa13499eb8b46b8547588c2f0246ed4b"
#define STORE_NONCE "8f41cb118e2f7854391348fc2883b170f78eb9f02972f5f1"
#define STORE_WRAPPED                                                                    \
    STORE_NONCE "f0438f831f1e7779b7c43257c01aad23e158abc57bd77dd4a7e4e83cb4e2f34ec5bc0665" \
    "276b056af7a3f2426555ba63f56c9b8f9ccc9bae6439fc524b93c86f5300147f58c8ff1b02fe2b992e0bcc" \
    "a92913591701d909ce77ab4960b6"

static kc_cryptokey *ck_with_ek(const char *ek_hex)
{
    char hex[400];
    snprintf(hex, sizeof hex, "950291c440%sc420%sc29101", SK1, ek_hex);
    kc_buf b = tc_hex(hex);
    kc_cryptokey *ck;
    assert_int_equal(kc_cryptokey_open_bytes(&ck, b.data, b.len, "mem", NULL, 0, NULL), KC_OK);
    kc_buf_free(&b);
    return ck;
}

static void check_wrap_vector(const char *ek, const char *nonce, const char *plain,
                              const char *wrapped, const char *wrong_ek)
{
    kc_cryptokey *ck = ck_with_ek(ek), *other = ck_with_ek(wrong_ek);
    kc_buf p = tc_hex(plain), w = tc_hex(wrapped), out = KC_BUF_INIT;
    assert_int_equal(kc_cryptokey_unwrap_opaque(ck, w.data, w.len, &out), KC_OK);
    assert_string_equal(tc_tohex(out.data, out.len), plain);
    tc_rng_script_hex(nonce);
    assert_int_equal(kc_cryptokey_wrap_opaque(ck, p.data, p.len, &out, NULL), KC_OK);
    assert_string_equal(tc_tohex(out.data, out.len), wrapped);
    /* wrong ek, any flipped bit, any truncation: upstream's None */
    assert_int_equal(kc_cryptokey_unwrap_opaque(other, w.data, w.len, &out), KC_ERR_CRYPTO);
    assert_int_equal(out.len, 0);
    for (size_t i = 0; i < w.len; i++) {
        w.data[i] ^= 0x80;
        assert_int_equal(kc_cryptokey_unwrap_opaque(ck, w.data, w.len, &out), KC_ERR_CRYPTO);
        w.data[i] ^= 0x80;
    }
    for (size_t n = 0; n < w.len; n++)
        assert_int_equal(kc_cryptokey_unwrap_opaque(ck, w.data, n, &out), KC_ERR_CRYPTO);
    kc_cryptokey_close(ck);
    kc_cryptokey_close(other);
    kc_buf_free(&p);
    kc_buf_free(&w);
    kc_buf_free(&out);
}

static void test_wrap_unwrap(void **state)
{
    check_wrap_vector(EK, "000102030405060708090a0b0c0d0e0f1011121314151617", A9_PLAIN,
                      A9_WRAPPED, STORE_EK);
    check_wrap_vector(STORE_EK, STORE_NONCE, STORE_PLAIN, STORE_WRAPPED, STORE_WRONG_EK);
    /* empty values round-trip; random nonces differ */
    kc_cryptokey *ck = ck_with_ek(EK);
    kc_buf a = KC_BUF_INIT, b = KC_BUF_INIT, out = KC_BUF_INIT;
    assert_int_equal(kc_cryptokey_wrap_opaque(ck, NULL, 0, &a, NULL), KC_OK);
    assert_int_equal(a.len, 40);
    assert_int_equal(kc_cryptokey_wrap_opaque(ck, NULL, 0, &b, NULL), KC_OK);
    assert_memory_not_equal(a.data, b.data, 24);
    assert_int_equal(kc_cryptokey_unwrap_opaque(ck, a.data, a.len, &out), KC_OK);
    assert_int_equal(out.len, 0);
    assert_int_equal(kc_cryptokey_unwrap_opaque(ck, NULL, 0, &out), KC_ERR_CRYPTO);
    kc_cryptokey_close(ck);
    kc_buf_free(&a);
    kc_buf_free(&b);
    kc_buf_free(&out);
}

/* ---- ephemeral keys --------------------------------------------------------------------- */

static kc_cryptokey *ck_legacy(bool legacy)
{
    kc_buf b = tc_hex(legacy ? "950291c440" SK1 "c420" EK "c39101" : FILE_V2);
    kc_cryptokey *ck;
    assert_int_equal(kc_cryptokey_open_bytes(&ck, b.data, b.len, "mem", NULL, 0, NULL), KC_OK);
    kc_buf_free(&b);
    return ck;
}

static void test_use_epks_without_esk_is_empty(void **state)
{
    kc_cryptokey *ck = ck_legacy(false);
    kc_key peer_pk, peer_sk;
    assert_int_equal(kc_kem_keypair_new(&peer_pk, &peer_sk, 1), KC_OK);
    kc_kem_results r;
    assert_int_equal(kc_cryptokey_use_epks(ck, "t", "decrypt_keys", &peer_pk, 1, true, &r, NULL),
                     KC_OK);
    assert_int_equal(r.n, 0);
    kc_kem_results_clear(&r);
    kc_key_clear(&peer_sk);
    kc_cryptokey_close(ck);
}

static void test_get_and_use_epks(void **state)
{
    kc_cryptokey *ck = ck_legacy(false);
    kc_epks e;
    assert_int_equal(kc_cryptokey_get_epks(ck, "t", "decrypt_keys", &e, NULL), KC_OK);
    assert_int_equal(e.n, 1);
    assert_int_equal(e.keys[0].kind, KC_KEM_PK);
    assert_int_equal(e.keys[0].version, 1);
    assert_false(e.has_legacy);
    kc_key peer_pk, peer_sk;
    assert_int_equal(kc_kem_keypair_new(&peer_pk, &peer_sk, 1), KC_OK);
    uint8_t expect[32];
    assert_int_equal(kc_kem_complete(&peer_sk, &e.keys[0], expect), KC_OK);
    /* clear = false keeps the secret for another use */
    for (int round = 0; round < 2; round++) {
        kc_kem_results r;
        assert_int_equal(kc_cryptokey_use_epks(ck, "t", "decrypt_keys", &peer_pk, 1,
                                               round == 1, &r, NULL), KC_OK);
        assert_int_equal(r.n, 1);
        assert_int_equal(r.items[0].len, 32);
        assert_memory_equal(r.items[0].secret, expect, 32);
        assert_true(kc_key_equal(&r.items[0].ours, &e.keys[0]));
        kc_kem_results_clear(&r);
    }
    /* clear = true forgot it */
    kc_kem_results r;
    assert_int_equal(kc_cryptokey_use_epks(ck, "t", "decrypt_keys", &peer_pk, 1, true, &r, NULL),
                     KC_OK);
    assert_int_equal(r.n, 0);
    kc_kem_results_clear(&r);
    /* the same peer twice pairs twice (upstream pairs every matching entry) */
    kc_epks e2;
    assert_int_equal(kc_cryptokey_get_epks(ck, "t", "decrypt_keys", &e2, NULL), KC_OK);
    kc_key two[2] = {peer_pk, peer_pk};
    assert_int_equal(kc_cryptokey_use_epks(ck, "t", "decrypt_keys", two, 2, true, &r, NULL), KC_OK);
    assert_int_equal(r.n, 2);
    kc_kem_results_clear(&r);
    kc_epks_clear(&e);
    kc_epks_clear(&e2);
    kc_key_clear(&peer_sk);
    kc_cryptokey_close(ck);
}

static void test_get_epks_replaces_and_legacy(void **state)
{
    kc_cryptokey *ck = ck_legacy(true);
    kc_epks a, b;
    assert_int_equal(kc_cryptokey_get_epks(ck, "t", "encrypt_keys", &a, NULL), KC_OK);
    assert_true(a.has_legacy);
    assert_true(kc_key_equal(&a.legacy, &a.keys[0]));
    assert_int_equal(kc_cryptokey_get_epks(ck, "t", "encrypt_keys", &b, NULL), KC_OK);
    assert_false(kc_key_equal(&a.keys[0], &b.keys[0]));
    kc_key peer_pk, peer_sk;
    assert_int_equal(kc_kem_keypair_new(&peer_pk, &peer_sk, 1), KC_OK);
    kc_kem_results r;
    assert_int_equal(kc_cryptokey_use_epks(ck, "t", "encrypt_keys", &peer_pk, 1, true, &r, NULL),
                     KC_OK);
    assert_int_equal(r.n, 1);
    assert_true(kc_key_equal(&r.items[0].ours, &b.keys[0]));
    kc_kem_results_clear(&r);
    kc_epks_clear(&a);
    kc_epks_clear(&b);
    kc_key_clear(&peer_sk);
    kc_cryptokey_close(ck);
}

static void test_use_epks_skips_post_quantum_peers(void **state)
{
    kc_cryptokey *ck = ck_legacy(false);
    kc_epks e;
    assert_int_equal(kc_cryptokey_get_epks(ck, "t", "decrypt_keys", &e, NULL), KC_OK);
    kc_key peer_pk, peer_sk;
    assert_int_equal(kc_kem_keypair_new(&peer_pk, &peer_sk, 1), KC_OK);
    kc_key as_sign = peer_pk;
    as_sign.kind = KC_SIGN_PK;  /* what get_pks makes of a bare 32-byte key */
    kc_key peers[6] = {
        tc_key_hex(KC_KEM_PK, "920592c420" X32 "c40401020304"),
        tc_key_hex(KC_KEM_PK, "920292c420" X32 "c40401020304"),
        tc_key_hex(KC_KEM_PK, "920392c420" X32 "c40401020304"),
        tc_key_hex(KC_KEM_PK, "920692c420" X32 "c40401020304"),
        tc_key_hex(KC_SIGN_PK, "920492c420" X32 "c420" X32),
        as_sign,
    };
    kc_kem_results r;
    /* only PQ peers: nothing pairs, and clear still forgets the secrets */
    assert_int_equal(kc_cryptokey_use_epks(ck, "t", "decrypt_keys", peers, 5, true, &r, NULL), KC_OK);
    assert_int_equal(r.n, 0);
    kc_kem_results_clear(&r);
    assert_int_equal(kc_cryptokey_use_epks(ck, "t", "decrypt_keys", peers + 5, 1, true, &r, NULL),
                     KC_OK);
    assert_int_equal(r.n, 0);
    kc_kem_results_clear(&r);
    kc_epks_clear(&e);
    assert_int_equal(kc_cryptokey_get_epks(ck, "t", "decrypt_keys", &e, NULL), KC_OK);
    assert_int_equal(kc_cryptokey_use_epks(ck, "t", "decrypt_keys", peers, 6, true, &r, NULL), KC_OK);
    assert_int_equal(r.n, 1);
    uint8_t expect[32];
    assert_int_equal(kc_kem_complete(&peer_sk, &e.keys[0], expect), KC_OK);
    assert_memory_equal(r.items[0].secret, expect, 32);
    kc_kem_results_clear(&r);
    for (int i = 0; i < 5; i++)
        kc_key_clear(&peers[i]);
    kc_epks_clear(&e);
    kc_key_clear(&peer_sk);
    kc_cryptokey_close(ck);
}

static void test_use_epks_low_order_peer(void **state)
{
    kc_cryptokey *ck = ck_legacy(false);
    kc_epks e;
    assert_int_equal(kc_cryptokey_get_epks(ck, "topic1", "decrypt_keys", &e, NULL), KC_OK);
    kc_key bad[2];
    bad[0] = tc_key_hex(KC_KEM_PK, "0000000000000000000000000000000000000000000000000000000000000000");
    assert_int_equal(kc_kem_keypair_new(&bad[1], &(kc_key){0}, 1), KC_OK);
    kc_kem_results r;
    kc_err err;
    assert_int_equal(kc_cryptokey_use_epks(ck, "topic1", "decrypt_keys", bad, 2, true, &r, &err),
                     KC_ERR_CRYPTO);
    assert_int_equal(r.n, 0);
    assert_non_null(strstr(err.msg, "topic1"));
    assert_non_null(strstr(err.msg, "peer key 0"));
    /* nothing was forgotten */
    assert_int_equal(kc_cryptokey_use_epks(ck, "topic1", "decrypt_keys", bad + 1, 1, true, &r, NULL),
                     KC_OK);
    assert_int_equal(r.n, 1);
    kc_kem_results_clear(&r);
    kc_epks_clear(&e);
    kc_cryptokey_close(ck);
}

static void test_epks_are_per_topic_and_usage(void **state)
{
    kc_cryptokey *ck = ck_legacy(false);
    kc_epks a, b, c;
    assert_int_equal(kc_cryptokey_get_epks(ck, "t1", "decrypt_keys", &a, NULL), KC_OK);
    assert_int_equal(kc_cryptokey_get_epks(ck, "t2", "decrypt_keys", &b, NULL), KC_OK);
    assert_int_equal(kc_cryptokey_get_epks(ck, "t1", "encrypt_keys", &c, NULL), KC_OK);
    kc_key peer_pk, peer_sk;
    assert_int_equal(kc_kem_keypair_new(&peer_pk, &peer_sk, 1), KC_OK);
    kc_kem_results r;
    const char *pairs[][2] = {{"t1", "decrypt_keys"}, {"t2", "decrypt_keys"}, {"t1", "encrypt_keys"}};
    kc_epks *offers[] = {&a, &b, &c};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(kc_cryptokey_use_epks(ck, pairs[i][0], pairs[i][1], &peer_pk, 1, true, &r,
                                               NULL), KC_OK);
        assert_int_equal(r.n, 1);
        assert_true(kc_key_equal(&r.items[0].ours, &offers[i]->keys[0]));
        kc_kem_results_clear(&r);
    }
    kc_err err;
    kc_epks none;
    assert_int_equal(kc_cryptokey_get_epks(ck, NULL, "x", &none, &err), KC_ERR_INVALID);
    assert_int_equal(none.n, 0);
    kc_epks_clear(&a);
    kc_epks_clear(&b);
    kc_epks_clear(&c);
    kc_key_clear(&peer_sk);
    kc_cryptokey_close(ck);
}

/* ---- public API and backend interface ------------------------------------------------------ */

static void test_public_api(void **state)
{
    char *path = tc_path(dir, "api.crypto");
    kc_err err;
    kc_cryptokey *ck;
    const int kt[] = {1};
    assert_int_equal(kc_cryptokey_open(&ck, path, kt, 1, &err), KC_OK);
    assert_int_equal(kc_cryptokey_num_spk(ck), 1);
    uint8_t buf[256];
    size_t len = 0;
    assert_int_equal(kc_cryptokey_spk(ck, 0, buf, 0, &len, &err), KC_ERR_INVALID);
    assert_int_equal(len, 32);
    assert_int_equal(kc_cryptokey_spk(ck, 0, buf, sizeof buf, &len, NULL), KC_OK);
    uint8_t id[64];
    size_t idlen;
    assert_int_equal(kc_cryptokey_id_spk(ck, id, sizeof id, &idlen, NULL), KC_OK);
    assert_int_equal(idlen, 32);
    assert_memory_equal(id, buf, 32);
    assert_int_equal(kc_cryptokey_spk(ck, 1, buf, sizeof buf, &len, &err), KC_ERR_NOTFOUND);
    uint8_t sm[64 + 3];
    assert_int_equal(kc_cryptokey_sign_spk(ck, 0, (const uint8_t *)"abc", 3, sm, 66, &len, &err),
                     KC_ERR_INVALID);
    assert_int_equal(len, 67);
    assert_int_equal(kc_cryptokey_sign_spk(ck, 0, (const uint8_t *)"abc", 3, sm, sizeof sm, &len,
                                           NULL), KC_OK);
    assert_int_equal(crypto_sign_verify_detached(sm, sm + 64, 3, buf), 0);
    assert_int_equal(kc_cryptokey_sign_spk(ck, 0, NULL, 3, sm, sizeof sm, &len, NULL),
                     KC_ERR_INVALID);
    uint8_t w[43], p[3];
    assert_int_equal(kc_cryptokey_wrap(ck, (const uint8_t *)"xyz", 3, w, sizeof w, &len, NULL),
                     KC_OK);
    assert_int_equal(len, 43);
    assert_int_equal(kc_cryptokey_unwrap(ck, w, sizeof w, p, sizeof p, &len, NULL), KC_OK);
    assert_memory_equal(p, "xyz", 3);
    w[30] ^= 1;
    assert_int_equal(kc_cryptokey_unwrap(ck, w, sizeof w, p, sizeof p, &len, &err), KC_ERR_CRYPTO);
    assert_int_equal(kc_cryptokey_wrap(NULL, p, 3, w, sizeof w, &len, &err), KC_ERR_INVALID);
    kc_cryptokey_close(ck);
    kc_cryptokey_close(NULL);
    char *bad = write_hex("bad.crypto", "93010203");
    assert_int_equal(kc_cryptokey_open(&ck, bad, NULL, 0, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, bad));
    assert_int_equal(kc_cryptokey_open(NULL, bad, NULL, 0, &err), KC_ERR_INVALID);
    free(bad);
    free(path);
}

/* A stand-in for a hardware backend: one fixed key, secrets kept "inside". */
typedef struct fake {
    kc_key pk, sk;
    int closed;
} fake;

static int fake_closes;

static size_t fk_num(void *self) { return 1; }
static kc_status fk_spk(void *self, size_t idx, kc_key *out) { return kc_key_copy(out, &((fake *)self)->pk); }
static kc_status fk_sign(void *self, size_t idx, const uint8_t *m, size_t n, kc_buf *out, kc_err *err)
{
    return kc_sign(&((fake *)self)->sk, m, n, out);
}
static kc_status fk_get_epks(void *self, const char *t, const char *u, kc_epks *out, kc_err *err)
{
    return kc_err_set(err, KC_ERR_UNSUPPORTED, "fake: no ephemeral keys");
}
static kc_status fk_use_epks(void *self, const char *t, const char *u, const kc_key *p, size_t n,
                             bool clear, kc_kem_results *out, kc_err *err)
{
    return KC_OK;
}
static kc_status fk_wrap(void *self, const uint8_t *p, size_t n, kc_buf *out, kc_err *err)
{
    return kc_buf_set(out, p, n);
}
static kc_status fk_unwrap(void *self, const uint8_t *c, size_t n, kc_buf *out)
{
    return kc_buf_set(out, c, n);
}
static size_t fk_versions(void *self, int *out, size_t cap) { return 0; }
static bool fk_legacy(void *self) { return true; }
static void fk_close(void *self)
{
    kc_key_clear(&((fake *)self)->sk);
    fake_closes++;
}

static void test_backend_interface(void **state)
{
    fake f;
    kc_buf seed = tc_hex(SEED1);
    assert_int_equal(kc_sign_keypair_from_seed(&f.pk, &f.sk, seed.data), KC_OK);
    kc_buf_free(&seed);
    kc_cryptokey_ops ops = {
        .name = "fake", .num_spk = fk_num, .spk = fk_spk, .sign = fk_sign,
        .get_epks = fk_get_epks, .use_epks = fk_use_epks, .wrap = fk_wrap, .unwrap = fk_unwrap,
        .ephemeral_versions = fk_versions, .legacy = fk_legacy, .close = fk_close,
    };
    kc_cryptokey *ck;
    assert_int_equal(kc_cryptokey_new(&ck, &ops, &f, NULL), KC_OK);
    /* the front-end's own logic works on any backend */
    kc_buf id = KC_BUF_INIT;
    assert_int_equal(kc_cryptokey_get_id_spk(ck, &id, NULL), KC_OK);
    assert_string_equal(tc_tohex(id.data, id.len), PK1);
    uint8_t sm[64 + 1];
    size_t len;
    assert_int_equal(kc_cryptokey_sign_spk(ck, 0, (const uint8_t *)"m", 1, sm, sizeof sm, &len,
                                           NULL), KC_OK);
    assert_int_equal(kc_cryptokey_sign_spk(ck, 1, (const uint8_t *)"m", 1, sm, sizeof sm, &len,
                                           NULL), KC_ERR_NOTFOUND);
    kc_epks e;
    kc_err err;
    assert_int_equal(kc_cryptokey_get_epks(ck, "t", "u", &e, &err), KC_ERR_UNSUPPORTED);
    kc_cryptokey_close(ck);
    assert_int_equal(fake_closes, 1);
    /* an incomplete table is refused */
    ops.unwrap = NULL;
    assert_int_equal(kc_cryptokey_new(&ck, &ops, &f, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "fake"));
    assert_null(ck);
    assert_int_equal(fake_closes, 2);
    kc_buf_free(&id);
}

int main(void)
{
    if (tc_rng_install() != 0 || sodium_init() < 0)
        return 1;
    kc_log_set_sink(capture, NULL);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_new_file),
        T(test_new_file_with_keytype_1),
        T(test_keytype_4_cannot_be_generated),
        T(test_missing_keytypes_from_memory),
        T(test_unknown_keys_block_adding),
        T(test_keytypes_enable_in_file_order),
        T(test_unversioned_upgrade_is_atomic),
        T(test_v1_upgrade_keeps_entries_byte_for_byte),
        T(test_v1_upgrade_with_only_an_unknown_key),
        T(test_open_bytes_never_writes),
        T(test_trailing_garbage_tolerated),
        T(test_only_unknown_keys),
        T(test_ephemeral_versions),
        T(test_future_signing_version_is_skipped),
        T(test_malformed_files_are_rejected),
        T(test_unreadable_path),
        T(test_wrap_unwrap),
        T(test_use_epks_without_esk_is_empty),
        T(test_get_and_use_epks),
        T(test_get_epks_replaces_and_legacy),
        T(test_use_epks_skips_post_quantum_peers),
        T(test_use_epks_low_order_peer),
        T(test_epks_are_per_topic_and_usage),
        T(test_public_api),
        T(test_backend_interface),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
