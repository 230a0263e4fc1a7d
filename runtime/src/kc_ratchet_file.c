/* The file backend of the ratchet: upstream's `.seed` file (see kc_ratchet.h
 * for the format, the update rule and why it is crash-safe). */
#include <errno.h>
#include <fcntl.h>
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

/* ---- locking -------------------------------------------------------------- */

/* A whole-file write lock of the fcntl family, so that it also excludes
 * lockf()/F_SETLK users. Open-file-description locks additionally conflict
 * between two opens inside one process and are not dropped when some other
 * descriptor of the file is closed. */
static int lock_fd(int fd)
{
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
#ifdef F_OFD_SETLK
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
        return 0;
    if (errno != EINVAL)
        return -1;
#endif
    return fcntl(fd, F_SETLK, &fl);
}

static kc_status lock_error(const char *path, kc_err *err)
{
    if (errno == EAGAIN || errno == EACCES)
        return kc_err_set(err, KC_ERR_BUSY,
                          "file %s: locked by another ratchet (a seed file must have one "
                          "user, or two producers would reuse keys)", path);
    return kc_err_set(err, KC_ERR_IO, "file %s: cannot lock: %s", path, strerror(errno));
}

/* A new file holding p, written next to `path` and renamed over it (or,
 * with `exclusive`, linked to it only if path does not exist yet). The
 * temporary file is locked before it gets its final name, so no other
 * opener can ever see the new file unlocked. Returns the new descriptor
 * in *fd_out (locked) when fd_out is not NULL. */
static kc_status write_new_file(const char *path, const uint8_t *p, size_t n, mode_t mode,
                                bool exclusive, int *fd_out, kc_err *err)
{
    size_t tl = strlen(path) + 16;
    char *tmp = malloc(tl);
    if (!tmp)
        return kc_err_set(err, KC_ERR_NOMEM, "file %s: out of memory", path);
    snprintf(tmp, tl, "%s.new.XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        kc_status st = kc_err_set(err, KC_ERR_IO, "file %s: cannot create %s: %s", path, tmp,
                                  strerror(errno));
        free(tmp);
        return st;
    }
    kc_status st = KC_OK;
    if (fchmod(fd, mode) != 0)
        st = kc_err_set(err, KC_ERR_IO, "file %s: chmod failed: %s", tmp, strerror(errno));
    if (st == KC_OK && fd_out && lock_fd(fd) != 0)
        st = lock_error(tmp, err);
    if (st == KC_OK)
        st = kc_file_write_all(fd, p, n, tmp, err);
    if (st == KC_OK && fsync(fd) != 0)
        st = kc_err_set(err, KC_ERR_IO, "file %s: fsync failed: %s", tmp, strerror(errno));
    if (st == KC_OK) {
        if (exclusive) {
            if (link(tmp, path) != 0)
                st = errno == EEXIST ? KC_ERR_BUSY
                                     : kc_err_set(err, KC_ERR_IO, "file %s: cannot create: %s",
                                                  path, strerror(errno));
            unlink(tmp);
        } else if (rename(tmp, path) != 0) {
            st = kc_err_set(err, KC_ERR_IO, "file %s: rename failed: %s", path,
                            strerror(errno));
        }
    }
    if (st != KC_OK)
        unlink(tmp);
    else
        kc_file_sync_dir(path);
    free(tmp);
    if (st == KC_OK && fd_out)
        *fd_out = fd;
    else
        close(fd);
    return st;
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
    st = write_new_file(path, content.data, content.len, 0600, true, NULL, err);
    kc_buf_free(&content);
    if (st == KC_ERR_BUSY)  /* someone else created it meanwhile: use theirs */
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
        int nfd = -1;
        st = write_new_file(fr->real, content.data, content.len, sb.st_mode & 07777, false,
                            &nfd, err);
        if (st == KC_OK) {
            close(fr->fd);
            fr->fd = nfd;
        }
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

/* Opens and locks the seed, making sure the locked descriptor is still the
 * file at its path (a rewrite through rename may replace it meanwhile). */
static kc_status open_locked(file_ratchet *fr, kc_err *err)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        int fd = open(fr->real, O_RDWR | O_CLOEXEC);
        if (fd < 0)
            return kc_err_set(err, errno == ENOENT ? KC_ERR_NOTFOUND : KC_ERR_IO,
                              "file %s: cannot open: %s", fr->path, strerror(errno));
        if (lock_fd(fd) != 0) {
            kc_status st = lock_error(fr->path, err);
            close(fd);
            return st;
        }
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(fr->real, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino) {
            if (!S_ISREG(a.st_mode)) {
                close(fd);
                return kc_err_set(err, KC_ERR_INVALID, "file %s: not a regular file", fr->path);
            }
            fr->fd = fd;
            return KC_OK;
        }
        close(fd);
    }
    return kc_err_set(err, KC_ERR_BUSY, "file %s: keeps being replaced while opening", fr->path);
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
