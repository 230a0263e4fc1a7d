/* kc_provision_node.h — writes a node's three files as upstream's
 * tools/simple-provision.py does (spec §9.3): a password-derived root of
 * trust, the role's password-derived provisioner, and a node certificate
 * for the node's own Ed25519 key. The resulting node runs on the Python
 * package unchanged, and a node provisioned by the Python tool runs here.
 *
 * Differences from the tool: non-interactive; topics keep their given order
 * (the tool deduplicates through a Python set, whose order is unspecified);
 * the ratchet seed is never printed. */
#ifndef KC_PROVISION_NODE_H
#define KC_PROVISION_NODE_H

#include <stdbool.h>
#include <stddef.h>

#include "kc_err.h"
#include "kc_provision.h"

typedef struct kc_provision_request {
    const char *dir;                 /* where the files go; NULL: the working directory */
    const char *node_id;
    kc_role role;
    const char *rot_password;        /* 12+ characters */
    const char *prov_password;       /* 6+ characters */
    const char *const *topics;       /* cut at the first '.'; none: all topics ("^.*$") */
    size_t ntopics;
    int pathlen;                     /* -1: no limit (simple-provision's default is 1) */
    double lifetime;                 /* s; 0: KC_SIMPLE_PROVISION_LIFETIME (10 years) */
    double now;                      /* 0: the wall clock */
    const char *pkcs11;              /* a pkcs11: URI: the node key is in that token, and
                                        no .crypto is written; NULL: the .crypto file */
    bool pkcs11_create;              /* create the key in the token (it must not exist) */
} kc_provision_request;

/* Writes <dir>/<node_id>.config, .crypto and .seed (existing .crypto and
 * .seed files are kept: the node key is the file's first Ed25519 key; the
 * files an existing config names are used). The config refers to them
 * relative to itself, "file#<node_id>.crypto", as upstream (spec D1).
 * With pkcs11 the key is the token's and the config's cryptokey is the
 * URI; the token is opened before any file is written, so a token error
 * changes nothing on disk. */
kc_status kc_provision_node(const kc_provision_request *r, kc_err *err);

#endif
