/* kc_thread.h — threads the library starts never take signals.
 *
 * A program that catches signals (kafkacrypto.wait_for_signal, a host's
 * SIGTERM handler) must receive them on its own threads: delivered to one of
 * ours, or to a thread librdkafka starts for us, a signal interrupts poll(2),
 * and librdkafka's mock cluster stops for good on EINTR. So every thread is
 * started with all signals blocked, and calls into librdkafka that start
 * threads run inside kc_signals_block/kc_signals_restore. */
#ifndef KC_THREAD_H
#define KC_THREAD_H

#include <pthread.h>
#include <signal.h>

/* pthread_create with every signal blocked in the new thread; 0 or an errno. */
int kc_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/* Blocks every signal in the calling thread, saving its mask. */
void kc_signals_block(sigset_t *saved);
void kc_signals_restore(const sigset_t *saved);

#endif
