/* Threads the library starts (its own and the embedded broker's) block
 * every signal, so a program's signal handlers run on its own threads and
 * no poll(2) of ours or of librdkafka's mock cluster sees EINTR. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kc_broker.h"
#include "kc_thread.h"

/* The SigBlk mask of task tid, as /proc shows it (hex). */
static unsigned long long blocked_of(const char *tid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%s/status", tid);
    FILE *f = fopen(path, "r");
    unsigned long long mask = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "SigBlk: %llx", &mask) == 1)
            break;
    if (f)
        fclose(f);
    return mask;
}

/* Threads other than the caller, and how many of them let SIGTERM,
 * SIGINT or SIGUSR1 through. */
static int open_threads(int *count)
{
    const unsigned long long wanted = (1ull << (SIGTERM - 1)) | (1ull << (SIGINT - 1)) |
                                      (1ull << (SIGUSR1 - 1));
    char self[32];
    snprintf(self, sizeof self, "%ld", (long)syscall(SYS_gettid));
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    struct dirent *e;
    int open = 0;
    *count = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, self) == 0)
            continue;
        ++*count;
        if ((blocked_of(e->d_name) & wanted) != wanted)
            open++;
    }
    closedir(d);
    return open;
}

static void *wait_for_stop(void *arg)
{
    while (!*(volatile int *)arg)
        usleep(1000);
    return NULL;
}

static void test_started_threads_block_signals(void **state)
{
    volatile int stop = 0;
    pthread_t t;
    assert_int_equal(kc_thread_start(&t, wait_for_stop, (void *)&stop), 0);
    int n;
    assert_int_equal(open_threads(&n), 0);
    assert_int_equal(n, 1);
    stop = 1;
    pthread_join(t, NULL);
    /* the caller's own mask is what it was */
    sigset_t now;
    pthread_sigmask(SIG_SETMASK, NULL, &now);
    assert_false(sigismember(&now, SIGTERM));
}

static void test_embedded_broker_threads_block_signals(void **state)
{
    kc_broker *b;
    kc_err err;
    assert_int_equal(kc_broker_start(&b, &err), KC_OK);
    int port;
    assert_int_equal(kc_broker_listen(b, 0, &port, &err), KC_OK);
    int n;
    assert_int_equal(open_threads(&n), 0);
    assert_true(n >= 3);   /* librdkafka's, the mock cluster's, the relay */
    kc_broker_stop(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_started_threads_block_signals),
        cmocka_unit_test(test_embedded_broker_threads_block_signals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
