#include "kc_test.h"

#include <ftw.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kc_file.h"
#include "kc_hex.h"

kc_buf tc_hex(const char *hex)
{
    kc_buf b = KC_BUF_INIT;
    if (kc_unhex(hex, strlen(hex), &b) != KC_OK) {
        fprintf(stderr, "test data: malformed hex: %.40s\n", hex);
        abort();
    }
    return b;
}

kc_key tc_key_hex(kc_key_kind kind, const char *hex)
{
    kc_key k;
    kc_buf b = tc_hex(hex);
    if (kc_key_from_bytes(&k, kind, b.data, b.len, NULL) != KC_OK) {
        fprintf(stderr, "test data: not a key of kind %d: %.40s\n", (int)kind, hex);
        abort();
    }
    kc_buf_free(&b);
    return k;
}

const char *tc_tohex(const uint8_t *p, size_t n)
{
    static char *slots[4];
    static int next;
    char *s = malloc(2 * n + 1);
    if (!s)
        abort();
    kc_hex(p, n, s);
    free(slots[next]);
    slots[next] = s;
    next = (next + 1) % 4;
    return s;
}

char *tc_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *path = tc_path(base && *base ? base : "/tmp", "kctest.XXXXXX");
    if (!mkdtemp(path)) {
        perror("mkdtemp");
        abort();
    }
    return path;
}

int tc_setup_tmpdir(void **state)
{
    *state = tc_tmpdir();
    return 0;
}

int tc_teardown_tmpdir(void **state)
{
    tc_rmtree(*state);
    free(*state);
    return 0;
}

char *tc_dir;

int tc_setup_dir(void **state)
{
    tc_dir = tc_tmpdir();
    return 0;
}

int tc_teardown_dir(void **state)
{
    tc_rmtree(tc_dir);
    free(tc_dir);
    tc_dir = NULL;
    return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

void tc_rmtree(const char *path)
{
    if (path)
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *tc_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (!p)
        abort();
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

void tc_write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

kc_buf tc_read_file(const char *path)
{
    kc_buf b = KC_BUF_INIT;
    if (kc_file_read(path, 1 << 26, &b, NULL) != KC_OK) {
        fprintf(stderr, "test: cannot read %s\n", path);
        abort();
    }
    return b;
}

double tc_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void tc_made_up_message(uint8_t out[TC_MADE_UP_BYTES])
{
    static const uint8_t hdr[3][2] = {{0xc4, 0x20}, {0xc4, 0x10}, {0xc4, 0x28}};
    static const size_t len[3] = {32, 16, 40};
    size_t k = 0;
    out[k++] = 0x01;
    out[k++] = 0x93;
    for (int i = 0; i < 3; i++) {
        out[k++] = hdr[i][0];
        out[k++] = hdr[i][1];
        randombytes_buf(out + k, len[i]);
        k += len[i];
    }
}
