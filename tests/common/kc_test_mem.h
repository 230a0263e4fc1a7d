/* kc_test_mem.h — the process's memory mappings and locked memory (Linux
 * /proc), and nodes with many old producer keys: what kc_secmem must keep
 * bounded. Shared by unit tests and the bench. */
#ifndef KC_TEST_MEM_H
#define KC_TEST_MEM_H

#include <stddef.h>
#include <stdint.h>

#include "kafkacrypto.h"

/* Lines of /proc/self/maps. */
size_t tc_mappings(void);
/* VmLck of /proc/self/status, in KiB. */
size_t tc_locked_kib(void);
/* Makes RLIMIT_MEMLOCK bite in this thread (and threads it starts later):
 * drops CAP_IPC_LOCK (which exempts root from the limit) and sets the soft
 * limit to bytes. Aborts if it cannot. */
void tc_limit_memlock(size_t bytes);

/* Provisions producer node `node` in dir and gives it n old producer
 * records of root (32-byte key indices, births spread over the last six
 * days, oldest first), saved as its oldkeys by the node itself. Returns
 * the config path (free it); *oldest receives the first record's index and
 * secret. */
char *tc_node_with_oldkeys(const char *dir, const char *node, const char *root, size_t n,
                           kc_keyidx *oldest_ki, uint8_t oldest_secret[KC_SECRET_BYTES]);

#endif
