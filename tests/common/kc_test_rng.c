#include "kc_test_rng.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_test.h"

static uint8_t queue[4096];
static size_t queued, taken;

static const char *scripted_name(void)
{
    return "kc-test-scripted";
}

static uint32_t scripted_random(void)
{
    return randombytes_sysrandom_implementation.random();
}

static void scripted_buf(void *const buf, const size_t size)
{
    if (queued == taken) {
        randombytes_sysrandom_implementation.buf(buf, size);
        return;
    }
    if (size > queued - taken) {
        fprintf(stderr, "tc_rng: %zu random bytes requested, %zu scripted\n", size,
                queued - taken);
        abort();
    }
    memcpy(buf, queue + taken, size);
    taken += size;
    if (taken == queued)
        taken = queued = 0;
}

static randombytes_implementation scripted = {
    .implementation_name = scripted_name,
    .random = scripted_random,
    .buf = scripted_buf,
};

int tc_rng_install(void)
{
    return randombytes_set_implementation(&scripted);
}

void tc_rng_script(const uint8_t *p, size_t n)
{
    if (n > sizeof queue - queued)
        abort();
    memcpy(queue + queued, p, n);
    queued += n;
}

void tc_rng_script_hex(const char *hex)
{
    kc_buf b = tc_hex(hex);
    tc_rng_script(b.data, b.len);
    kc_buf_free(&b);
}

size_t tc_rng_pending(void)
{
    return queued - taken;
}
