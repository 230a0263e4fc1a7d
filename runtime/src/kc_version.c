#include <sodium.h>

#include "kafkacrypto.h"

const char *kc_version(void)
{
    return KC_VERSION_STRING;
}

int kc_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}
