#include "kc_test_node.h"

#include <stdio.h>
#include <stdlib.h>

kc_node *tc_open_node(const char *config, double key_wait_interval)
{
    kc_node_options o;
    kc_node_options_init(&o);
    o.config_path = config;
    o.key_wait_interval = key_wait_interval;
    kc_node *n = NULL;
    kc_err err = {0};
    if (kc_node_open(&n, &o, &err) != KC_OK) {
        fprintf(stderr, "test: cannot open the node of %s: %s\n", config, err.msg);
        abort();
    }
    return n;
}
