/* kc_test_rng.h — scripted randomness for tests that must reproduce
 * upstream's bytes (a sealed box with a known esk and nonce, a new file
 * with a known ek). Install before anything calls sodium_init(). */
#ifndef KC_TEST_RNG_H
#define KC_TEST_RNG_H

#include <stddef.h>
#include <stdint.h>

/* Replaces libsodium's randombytes: scripted bytes first, then the system
 * generator. Must run before sodium_init(); returns 0 on success. */
int tc_rng_install(void);
/* Queues bytes for the next randombytes_buf calls (in order). A call that
 * needs more than what is queued aborts (a test bug). */
void tc_rng_script(const uint8_t *p, size_t n);
void tc_rng_script_hex(const char *hex);
/* Bytes still queued (a test asserts 0 to prove they were all drawn). */
size_t tc_rng_pending(void);

#endif
