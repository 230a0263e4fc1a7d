#include "kc_datafile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kc_file.h"

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool relative_without_dotdot(const char *name)
{
    if (!name[0] || name[0] == '/')
        return false;
    for (const char *p = name; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return false;
        p += n + (p[n] == '/');
    }
    return true;
}

/* A node file, or a temporary file of any file ("X.tmpXXXXXX"). */
static bool node_or_temp_name(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (has_suffix(base, ".crypto") || has_suffix(base, ".seed") || has_suffix(base, ".config"))
        return true;
    /* "X.tmpXXXXXX" or "X.new.XXXXXX" for any X */
    size_t n = strlen(base);
    for (size_t tail = 10; tail <= 11; tail++) {
        if (n <= tail)
            continue;
        char *stem = strndup(base, n - tail);
        bool temp = stem && kc_file_is_temp_name(base, stem);
        free(stem);
        if (temp)
            return true;
    }
    return false;
}

static bool inside(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/')
        return path[0] == '/';
    return strncmp(path, dir, n) == 0 && path[n] == '/';
}

/* real: resolved and checked by name; the type, mode and size are checked
 * on the open descriptor. */
static kc_status read_checked(const char *real, size_t max, kc_buf *out, kc_err *err)
{
    int fd;
    kc_status st = kc_file_open(real, O_RDONLY | O_NOFOLLOW, &fd, NULL);
    if (st == KC_ERR_INVALID)
        return kc_err_set(err, KC_ERR_DENIED, "not a regular file");
    if (st != KC_OK)
        return kc_err_set(err, st, "%s", strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        st = kc_err_set(err, KC_ERR_IO, "%s", strerror(errno));
    else if (!(sb.st_mode & (S_IRGRP | S_IROTH)))
        st = kc_err_set(err, KC_ERR_DENIED,
                        "readable only by its owner, as the node's secret files are; a data "
                        "file for policies must be group- or world-readable (chmod go+r) and "
                        "hold no secret");
    else if ((uint64_t)sb.st_size > max)
        st = kc_err_set(err, KC_ERR_DENIED, "larger than the data file limit (%zu bytes)", max);
    else if ((st = kc_file_read_fd(fd, real, max, out, NULL)) == KC_ERR_INVALID)
        st = kc_err_set(err, KC_ERR_DENIED, "grew past the data file limit (%zu bytes)", max);
    else if (st != KC_OK)
        st = kc_err_set(err, st, "read failed");
    close(fd);
    return st;
}

kc_status kc_datafile_read(const char *dir, const char *name, size_t max, kc_buf *out,
                           kc_err *err)
{
    kc_buf_reset(out);
    if (!relative_without_dotdot(name))
        return kc_err_set(err, KC_ERR_DENIED,
                          "expected a relative name inside the policy's directory, without '..'");
    if (node_or_temp_name(name))
        return kc_err_set(err, KC_ERR_DENIED,
                          "not a data file: .crypto, .seed, .config and temporary files are "
                          "never readable");
    size_t len = strlen(dir) + strlen(name) + 2;
    char *joined = malloc(len);
    if (!joined)
        return kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    snprintf(joined, len, "%s/%s", dir, name);
    char *real = realpath(joined, NULL);
    int e = errno;
    char *rdir = real ? realpath(dir, NULL) : NULL;
    if (real && !rdir)
        e = errno;
    free(joined);
    kc_status st;
    if (!real || !rdir)
        st = kc_err_set(err, e == ENOENT ? KC_ERR_NOTFOUND : KC_ERR_IO, "%s", strerror(e));
    else if (!inside(real, rdir))
        st = kc_err_set(err, KC_ERR_DENIED,
                        "resolves (through a symlink) to a file outside the policy's directory");
    else if (node_or_temp_name(real))
        st = kc_err_set(err, KC_ERR_DENIED,
                        "resolves (through a symlink) to a .crypto, .seed, .config or temporary "
                        "file, which are never readable");
    else
        st = read_checked(real, max, out, err);
    free(real);
    free(rdir);
    return st;
}
