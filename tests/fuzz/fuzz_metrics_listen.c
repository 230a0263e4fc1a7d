/* metrics_listen comes from kafkacrypto.cfg or a node option: the
 * HOST:PORT parser must take any bytes. Input: the setting's text. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kc_metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    struct sockaddr_storage ss;
    socklen_t len = 0;
    if (kc_metrics_parse_listen(s, &ss, &len) && len > sizeof ss)
        abort();
    free(s);
    return 0;
}
