/* kc_datafile.h — the one way policy and variant code reads files.
 *
 * The rule (what keeps node secrets out of Lua): a data file is read only
 * if
 *   - its name is relative, without "..", and, with every symlink resolved,
 *     it is still inside `dir` (the policy file's own directory);
 *   - it is a regular file of at most `max` bytes;
 *   - it is not a node file or a temporary file: its resolved name does not
 *     end in ".crypto", ".seed" or ".config", nor look like one of our
 *     temporary files ("X.tmpXXXXXX", "X.new.XXXXXX");
 *   - it is not private: its group or others may read it. Every secret file
 *     kafkacrypto writes (.crypto, .seed and their temporary files) is 0600,
 *     so a secret is refused under any name, a hard link or a copy with its
 *     mode included.
 * The mode and type are checked on the opened descriptor, not the name. */
#ifndef KC_DATAFILE_H
#define KC_DATAFILE_H

#include <stddef.h>

#include "kc_buf.h"
#include "kc_err.h"

/* On failure err->msg says why, without naming the file (the caller does):
 * KC_ERR_DENIED for a refusal by the rule, KC_ERR_NOTFOUND, KC_ERR_IO. */
kc_status kc_datafile_read(const char *dir, const char *name, size_t max, kc_buf *out,
                           kc_err *err);

#endif
