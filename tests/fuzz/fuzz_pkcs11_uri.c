/* kc_pkcs11_uri_shown on arbitrary text (a cryptokey value from a node
 * config): never crash, never grow, and no pin-value attribute survives
 * (in the path or the query), since the result goes into error messages
 * and logs. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kc_cryptokey_pkcs11.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size + 1);
    if (!in)
        return 0;
    memcpy(in, data, size);
    in[size] = 0;
    char *out = kc_pkcs11_uri_shown(in);
    if (out) {
        if (strlen(out) > strlen(in))
            abort();
        /* every attribute, path (';') or query ('?', '&') */
        const char *p = strncasecmp(out, "pkcs11:", 7) == 0 ? out + 7 : out;
        for (;;) {
            size_t k = strcspn(p, ";?&");
            if (k >= 9 && strncasecmp(p, "pin-value", 9) == 0 && (k == 9 || p[9] == '='))
                abort();
            if (!p[k])
                break;
            p += k + 1;
        }
        free(out);
    }
    free(in);
    return 0;
}
