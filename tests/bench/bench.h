/* kc-bench: shared by the parts of the benchmark. */
#ifndef KC_BENCH_H
#define KC_BENCH_H

#include <stdint.h>

#include "kafkacrypto.h"

/* CLOCK_MONOTONIC, in seconds. */
double bench_now(void);
/* Prints what failed (and why) and exits 1. */
void bench_die(const char *what, const kc_err *err);
/* Removes the files of node `node` (config, .crypto, .seed) from dir. */
void bench_remove_node(const char *dir, const char *node);

/* End-to-end throughput, encrypted (prod/cons share the key of root
 * "bench") and plaintext; value holds at least 1 KiB. */
void bench_e2e(kc_serde *prod, kc_serde *cons, const uint8_t *value);
/* Key-exchange latency between two nodes on the embedded broker; dir is
 * a scratch directory. */
void bench_key_exchange(const char *dir);
/* Open time, mappings, locked memory and key lookup of a node with 100 000
 * old producer keys; dir is a scratch directory. */
void bench_oldkeys(const char *dir);

#endif
