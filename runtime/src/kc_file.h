/* kc_file.h — whole-file reads and crash-safe writes.
 *
 * kc_file_replace: a kill at any instant leaves either the old or the new
 * content (temp file in the same directory, fsync, rename, fsync of the
 * directory). kc_file_overwrite: the `.seed` rule of the spec — one write(2)
 * at offset 0 of an already-open file, ftruncate, fsync — for small files
 * whose secrets must not linger in temp files. */
#ifndef KC_FILE_H
#define KC_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "kc_buf.h"
#include "kc_err.h"

/* Reads at most max_len bytes; a longer file is KC_ERR_INVALID. A missing
 * file is KC_ERR_NOTFOUND. */
kc_status kc_file_read(const char *path, size_t max_len, kc_buf *out, kc_err *err);

/* Atomically replaces (or creates) path with p[0..n). New files get `mode`;
 * an existing file keeps its permission bits. */
kc_status kc_file_replace(const char *path, const uint8_t *p, size_t n,
                          unsigned mode, kc_err *err);

/* In-place rewrite of an open descriptor: pwrite at 0, ftruncate, fsync. */
kc_status kc_file_overwrite(int fd, const uint8_t *p, size_t n, const char *path,
                            kc_err *err);

/* write(2) until all of p[0..n) is written (EINTR retried). */
kc_status kc_file_write_all(int fd, const uint8_t *p, size_t n, const char *path, kc_err *err);
/* fsync of the directory holding path, so that a rename in it is durable. */
void kc_file_sync_dir(const char *path);

/* 1 if path exists (any type), 0 otherwise. */
int kc_file_exists(const char *path);

#endif
