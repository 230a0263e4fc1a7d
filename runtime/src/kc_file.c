#include "kc_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

kc_status kc_file_read(const char *path, size_t max_len, kc_buf *out, kc_err *err)
{
    kc_buf_reset(out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kc_err_set(err, errno == ENOENT ? KC_ERR_NOTFOUND : KC_ERR_IO,
                          "file %s: cannot open: %s", path, strerror(errno));
    kc_status st = KC_OK;
    for (;;) {
        if ((st = kc_buf_reserve(out, 4096)) != KC_OK)
            break;
        ssize_t k = read(fd, out->data + out->len, out->cap - out->len);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            st = kc_err_set(err, KC_ERR_IO, "file %s: read failed: %s", path, strerror(errno));
            break;
        }
        if (k == 0)
            break;
        out->len += (size_t)k;
        if (out->len > max_len) {
            st = kc_err_set(err, KC_ERR_INVALID, "file %s: larger than %zu bytes", path, max_len);
            break;
        }
    }
    close(fd);
    if (st != KC_OK)
        kc_buf_reset(out);
    return st;
}

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

void kc_file_sync_dir(const char *path)
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

kc_status kc_file_replace(const char *path, const uint8_t *p, size_t n,
                          unsigned mode, kc_err *err)
{
    struct stat sb;
    if (stat(path, &sb) == 0)
        mode = sb.st_mode & 07777;
    size_t tl = strlen(path) + 16;
    char *tmp = malloc(tl);
    if (!tmp)
        return kc_err_set(err, KC_ERR_NOMEM, "file %s: out of memory", path);
    snprintf(tmp, tl, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        kc_status st = kc_err_set(err, KC_ERR_IO, "file %s: cannot create temporary file: %s",
                                  path, strerror(errno));
        free(tmp);
        return st;
    }
    kc_status st = KC_OK;
    if (fchmod(fd, (mode_t)mode) != 0)
        st = kc_err_set(err, KC_ERR_IO, "file %s: chmod failed: %s", tmp, strerror(errno));
    if (st == KC_OK)
        st = kc_file_write_all(fd, p, n, tmp, err);
    if (st == KC_OK && fsync(fd) != 0)
        st = kc_err_set(err, KC_ERR_IO, "file %s: fsync failed: %s", tmp, strerror(errno));
    if (close(fd) != 0 && st == KC_OK)
        st = kc_err_set(err, KC_ERR_IO, "file %s: close failed: %s", tmp, strerror(errno));
    if (st == KC_OK && rename(tmp, path) != 0)
        st = kc_err_set(err, KC_ERR_IO, "file %s: rename failed: %s", path, strerror(errno));
    if (st != KC_OK)
        unlink(tmp);
    else
        kc_file_sync_dir(path);
    free(tmp);
    return st;
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
    if (fsync(fd) != 0)
        return kc_err_set(err, KC_ERR_IO, "file %s: fsync failed: %s", path, strerror(errno));
    return KC_OK;
}

int kc_file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}
