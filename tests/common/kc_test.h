/* kc_test.h — small helpers shared by unit tests, vector runner and bench. */
#ifndef KC_TEST_H
#define KC_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "kc_buf.h"
#include "kc_keys.h"

/* Decodes hex; aborts the test program on malformed hex (test data bug). */
kc_buf tc_hex(const char *hex);
/* The key of `kind` whose serialized bytes are hex; aborts if they do not
 * parse (test data bug). */
kc_key tc_key_hex(kc_key_kind kind, const char *hex);
/* Lowercase hex of p (static buffer rotated over 4 calls; for messages). */
const char *tc_tohex(const uint8_t *p, size_t n);

/* A fresh private directory under $TMPDIR (or /tmp); tc_rmtree removes it. */
char *tc_tmpdir(void);
void tc_rmtree(const char *path);
/* cmocka setup/teardown pair: a fresh tc_tmpdir() in *state per test. */
int tc_setup_tmpdir(void **state);
int tc_teardown_tmpdir(void **state);
/* cmocka setup/teardown pair (per test or per group) for programs whose
 * helpers need the directory outside the test function: a fresh
 * tc_tmpdir() in tc_dir. */
extern char *tc_dir;
int tc_setup_dir(void **state);
int tc_teardown_dir(void **state);
/* dir + "/" + name in a malloc'd string */
char *tc_path(const char *dir, const char *name);
void tc_write_file(const char *path, const uint8_t *p, size_t n);
/* Whole file; aborts if missing. */
kc_buf tc_read_file(const char *path);

/* CLOCK_MONOTONIC in seconds, for bounded waits. */
double tc_mono(void);
/* A data message whose key index nobody holds, as an attacker writes it:
 * 01 93 c4 20 <32> c4 10 <16> c4 28 <40>, random. */
#define TC_MADE_UP_BYTES 96
void tc_made_up_message(uint8_t out[TC_MADE_UP_BYTES]);

#endif
