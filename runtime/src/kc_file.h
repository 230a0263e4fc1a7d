/* kc_file.h — opening, reading and crash-safe writing of the node's files.
 *
 * One set of rules for every file we open or write (config, .crypto, .seed,
 * settings, policies):
 *
 * - Opening never blocks: files are opened with O_NONBLOCK and anything but
 *   a regular file (a FIFO, a device, a directory) is refused with
 *   "file F: not a regular file" at once.
 * - Locks are whole-file fcntl write locks (what Python's fcntl.lockf
 *   takes): open-file-description locks where the kernel has them (they
 *   conflict even between two opens in one process), else classic POSIX
 *   record locks.
 * - A rewrite is one atomic replace: a temporary file "<file>.tmpXXXXXX"
 *   next to the real file (symlinks resolved), created 0600, locked at
 *   once, written, fsync'ed, given the file's permission bits, renamed over
 *   the file (or hard-linked to it, for a file that must not exist yet),
 *   then the directory is fsync'ed. A kill at any instant leaves the old or
 *   the new content under the name, never a mix.
 * - A kill can leave the temporary file behind (it may hold a key or a
 *   seed). Whoever next opens the file with its lock (kc_file_open_locked)
 *   removes such leftovers: names "<file>.tmpXXXXXX" (and the
 *   "<file>.new.XXXXXX" of earlier versions) that are regular files nobody
 *   holds a lock on. Every writer holds the file's lock while its temporary
 *   file exists and locks the temporary file itself, so a live writer's
 *   file is never taken for a leftover.
 *
 * kc_file_overwrite is the `.seed` rule of the spec: one write(2) at offset
 * 0 of the open, locked file, ftruncate, fsync — no temporary file. */
#ifndef KC_FILE_H
#define KC_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "kc_buf.h"
#include "kc_err.h"

/* How long kc_file_replace waits for the lock of a file another process is
 * rewriting; a holder for longer (a running node) is KC_ERR_BUSY. */
#define KC_FILE_LOCK_WAIT 5.0

/* Opens path with flags (O_RDONLY or O_RDWR; O_NONBLOCK and O_CLOEXEC are
 * added, O_NONBLOCK removed again once it is known to be a regular file).
 * Missing: KC_ERR_NOTFOUND; not a regular file: KC_ERR_INVALID. On failure
 * errno is still that of the failing call. */
kc_status kc_file_open(const char *path, int flags, int *fd_out, kc_err *err);

/* Reads at most max_len bytes; a longer file is KC_ERR_INVALID. A missing
 * file is KC_ERR_NOTFOUND, a non-regular one KC_ERR_INVALID. */
kc_status kc_file_read(const char *path, size_t max_len, kc_buf *out, kc_err *err);

/* The whole of an open file (from offset 0), at most max_len bytes. */
kc_status kc_file_read_fd(int fd, const char *path, size_t max_len, kc_buf *out, kc_err *err);

/* Takes the whole-file write lock on fd without waiting: 0, or -1 with
 * errno (EAGAIN/EACCES: someone else holds it). */
int kc_file_lock(int fd);

/* Opens path read-write and locks it, making sure the locked descriptor is
 * still the file at path (a rename may replace it meanwhile), then removes
 * leftover temporary files of it. Waits up to wait_seconds for a lock held
 * elsewhere (0: not at all), then KC_ERR_BUSY "file F: locked by another
 * process". Missing: KC_ERR_NOTFOUND; not a regular file: KC_ERR_INVALID;
 * on an open failure errno is left from open(2). */
kc_status kc_file_open_locked(const char *path, double wait_seconds, int *fd_out, kc_err *err);

/* Atomically replaces (or creates) path with p[0..n), under its lock
 * (waiting up to KC_FILE_LOCK_WAIT). New files get `mode`; an existing file
 * keeps its permission bits. Not for a file this process holds locked: use
 * kc_file_replace_locked. */
kc_status kc_file_replace(const char *path, const uint8_t *p, size_t n, unsigned mode,
                          kc_err *err);

/* Atomically replaces the file that *fd (locked by the caller, from
 * kc_file_open_locked) is open on. On success *fd is the new file's
 * descriptor, already locked before it took the name; the old one is
 * closed. On failure *fd is unchanged. */
kc_status kc_file_replace_locked(const char *path, const uint8_t *p, size_t n, int *fd,
                                 kc_err *err);

/* Creates path holding p[0..n) (mode `mode`) only if it does not exist, in
 * one step (a complete temporary file hard-linked into place, or, where the
 * file system has no hard links, an exclusive create written under its
 * lock). KC_ERR_STATE (err untouched): the file exists. With fd_out, the
 * new file stays open and locked there. */
kc_status kc_file_create(const char *path, const uint8_t *p, size_t n, unsigned mode,
                         int *fd_out, kc_err *err);

/* In-place rewrite of an open descriptor: pwrite at 0, ftruncate, fsync. */
kc_status kc_file_overwrite(int fd, const uint8_t *p, size_t n, const char *path,
                            kc_err *err);

/* write(2) until all of p[0..n) is written (EINTR retried). */
kc_status kc_file_write_all(int fd, const uint8_t *p, size_t n, const char *path, kc_err *err);

/* 1 if path exists (any type), 0 otherwise. */
int kc_file_exists(const char *path);

/* 1 if name (a directory entry's name) is one of our temporary files of a
 * file named base ("<base>.tmpXXXXXX" or "<base>.new.XXXXXX"). */
int kc_file_is_temp_name(const char *name, const char *base);

#endif
