#include "kc_thread.h"

void kc_signals_block(sigset_t *saved)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, saved);
}

void kc_signals_restore(const sigset_t *saved)
{
    pthread_sigmask(SIG_SETMASK, saved, NULL);
}

int kc_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    sigset_t saved;
    kc_signals_block(&saved);   /* the new thread inherits the mask */
    int rc = pthread_create(t, NULL, fn, arg);
    kc_signals_restore(&saved);
    return rc;
}
