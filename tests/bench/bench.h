/* kc-bench: shared by the parts of the benchmark. */
#ifndef KC_BENCH_H
#define KC_BENCH_H

#include <stddef.h>
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
/* One serialize bound plus one deserialize bound (BLAKE2b + secretbox
 * each way) for size bytes, ns, best of several rounds. */
double bench_bound_pair_ns(size_t size);
/* Resident set of this process, KiB. */
long bench_rss_kb(void);
/* RSS of 1 000 roots' consumer keys, then (bench_e2e.c) RSS at the start
 * and end of `seconds` of encrypted end-to-end rounds. */
void bench_memory(void);
void bench_sustained(kc_serde *prod, kc_serde *cons, const uint8_t *value, double seconds);
/* Deserialization through a kc_serde_pool against one thread, no broker. */
void bench_deserialize_parallel(kc_serde *prod, kc_serde *cons, const uint8_t *value);
/* Key-exchange latency between two nodes on the embedded broker; dir is
 * a scratch directory. */
void bench_key_exchange(const char *dir);
/* Open time, mappings, locked memory and key lookup of a node with 100 000
 * old producer keys; dir is a scratch directory. */
void bench_oldkeys(const char *dir);
/* The same with 1 producer and 20 consumer nodes over 1 and 20 roots. */
void bench_key_exchange_scale(const char *dir);

#endif
