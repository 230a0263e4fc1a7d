/* The file backend of the ratchet: upstream's `.seed` file (see kc_ratchet.h
 * for the format, the update rule and why it is crash-safe). */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kc_file.h"
#include "kc_hex.h"
#include "kc_log.h"
#include "kc_ratchet.h"

#define LOGGER "kafkacrypto.keygenerator"

typedef struct file_ratchet {
    int fd;
    char *path;       /* as given, for messages */
    char *real;       /* symlinks resolved: where a rewrite by rename goes */
    uint64_t index;   /* of the current pair */
    kc_keygen *gen;   /* sodium_malloc'd; keyed with the current secret */
} file_ratchet;

/* kc_file does the locking and the atomic replacing (see kc_file.h). */

static kc_status lock_busy(const char *path, kc_err *err)
{
    return kc_err_set(err, KC_ERR_BUSY,
                      "file %s: locked by another ratchet (a seed file must have one user, or "
                      "two producers would reuse keys)", path);
}

/* ---- creation (spec §3.4) ------------------------------------------------- */

static kc_status create_seed(const char *path, const uint8_t *escrow_pk, kc_err *err)
{
    uint8_t rb[KC_SECRET_BYTES];
    uint8_t sealed[crypto_box_SEALBYTES + KC_SECRET_BYTES];
    randombytes_buf(rb, sizeof rb);
    if (escrow_pk && crypto_box_seal(sealed, rb, sizeof rb, escrow_pk) != 0) {
        sodium_memzero(rb, sizeof rb);
        return kc_err_set(err, KC_ERR_INVALID,
                          "ratchet escrow: the escrow public key is not a usable X25519 key");
    }
    kc_buf content = KC_BUF_INIT;
    kc_status st = kc_seed_encode(0, rb, &content);
    sodium_memzero(rb, sizeof rb);
    if (st != KC_OK) {
        kc_buf_free(&content);
        return kc_err_set(err, st, "file %s: out of memory", path);
    }
    st = kc_file_create(path, content.data, content.len, 0600, NULL, err);
    kc_buf_free(&content);
    if (st == KC_ERR_STATE)  /* someone else created it meanwhile: use theirs */
        return KC_OK;
    if (st != KC_OK)
        return st;
    kc_log(KC_LOG_WARNING, LOGGER, "Initializing new Ratchet file %s", path);
    if (escrow_pk) {
        char pkhex[2 * 32 + 1], sealhex[2 * sizeof sealed + 1];
        kc_log(KC_LOG_WARNING, LOGGER, "  Escrow public key: %s", kc_hex(escrow_pk, 32, pkhex));
        kc_log(KC_LOG_WARNING, LOGGER, "  Escrow value: %s",
               kc_hex(sealed, sizeof sealed, sealhex));
    }
    kc_log(KC_LOG_WARNING, LOGGER, "  Ratchet Initialized.");
    return KC_OK;
}

/* ---- increment ------------------------------------------------------------ */

static kc_status file_increment(void *self, kc_err *err)
{
    file_ratchet *fr = self;
    struct stat sb;
    if (fstat(fr->fd, &sb) != 0)
        return kc_err_set(err, KC_ERR_IO, "file %s: stat failed: %s", fr->path, strerror(errno));
    if (sb.st_size > KC_SEED_MAX_BYTES)
        return kc_err_set(err, KC_ERR_INVALID, "file %s: %lld bytes, a seed file has at most %d",
                          fr->path, (long long)sb.st_size, KC_SEED_MAX_BYTES);
    uint8_t buf[KC_SEED_MAX_BYTES + 1];
    ssize_t n;
    do
        n = pread(fr->fd, buf, sizeof buf, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return kc_err_set(err, KC_ERR_IO, "file %s: read failed: %s", fr->path, strerror(errno));
    if (n > KC_SEED_MAX_BYTES) {
        sodium_memzero(buf, sizeof buf);
        return kc_err_set(err, KC_ERR_INVALID, "file %s: larger than %d bytes", fr->path,
                          KC_SEED_MAX_BYTES);
    }
    uint64_t k;
    uint8_t s[KC_SECRET_BYTES], next[KC_SECRET_BYTES];
    kc_status st = kc_seed_parse(buf, (size_t)n, fr->path, &k, s, err);
    sodium_memzero(buf, sizeof buf);
    if (st != KC_OK)
        return st;
    kc_buf content = KC_BUF_INIT;
    /* Upstream's rekey refuses the secret in use (a file that did not
     * advance, or 32 zero bytes at the first open). */
    if (sodium_memcmp(s, fr->gen->secret, KC_SECRET_BYTES) == 0) {
        st = kc_err_set(err, KC_ERR_INVALID,
                        "file %s: field secret: Secret is malformed! (equal to the secret in "
                        "use: the file did not advance, or it is all zeros)", fr->path);
        goto out;
    }
    kc_ratchet_next_secret(s, next);
    if ((st = kc_seed_encode(k + 1, next, &content)) != KC_OK) {
        st = kc_err_set(err, st, "file %s: out of memory", fr->path);
        goto out;
    }
    /* Durable before the pair (k, s) is handed out. */
    if (content.len >= (size_t)n) {
        st = kc_file_overwrite(fr->fd, content.data, content.len, fr->path, err);
    } else {
        st = kc_file_replace_locked(fr->real, content.data, content.len, &fr->fd, err);
    }
    if (st == KC_OK) {
        /* rekey cannot fail: s was checked above. */
        st = kc_keygen_rekey(fr->gen, s, sizeof s, err);
        fr->index = k;
    }
out:
    kc_buf_free(&content);
    sodium_memzero(s, sizeof s);
    sodium_memzero(next, sizeof next);
    return st;
}

static kc_status file_derive(void *self, const uint8_t *root, size_t root_len,
                             const uint8_t *node, size_t node_len, kc_keyidx *ki,
                             uint8_t secret[KC_SECRET_BYTES], kc_err *err)
{
    file_ratchet *fr = self;
    return kc_ratchet_derive_root(fr->gen, fr->index, root, root_len, node, node_len, ki,
                                  secret, err);
}

static void file_close(void *self)
{
    file_ratchet *fr = self;
    if (!fr)
        return;
    if (fr->fd >= 0)
        close(fr->fd);  /* also releases the lock */
    if (fr->gen)
        sodium_free(fr->gen);  /* wipes */
    free(fr->path);
    free(fr->real);
    free(fr);
}

static const kc_ratchet_ops file_ops = {
    .name = "file",
    .increment = file_increment,
    .derive = file_derive,
    .close = file_close,
};

/* Opens and locks the seed (removing temporary files a killed rewrite left). */
static kc_status open_locked(file_ratchet *fr, kc_err *err)
{
    kc_status st = kc_file_open_locked(fr->path, 0, &fr->fd, err);
    return st == KC_ERR_BUSY ? lock_busy(fr->path, err) : st;
}

kc_status kc_ratchet_open_file(const char *path, const uint8_t *escrow_pk, kc_ratchet **out,
                               kc_err *err)
{
    *out = NULL;
    if (!path || !*path)
        return kc_err_set(err, KC_ERR_INVALID, "ratchet: no seed file name");
    if (kc_init() != 0)
        return kc_err_set(err, KC_ERR_CRYPTO, "libsodium initialisation failed");
    file_ratchet *fr = calloc(1, sizeof *fr);
    if (!fr || !(fr->path = strdup(path)) || !(fr->gen = sodium_malloc(sizeof *fr->gen))) {
        if (fr)
            free(fr->path);
        free(fr);
        return kc_err_set(err, KC_ERR_NOMEM, "file %s: out of memory", path);
    }
    fr->fd = -1;
    /* Upstream's Ratchet starts as KeyGenerator(): secret 32 zero bytes. */
    kc_keygen_init(fr->gen, NULL, 0, kc_keygen_ctx_ratchet, 16, NULL);
    kc_status st = KC_OK;
    if (!kc_file_exists(path))
        st = create_seed(path, escrow_pk, err);
    if (st == KC_OK && !(fr->real = realpath(path, NULL)))
        st = kc_err_set(err, errno == ENOMEM ? KC_ERR_NOMEM : KC_ERR_IO,
                        "file %s: cannot resolve the path: %s", path, strerror(errno));
    if (st == KC_OK)
        st = open_locked(fr, err);
    if (st == KC_OK)
        st = file_increment(fr, err);
    if (st == KC_OK)
        st = kc_ratchet_new(&file_ops, fr, out, err);
    if (st != KC_OK)
        file_close(fr);
    return st;
}
