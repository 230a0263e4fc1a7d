#include "kc_file.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TEMP_SUFFIX ".tmpXXXXXX"

/* ---- opening and reading ------------------------------------------------------------ */

kc_status kc_file_open(const char *path, int flags, int *fd_out, kc_err *err)
{
    *fd_out = -1;
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer */
    int fd = open(path, flags | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        kc_err_set(err, e == ENOENT ? KC_ERR_NOTFOUND : KC_ERR_IO, "file %s: cannot open: %s",
                   path, strerror(e));
        errno = e;
        return e == ENOENT ? KC_ERR_NOTFOUND : KC_ERR_IO;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int e = errno;
        close(fd);
        errno = e;
        return kc_err_set(err, KC_ERR_INVALID, "file %s: not a regular file", path);
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    *fd_out = fd;
    return KC_OK;
}

kc_status kc_file_read_fd(int fd, const char *path, size_t max_len, kc_buf *out, kc_err *err)
{
    kc_buf_reset(out);
    for (;;) {
        if (kc_buf_reserve(out, 4096) != KC_OK) {
            kc_buf_reset(out);
            return kc_err_set(err, KC_ERR_NOMEM, "file %s: out of memory", path);
        }
        ssize_t k = pread(fd, out->data + out->len, out->cap - out->len, (off_t)out->len);
        if (k < 0 && errno == EINTR)
            continue;
        kc_status st = KC_OK;
        if (k < 0)
            st = kc_err_set(err, KC_ERR_IO, "file %s: read failed: %s", path, strerror(errno));
        else if ((out->len += (size_t)k) > max_len)
            st = kc_err_set(err, KC_ERR_INVALID, "file %s: larger than %zu bytes", path, max_len);
        else if (k > 0)
            continue;
        if (st != KC_OK)
            kc_buf_reset(out);
        return st;
    }
}

kc_status kc_file_read(const char *path, size_t max_len, kc_buf *out, kc_err *err)
{
    kc_buf_reset(out);
    int fd;
    kc_status st = kc_file_open(path, O_RDONLY, &fd, err);
    if (st != KC_OK)
        return st;
    st = kc_file_read_fd(fd, path, max_len, out, err);
    close(fd);
    return st;
}

/* ---- locks -------------------------------------------------------------------------- */

int kc_file_lock(int fd)
{
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
#ifdef F_OFD_SETLK
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
        return 0;
    if (errno != EINVAL) /* EINVAL: a kernel without OFD locks */
        return -1;
#endif
    return fcntl(fd, F_SETLK, &fl);
}

static bool same_file(int fd, const char *path)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int kc_file_is_temp_name(const char *name, const char *base)
{
    size_t n = strlen(base);
    if (strncmp(name, base, n) != 0)
        return 0;
    const char *tail = name + n;
    size_t from = strncmp(tail, ".tmp", 4) == 0 ? 4 : strncmp(tail, ".new.", 5) == 0 ? 5 : 0;
    if (!from || strlen(tail) != from + 6) /* mkstemp's six characters */
        return 0;
    for (size_t i = from; i < from + 6; i++)
        if (!isalnum((unsigned char)tail[i]))
            return 0;
    return 1;
}

/* Removes leftover temporary files of path: a writer killed mid-rewrite.
 * The caller holds path's lock, so no rewrite of ours is under way; a
 * temporary file someone still holds locked (an exclusive create racing
 * with us) is left alone. */
static void remove_stale_temps(const char *path)
{
    char *d = strdup(path), *b = strdup(path);
    DIR *dh = d && b ? opendir(dirname(d)) : NULL;
    const char *base = b && dh ? basename(b) : "";
    struct dirent *e;
    while (dh && (e = readdir(dh))) {
        if (!kc_file_is_temp_name(e->d_name, base))
            continue;
        int fd = openat(dirfd(dh), e->d_name, O_RDWR | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
        struct stat sb;
        if (fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && kc_file_lock(fd) == 0)
            unlinkat(dirfd(dh), e->d_name, 0);
        if (fd >= 0)
            close(fd);
    }
    if (dh)
        closedir(dh);
    free(d);
    free(b);
}

kc_status kc_file_open_locked(const char *path, double wait_seconds, int *fd_out, kc_err *err)
{
    *fd_out = -1;
    long waited_ms = 0, wait_ms = (long)(wait_seconds * 1000);
    for (int replaced = 0; replaced < 16;) {
        int fd;
        kc_status st = kc_file_open(path, O_RDWR, &fd, err);
        if (st != KC_OK)
            return st;
        if (kc_file_lock(fd) != 0) {
            int e = errno;
            close(fd);
            if (e != EAGAIN && e != EACCES)
                return kc_err_set(err, KC_ERR_IO, "file %s: cannot lock: %s", path, strerror(e));
            if (waited_ms >= wait_ms)
                return kc_err_set(err, KC_ERR_BUSY,
                                  "file %s: locked by another process (a kafkacrypto node, "
                                  "Python or C, has it open)", path);
            sleep_ms(20);
            waited_ms += 20;
            continue;
        }
        if (same_file(fd, path)) {
            char *real = realpath(path, NULL);
            remove_stale_temps(real ? real : path);
            free(real);
            *fd_out = fd;
            return KC_OK;
        }
        close(fd); /* replaced between open and lock: take the new one */
        replaced++;
    }
    return kc_err_set(err, KC_ERR_BUSY, "file %s: keeps being replaced while opening", path);
}

/* ---- writing ------------------------------------------------------------------------ */

kc_status kc_file_write_all(int fd, const uint8_t *p, size_t n, const char *path, kc_err *err)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return kc_err_set(err, KC_ERR_IO, "file %s: write failed: %s", path, strerror(errno));
        }
        p += k;
        n -= (size_t)k;
    }
    return KC_OK;
}

static int sync_fd(int fd)
{
#ifdef F_FULLFSYNC
    if (fcntl(fd, F_FULLFSYNC) == 0)
        return 0;
#endif
    return fsync(fd);
}

/* fsync of the directory holding path, so that a rename or link in it is
 * durable. */
static void sync_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(copy);
}

/* A complete, fsync'ed, locked temporary file "<target>.tmpXXXXXX" with
 * permission bits mode. */
static kc_status write_temp(const char *target, const uint8_t *p, size_t n, mode_t mode,
                            char **tmp_out, int *fd_out, kc_err *err)
{
    size_t len = strlen(target) + sizeof TEMP_SUFFIX;
    char *tmp = malloc(len);
    if (!tmp)
        return kc_err_set(err, KC_ERR_NOMEM, "file %s: out of memory", target);
    snprintf(tmp, len, "%s" TEMP_SUFFIX, target);
    int fd = mkostemp(tmp, O_CLOEXEC); /* 0600 whatever the umask */
    if (fd < 0) {
        kc_status st = kc_err_set(err, KC_ERR_IO, "file %s: cannot create a temporary file: %s",
                                  target, strerror(errno));
        free(tmp);
        return st;
    }
    kc_status st = KC_OK;
    if (kc_file_lock(fd) != 0)
        st = kc_err_set(err, KC_ERR_IO, "file %s: cannot lock: %s", tmp, strerror(errno));
    if (st == KC_OK)
        st = kc_file_write_all(fd, p, n, tmp, err);
    if (st == KC_OK && sync_fd(fd) != 0)
        st = kc_err_set(err, KC_ERR_IO, "file %s: fsync failed: %s", tmp, strerror(errno));
    if (st == KC_OK && fchmod(fd, mode) != 0)
        st = kc_err_set(err, KC_ERR_IO, "file %s: chmod failed: %s", tmp, strerror(errno));
    if (st != KC_OK) {
        unlink(tmp);
        close(fd);
        free(tmp);
        return st;
    }
    *tmp_out = tmp;
    *fd_out = fd;
    return KC_OK;
}

kc_status kc_file_replace_locked(const char *path, const uint8_t *p, size_t n, int *fd,
                                 kc_err *err)
{
    struct stat sb;
    if (fstat(*fd, &sb) != 0)
        return kc_err_set(err, KC_ERR_IO, "file %s: stat failed: %s", path, strerror(errno));
    /* a symlinked file is replaced where it is, the link kept */
    char *target = realpath(path, NULL);
    if (!target)
        return kc_err_set(err, errno == ENOMEM ? KC_ERR_NOMEM : KC_ERR_IO,
                          "file %s: cannot resolve the path: %s", path, strerror(errno));
    char *tmp;
    int nfd;
    kc_status st = write_temp(target, p, n, sb.st_mode & 07777, &tmp, &nfd, err);
    if (st == KC_OK && rename(tmp, target) != 0) {
        st = kc_err_set(err, KC_ERR_IO, "file %s: cannot replace it: %s", path, strerror(errno));
        unlink(tmp);
        close(nfd);
    }
    if (st == KC_OK) {
        sync_dir(target);
        close(*fd); /* releases the lock of the old, now unlinked, file */
        *fd = nfd;
        free(tmp);
    }
    free(target);
    return st;
}

kc_status kc_file_create(const char *path, const uint8_t *p, size_t n, unsigned mode,
                         int *fd_out, kc_err *err)
{
    char *tmp;
    int fd;
    kc_status st = write_temp(path, p, n, (mode_t)mode, &tmp, &fd, err);
    if (st != KC_OK)
        return st;
    int rc = link(tmp, path), e = errno;
    unlink(tmp);
    free(tmp);
    if (rc != 0) {
        close(fd);
        fd = -1;
        if (e == EEXIST || (e == ENOENT && kc_file_exists(path)))
            return KC_ERR_STATE;
        if (e != EPERM && e != ENOTSUP && e != EOPNOTSUPP && e != EMLINK)
            return kc_err_set(err, KC_ERR_IO, "file %s: cannot create: %s", path, strerror(e));
        /* no hard links here: exclusive create, then write under the lock */
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)mode);
        if (fd < 0)
            return errno == EEXIST ? KC_ERR_STATE
                                   : kc_err_set(err, KC_ERR_IO, "file %s: cannot create: %s",
                                                path, strerror(errno));
        if (kc_file_lock(fd) != 0) {
            close(fd);
            return KC_ERR_STATE;
        }
        st = kc_file_write_all(fd, p, n, path, err);
        if (st == KC_OK && sync_fd(fd) != 0)
            st = kc_err_set(err, KC_ERR_IO, "file %s: fsync failed: %s", path, strerror(errno));
        if (st != KC_OK) {
            close(fd);
            return st;
        }
    }
    sync_dir(path);
    remove_stale_temps(path); /* of earlier creators killed before the link */
    if (fd_out)
        *fd_out = fd;
    else
        close(fd);
    return KC_OK;
}

kc_status kc_file_replace(const char *path, const uint8_t *p, size_t n, unsigned mode,
                          kc_err *err)
{
    for (int attempt = 0; attempt < 4; attempt++) {
        int fd;
        kc_status st = kc_file_open_locked(path, KC_FILE_LOCK_WAIT, &fd, err);
        if (st == KC_OK) {
            st = kc_file_replace_locked(path, p, n, &fd, err);
            close(fd);
            return st;
        }
        if (st != KC_ERR_NOTFOUND)
            return st;
        if ((st = kc_file_create(path, p, n, mode, NULL, err)) != KC_ERR_STATE)
            return st;
        /* created by someone else meanwhile: replace theirs */
    }
    return kc_err_set(err, KC_ERR_BUSY, "file %s: keeps appearing and disappearing", path);
}

kc_status kc_file_overwrite(int fd, const uint8_t *p, size_t n, const char *path,
                            kc_err *err)
{
    ssize_t k;
    do
        k = pwrite(fd, p, n, 0);
    while (k < 0 && errno == EINTR);
    if (k < 0 || (size_t)k != n)
        return kc_err_set(err, KC_ERR_IO, "file %s: in-place write failed: %s", path,
                          k < 0 ? strerror(errno) : "short write");
    if (ftruncate(fd, (off_t)n) != 0)
        return kc_err_set(err, KC_ERR_IO, "file %s: truncate failed: %s", path, strerror(errno));
    if (sync_fd(fd) != 0)
        return kc_err_set(err, KC_ERR_IO, "file %s: fsync failed: %s", path, strerror(errno));
    return KC_OK;
}

int kc_file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}
