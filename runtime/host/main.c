/* kafkacrypto — the host binary. */
#include <stdio.h>
#include <string.h>

#include "kafkacrypto.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kafkacrypto [--help] [--version] COMMAND [ARGS...]\n"
            "commands:\n"
            "  demo      show the key exchange and encryption on an embedded broker\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("kafkacrypto %s\n", kc_version());
        return 0;
    }
    if (strcmp(argv[1], "demo") == 0) {
        printf("kafkacrypto %s: the crypto core is built; the demo arrives with the runtime.\n",
               kc_version());
        return 0;
    }
    fprintf(stderr, "kafkacrypto: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
