/* kc_test_node.h — opening a node in tests. */
#ifndef KC_TEST_NODE_H
#define KC_TEST_NODE_H

#include "kc_node.h"

/* Opens the node of config with the deserializer's key wait set to
 * key_wait_interval seconds; aborts the test program (with the reason) if
 * it cannot. */
kc_node *tc_open_node(const char *config, double key_wait_interval);

#endif
