/* kafkacrypto.h — public C API of libkafkacrypto.
 *
 * Message-layer encryption for Apache Kafka, wire- and file-compatible with
 * the Python kafkacrypto package (0.9.11.x, classical suite). */
#ifndef KAFKACRYPTO_H
#define KAFKACRYPTO_H

#ifdef __cplusplus
extern "C" {
#endif

#define KC_VERSION_STRING "0.1.0"

/* The library version, "MAJOR.MINOR.PATCH". */
const char *kc_version(void);

/* Initialises libsodium; safe to call more than once and from any thread.
 * Returns 0 on success. Every other entry point calls it as needed. */
int kc_init(void);

#ifdef __cplusplus
}
#endif

#endif
