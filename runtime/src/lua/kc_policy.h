/* kc_policy.h — policy files: the decisions a node or an authority leaves
 * to Lua (policies/README.md documents the hooks for their authors).
 *
 * A policy set is an ordered list of files, each in its own kc_sandbox.
 * The core verifies a chain first and asks the policies only about what it
 * already accepts, so on an ordinary node a policy can only refuse:
 *
 *   key_request(req)   producer, before answering a request (chain verified
 *                      for key-encrypt-request)
 *   key_reply(req)     consumer, before using a reply (key-encrypt)
 *   reencrypt(req)     controller, before re-signing a subscription request
 *                      (key-encrypt-subscribe)
 *   issue_chain(req)   chain server, before re-issuing a chain: returns the
 *                      grant (topics, usages, pathlen, lifetime)
 *
 * A decision hook returns true to allow, or false (or nil) and a reason.
 * Every file that defines the hook must allow; a file without it has no
 * say. A hook that errors, returns anything else or exceeds its budget
 * refuses (fail closed), with a WARNING naming the file, hook and reason;
 * the caller's loop carries on. */
#ifndef KC_POLICY_H
#define KC_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "kc_chain.h"
#include "kc_err.h"
#include "kc_grant.h"  /* kc_policy_request, kc_policy_grant */
#include "kc_sandbox.h"

#define KC_POLICY_LOGGER "kafkacrypto.policy"

typedef struct kc_policy kc_policy;

/* Loads files[0..n) (lim NULL: the sandbox defaults). n == 0 gives an empty
 * set that allows everything. */
KC_MUST_CHECK kc_status kc_policy_open(kc_policy **out, char *const *files, size_t n,
                         const kc_sandbox_limits *lim, kc_err *err);
void kc_policy_free(kc_policy *p);
size_t kc_policy_count(const kc_policy *p);

/* Asks every file defining `hook`. KC_OK: allowed; KC_ERR_DENIED: refused,
 * err = "policy file F: hook H: <reason>" (also logged). */
kc_status kc_policy_decide(kc_policy *p, const char *hook, const kc_policy_request *req,
                           kc_err *err);

/* issue_chain: each file defining the hook, in order, gets the request with
 * req.grant = the grant so far and returns the grant to issue (or false,
 * reason). `grant` holds the proposal on entry and the result on KC_OK. */
kc_status kc_policy_issue(kc_policy *p, const kc_policy_request *req, kc_policy_grant *grant,
                          kc_err *err);

/* A kc_exchange_check_fn over a kc_policy (ctx): maps the usage checked to
 * the hook (key-encrypt-request: key_request, key-encrypt: key_reply,
 * key-encrypt-subscribe: reencrypt). */
/* kc_policy_issue as a kc_grant_fn (ctx: the kc_policy), for the chain server. */
kc_status kc_policy_issue_grant(void *ctx, const kc_policy_request *req, kc_policy_grant *grant,
                                kc_err *err);

kc_status kc_policy_exchange_check(void *ctx, const char *root, const char *usage, double now,
                                   const kc_chain_result *chain, kc_err *err);

#endif
