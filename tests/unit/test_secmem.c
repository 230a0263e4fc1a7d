/* kc_secmem: the pool for key material. Slots are zeroed, aligned and
 * distinct, wiped when freed and reused; 100 000 keys take a bounded number
 * of mappings (sodium_malloc would take about 400 000) which are given back
 * when freed; a refused mlock leaves the pool working, with one warning;
 * a pointer that is not a live slot aborts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kc_log.h"
#include "kc_secmem.h"
#include "kc_test_mem.h"

#define MANY 100000

/* Reads memory the pool has poisoned for AddressSanitizer (a freed slot),
 * to see that it was wiped. */
#if defined(__clang__) || defined(__GNUC__)
__attribute__((no_sanitize_address))
#endif
static int all_zero_unchecked(const volatile uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* Runs f in a child process; returns its wait status. */
static int in_child(void (*f)(void))
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        f();
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void test_slots_are_zeroed_aligned_and_distinct(void **state)
{
    (void)state;
    assert_null(kc_secmem_alloc(0));
    assert_null(kc_secmem_alloc(KC_SECMEM_MAX + 1));
    enum { N = 300 };
    uint8_t *p[N];
    size_t size[N];
    for (size_t i = 0; i < N; i++) {
        size[i] = 1 + (i * 37) % KC_SECMEM_MAX;
        p[i] = kc_secmem_alloc(size[i]);
        assert_non_null(p[i]);
        assert_int_equal((uintptr_t)p[i] % 16, 0);
        assert_true(all_zero(p[i], size[i]));
        memset(p[i], (int)(i & 0xff), size[i]);
    }
    /* No slot overlaps another: every pattern is intact. */
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < size[i]; j++)
            assert_int_equal(p[i][j], i & 0xff);
    for (size_t i = 0; i < N; i++)
        kc_secmem_free(p[i]);
    kc_secmem_free(NULL);
}

static void test_free_wipes_and_slots_are_reused(void **state)
{
    (void)state;
    /* keep holds the chunk, so the freed slot stays mapped to be read. */
    uint8_t *keep = kc_secmem_alloc(500), *p = kc_secmem_alloc(500);
    assert_non_null(keep);
    assert_non_null(p);
    memset(p, 0xA5, 500);
    kc_secmem_free(p);
    assert_true(all_zero_unchecked(p, 512));
    uint8_t *q = kc_secmem_alloc(500);
    assert_ptr_equal(q, p);  /* the slot just freed comes back first */
    assert_true(all_zero(q, 500));
    kc_secmem_free(q);
    kc_secmem_free(keep);

    /* Freeing and allocating again takes no new memory. */
    enum { N = 1000 };
    uint8_t *s[N];
    for (size_t i = 0; i < N; i++)
        assert_non_null(s[i] = kc_secmem_alloc(48));
    kc_secmem_stats before, after;
    kc_secmem_get_stats(&before);
    for (size_t i = 0; i < N; i++)
        kc_secmem_free(s[i]);
    for (size_t i = 0; i < N; i++)
        assert_non_null(s[i] = kc_secmem_alloc(48));
    kc_secmem_get_stats(&after);
    assert_int_equal(after.chunks, before.chunks);
    assert_int_equal(after.mapped, before.mapped);
    for (size_t i = 0; i < N; i++)
        kc_secmem_free(s[i]);
}

static void test_many_keys_take_few_mappings_and_give_them_back(void **state)
{
    (void)state;
    uint8_t **p = calloc(MANY, sizeof *p);
    assert_non_null(p);
    kc_secmem_stats s0, s1, s2;
    kc_secmem_get_stats(&s0);
    size_t maps0 = tc_mappings();
    for (size_t i = 0; i < MANY; i++) {
        assert_non_null(p[i] = kc_secmem_alloc(32));
        p[i][0] = 1;
    }
    size_t maps1 = tc_mappings();
    kc_secmem_get_stats(&s1);
    print_message("%d keys of 32 bytes: %zu mappings more, %zu chunks, %zu KiB mapped\n", MANY,
                  maps1 - maps0, s1.chunks - s0.chunks, (s1.mapped - s0.mapped) / 1024);
    assert_int_equal(s1.slots_used - s0.slots_used, MANY);
    assert_true(maps1 - maps0 <= 60);  /* one sodium_malloc per key: about 4 each */
    assert_true(s1.mapped - s0.mapped <= 2 * MANY * 32 + (1 << 20));
    /* What the pool says is locked is locked (VmLck counts it). */
    assert_true(tc_locked_kib() * 1024 >= s1.locked);
    if (!s1.lock_failed)
        assert_int_equal(s1.locked, s1.mapped);
    for (size_t i = 0; i < MANY; i++)
        kc_secmem_free(p[i]);
    kc_secmem_get_stats(&s2);
    /* At most one empty chunk per class stays (the pool's mappings); the
     * process may keep a few more for malloc's own arenas (the
     * bookkeeping; AddressSanitizer's allocator keeps its regions). */
    assert_int_equal(s2.slots_used, s0.slots_used);
    assert_true(s2.chunks <= s0.chunks + 1);
    assert_true(s2.mapped <= s0.mapped + (1 << 20));
    assert_true(tc_mappings() <= maps0 + 16);
    free(p);
}

typedef struct warnings {
    int secmem;
} warnings;

static void count_warnings(void *ctx, kc_log_level level, const char *logger, const char *msg)
{
    (void)msg;
    if (level == KC_LOG_WARNING && strcmp(logger, "kafkacrypto.secmem") == 0)
        ((warnings *)ctx)->secmem++;
}

/* In a child: no locked memory allowed at all. */
static void unlocked_child(void)
{
    static warnings w;
    kc_log_set_sink(count_warnings, &w);
    tc_limit_memlock(0);
    kc_secmem_stats s0, s;
    kc_secmem_get_stats(&s0);  /* inherited: chunks of earlier tests */
    enum { N = 200 };  /* 200 KiB of 1 KiB slots: several chunks */
    uint8_t *p[N];
    for (size_t i = 0; i < N; i++) {
        if (!(p[i] = kc_secmem_alloc(1024)))
            _exit(10);
        memset(p[i], 0x5A, 1024);
    }
    kc_secmem_get_stats(&s);
    if (w.secmem != 1)
        _exit(11);
    if (!s.lock_failed || s.locked != s0.locked || s.chunks < s0.chunks + 3)
        _exit(12);
    for (size_t i = 0; i < N; i++) {
        if (p[i][1023] != 0x5A)
            _exit(13);
        kc_secmem_free(p[i]);
    }
    _exit(0);
}

static void test_refused_mlock_falls_back_with_one_warning(void **state)
{
    (void)state;
    int st = in_child(unlocked_child);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void free_stack_pointer(void)
{
    uint8_t x[32];
    kc_secmem_free(x);
}

static void free_twice(void)
{
    void *p = kc_secmem_alloc(32);
    kc_secmem_free(p);
    kc_secmem_free(p);
}

static void free_inside_a_slot(void)
{
    uint8_t *p = kc_secmem_alloc(64);
    kc_secmem_free(p + 8);
}

static void test_bad_free_aborts(void **state)
{
    (void)state;
    void (*cases[])(void) = {free_stack_pointer, free_twice, free_inside_a_slot};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st = in_child(cases[i]);
        assert_true(WIFSIGNALED(st));
        assert_int_equal(WTERMSIG(st), SIGABRT);
    }
}

static void *churn(void *arg)
{
    uint8_t tag = (uint8_t)(uintptr_t)arg;
    uint8_t *held[64] = {0};
    for (unsigned i = 0; i < 20000; i++) {
        unsigned k = (i * 2654435761u) % 64;
        if (held[k]) {
            for (size_t j = 0; j < 40; j++)
                if (held[k][j] != tag)
                    return (void *)1;
            kc_secmem_free(held[k]);
            held[k] = NULL;
        } else {
            if (!(held[k] = kc_secmem_alloc(40)))
                return (void *)1;
            memset(held[k], tag, 40);
        }
    }
    for (size_t k = 0; k < 64; k++)
        kc_secmem_free(held[k]);
    return NULL;
}

static void test_threads_never_share_a_slot(void **state)
{
    (void)state;
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churn, (void *)(i + 1)), 0);
    for (int i = 0; i < 4; i++) {
        void *r;
        assert_int_equal(pthread_join(t[i], &r), 0);
        assert_null(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_free_wipes_and_slots_are_reused),
        cmocka_unit_test(test_slots_are_zeroed_aligned_and_distinct),
        cmocka_unit_test(test_many_keys_take_few_mappings_and_give_them_back),
        cmocka_unit_test(test_refused_mlock_falls_back_with_one_warning),
        cmocka_unit_test(test_bad_free_aborts),
        cmocka_unit_test(test_threads_never_share_a_slot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
