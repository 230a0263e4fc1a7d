/* kc_policy over the key exchange: what a hook receives, refusals that send
 * nothing, failing and looping policies, several files, the shipped
 * policies/ examples (default, fingerprint list, per-root data file, rate
 * and time limits, chain-server grants). Nodes are in-memory exchanges
 * provisioned under a test root of trust with a pinned clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kc_cryptokey_file.h"
#include "kc_exchange.h"
#include "kc_hex.h"
#include "kc_keyidx.h"
#include "kc_log.h"
#include "kc_mp.h"
#include "kc_policy.h"
#include "kc_provision.h"
#include "kc_test.h"
#include "kc_test_fixture.h"

#define T0 1800000000.0   /* 2027-01-15 08:00:00 UTC */
#define DAY 86400.0

static double clock_now = T0;
static double pinned(void *ctx) { (void)ctx; return clock_now; }

static char logbuf[1 << 16];
static size_t loglen;
static char *dir;

static void sink(void *ctx, kc_log_level level, const char *logger, const char *msg)
{
    int k = snprintf(logbuf + loglen, sizeof logbuf - loglen, "%s:%s:%s\n",
                     kc_log_level_name(level), logger, msg);
    if (k > 0 && loglen + (size_t)k < sizeof logbuf)
        loglen += (size_t)k;
}

static bool logged(const char *s) { return strstr(logbuf, s) != NULL; }

/* ---- a test PKI and nodes ------------------------------------------------------------ */

static tc_pki pki;

typedef struct tnode {
    tc_party p;
    char fingerprint[65];
    kc_policy *policy;
} tnode;

static void node_make(tnode *n, const char *label, kc_role role, const char *root)
{
    memset(n, 0, sizeof *n);
    tc_party_options o = {.role = (int)role, .root = root, .max_age = T0 + 365 * DAY,
                          .now_fn = pinned};
    tc_party_make(&n->p, &pki, label, &o);
    uint8_t d[32];
    crypto_hash_sha256(d, n->p.pk[0].x, 32);
    kc_hex(d, 32, n->fingerprint);
}

/* Installs the given policy files on the node (replacing any). */
static void node_policy(tnode *n, const char *const *files, size_t count)
{
    kc_policy_free(n->policy);
    kc_err err = {0};
    kc_sandbox_limits lim = {.instructions = 1000000, .seconds = 2};
    if (kc_policy_open(&n->policy, (char *const *)files, count, &lim, &err) != KC_OK)
        fail_msg("policy: %s", err.msg);
    kc_exchange_set_check(n->p.x, kc_policy_exchange_check, n->policy);
}

static void node_free(tnode *n)
{
    tc_party_free(&n->p);
    kc_policy_free(n->policy);
}

static kc_exchange_keys one_key(void)
{
    kc_exchange_keys k = {0};
    kc_keyidx a;
    uint8_t s[32];
    kc_keyidx_from_int(&a, 7);
    memset(s, 0x77, sizeof s);
    assert_int_equal(kc_exchange_keys_add(&k, &a, s), KC_OK);
    return k;
}

/* consumer c asks producer p for root; returns p's status, and (if
 * delivered) c's decrypt_keys status in *got_status. */
static kc_status ask(tnode *c, tnode *p, const char *root, kc_status *got_status, kc_err *err)
{
    kc_exchange_msgs req = {0}, rep = {0};
    kc_exchange_keys keys = one_key(), got = {0};
    assert_int_equal(kc_exchange_signed_epks(c->p.x, root, &req, NULL), KC_OK);
    kc_status st = kc_exchange_encrypt_keys(p->p.x, root, &keys, req.items[0].value.data,
                                            req.items[0].value.len, &rep, err);
    if (st == KC_OK) {
        assert_int_equal(rep.n, 1);
        kc_err e2;
        *got_status = kc_exchange_decrypt_keys(c->p.x, root, rep.items[0].value.data,
                                               rep.items[0].value.len, &got, &e2);
    } else {
        assert_int_equal(rep.n, 0);   /* a refusal sends nothing */
    }
    kc_exchange_msgs_clear(&req);
    kc_exchange_msgs_clear(&rep);
    kc_exchange_keys_clear(&keys);
    kc_exchange_keys_clear(&got);
    return st;
}

/* ---- policy files --------------------------------------------------------------------------- */

static char *text_of(const char *path)
{
    kc_buf b = tc_read_file(path);
    char *s = malloc(b.len + 1);
    memcpy(s, b.data, b.len);
    s[b.len] = 0;
    kc_buf_free(&b);
    return s;
}

/* policies/<name> from the source tree, with `from` replaced by `to`
 * (asserted present), written to the test directory as `as`. */
static char *example(const char *name, const char *from, const char *to, const char *as)
{
    const char *src = getenv("KC_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/policies/%s", src ? src : ".", name);
    char *text = text_of(path);
    kc_buf out = KC_BUF_INIT;
    if (from) {
        char *at = strstr(text, from);
        if (!at)
            fail_msg("%s: no '%s' to replace", name, from);
        kc_buf_append(&out, text, (size_t)(at - text));
        kc_buf_append(&out, to, strlen(to));
        kc_buf_append(&out, at + strlen(from), strlen(at + strlen(from)));
    } else {
        kc_buf_append(&out, text, strlen(text));
    }
    char *dst = tc_path(dir, as ? as : name);
    tc_write_file(dst, out.data, out.len);
    kc_buf_free(&out);
    free(text);
    return dst;
}

static char *policy_text(const char *name, const char *text)
{
    char *path = tc_path(dir, name);
    tc_write_file(path, (const uint8_t *)text, strlen(text));
    return path;
}

/* ---- fixtures ---------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    tc_pki_init(&pki, "rot", "provisioner");
    kc_log_set_sink(sink, NULL);
    kc_log_set_level(KC_LOG_INFO);
    dir = tc_tmpdir();
    return 0;
}

static int group_teardown(void **state)
{
    kc_log_set_sink(NULL, NULL);
    tc_pki_clear(&pki);
    tc_rmtree(dir);
    free(dir);
    return 0;
}

static int setup(void **state)
{
    clock_now = T0;
    loglen = 0;
    logbuf[0] = 0;
    return 0;
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_default_allows_what_the_chain_allows(void **state)
{
    tnode c, p;
    node_make(&c, "consumer", KC_ROLE_CONSUMER, "sensors");
    node_make(&p, "producer", KC_ROLE_PRODUCER, "^.*$");
    char *def = example("default.lua", NULL, NULL, NULL);
    const char *files[] = {def};
    node_policy(&p, files, 1);
    node_policy(&c, files, 1);
    kc_status got = KC_ERR_STATE;
    kc_err err;
    assert_int_equal(ask(&c, &p, "sensors", &got, &err), KC_OK);
    assert_int_equal(got, KC_OK);
    /* The chain still decides: a root outside the consumer's topics is
     * refused by the core before any policy runs. */
    assert_int_equal(ask(&c, &p, "billing", &got, &err), KC_ERR_DENIED);
    assert_false(logged("Refused by policy"));
    node_free(&c);
    node_free(&p);
    free(def);
}

static void test_hook_sees_verified_chain(void **state)
{
    tnode c, p;
    node_make(&c, "consumer", KC_ROLE_CONSUMER, "sensors");
    node_make(&p, "producer", KC_ROLE_PRODUCER, "^.*$");
    char *probe = policy_text(
        "probe.lua",
        "return { key_request = function(req)\n"
        "  return false, table.concat({req.hook, req.root, req.topic, req.usage,\n"
        "    req.fingerprint, req.signer:sub(1, 8), tostring(req.expiry), tostring(req.time),\n"
        "    table.concat(req.topics, ','), table.concat(req.usages, ','),\n"
        "    tostring(req.pathlen), tostring(req.node_id), req.rot:sub(1, 8), tostring(req.rot_index),\n"
        "    tostring(#req.chain.signers)}, '|')\n"
        "end }\n");
    const char *files[] = {probe};
    node_policy(&p, files, 1);
    kc_err err;
    kc_status got;
    assert_int_equal(ask(&c, &p, "sensors", &got, &err), KC_ERR_DENIED);
    char want[1024], rot_hex[65], pk_hex[65];
    snprintf(want, sizeof want,
             "hook key_request: denied: key_request|sensors|sensors|key-encrypt-request|%s|%.8s|"
             "%.0f|%.0f|sensors|key-encrypt-request,key-encrypt-subscribe|nil|nil|%.8s|1|3",
             c.fingerprint, kc_hex(c.p.pk[0].x, 32, pk_hex), T0 + DAY, T0,
             kc_hex(pki.rot_pk.x, 32, rot_hex));
    if (!strstr(err.msg, want))
        fail_msg("got %s\nwant %s", err.msg, want);
    assert_true(logged("WARNING:kafkacrypto.policy:Refused by policy (root=sensors): policy file "));
    /* the same refusal again within 60 s: refused, not said at WARNING again */
    loglen = 0;
    logbuf[0] = 0;
    assert_int_equal(ask(&c, &p, "sensors", &got, &err), KC_ERR_DENIED);
    assert_false(logged("WARNING:kafkacrypto.policy:Refused by policy"));
    node_free(&c);
    node_free(&p);
    free(probe);
}

static void test_fingerprint_list(void **state)
{
    tnode alice, bob, p;
    node_make(&alice, "alice", KC_ROLE_CONSUMER, "sensors");
    node_make(&bob, "bob", KC_ROLE_CONSUMER, "sensors");
    node_make(&p, "producer", KC_ROLE_PRODUCER, "^.*$");
    char entry[200];
    snprintf(entry, sizeof entry, "local ALLOWED = {\n  [\"%s\"] = \"alice\",", alice.fingerprint);
    char *pol = example("allow-fingerprints.lua", "local ALLOWED = {", entry, NULL);
    const char *files[] = {pol};
    node_policy(&p, files, 1);
    kc_err err;
    kc_status got = KC_ERR_STATE;
    assert_int_equal(ask(&alice, &p, "sensors", &got, &err), KC_OK);
    assert_int_equal(got, KC_OK);
    assert_int_equal(ask(&bob, &p, "sensors", &got, &err), KC_ERR_DENIED);
    assert_non_null(strstr(err.msg, bob.fingerprint));
    assert_non_null(strstr(err.msg, "is not in the fingerprint list"));
    assert_true(logged("is not in the fingerprint list"));
    node_free(&alice);
    node_free(&bob);
    node_free(&p);
    free(pol);
}

static void test_per_root_allowlist_file(void **state)
{
    tnode alice, bob, p;
    node_make(&alice, "alice", KC_ROLE_CONSUMER, "^.*$");
    node_make(&bob, "bob", KC_ROLE_CONSUMER, "^.*$");
    node_make(&p, "producer", KC_ROLE_PRODUCER, "^.*$");
    char *pol = example("per-root-allowlist.lua", NULL, NULL, NULL);
    const char *files[] = {pol};
    node_policy(&p, files, 1);
    kc_err err;
    kc_status got;

    /* no data file: everything refused, saying why */
    assert_int_equal(ask(&alice, &p, "sensors", &got, &err), KC_ERR_DENIED);
    assert_non_null(strstr(err.msg, "no allow list: read_file root-allowlist.txt"));

    char data[512];
    snprintf(data, sizeof data, "# test\nsensors %s %s\nbilling %s  # only alice\n",
             alice.fingerprint, bob.fingerprint, alice.fingerprint);
    char *dpath = policy_text("root-allowlist.txt", data);
    clock_now += 30;   /* RELOAD */
    assert_int_equal(ask(&alice, &p, "sensors", &got, &err), KC_OK);
    assert_int_equal(ask(&bob, &p, "sensors", &got, &err), KC_OK);
    assert_int_equal(ask(&alice, &p, "billing", &got, &err), KC_OK);
    assert_int_equal(ask(&bob, &p, "billing", &got, &err), KC_ERR_DENIED);
    assert_non_null(strstr(err.msg, "is not allowed for root billing"));
    assert_int_equal(ask(&alice, &p, "other", &got, &err), KC_ERR_DENIED);

    /* a "*" line, picked up after the reload interval */
    snprintf(data, sizeof data, "* %s\n", bob.fingerprint);
    free(policy_text("root-allowlist.txt", data));
    assert_int_equal(ask(&bob, &p, "other", &got, &err), KC_ERR_DENIED);
    clock_now += 30;
    assert_int_equal(ask(&bob, &p, "other", &got, &err), KC_OK);
    assert_int_equal(ask(&alice, &p, "sensors", &got, &err), KC_ERR_DENIED);

    /* a malformed line refuses everything and names the line */
    free(policy_text("root-allowlist.txt", "sensors nothex\n"));
    clock_now += 30;
    assert_int_equal(ask(&bob, &p, "other", &got, &err), KC_ERR_DENIED);
    assert_non_null(strstr(err.msg, "root-allowlist.txt:1: expected 64 hex digits"));
    node_free(&alice);
    node_free(&bob);
    node_free(&p);
    free(pol);
    free(dpath);
}

/* controller ctl re-signs consumer c's subscription request for root */
static kc_status reencrypt(tnode *ctl, tnode *c, const char *root, kc_err *err)
{
    kc_exchange_msgs req = {0};
    kc_buf out = KC_BUF_INIT;
    assert_int_equal(kc_exchange_signed_epks(c->p.x, root, &req, NULL), KC_OK);
    kc_status st = kc_exchange_reencrypt_request(ctl->p.x, root, NULL, NULL, req.items[0].value.data,
                                                 req.items[0].value.len, &out, err);
    assert_true(st == KC_OK ? out.len > 0 : out.len == 0);
    kc_exchange_msgs_clear(&req);
    kc_buf_free(&out);
    return st;
}

static void test_rate_limit_on_resigning(void **state)
{
    tnode ctl, c, other;
    node_make(&ctl, "controller", KC_ROLE_CONTROLLER, "^.*$");
    node_make(&c, "limited", KC_ROLE_CONSUMER_LIMITED, "^.*$");
    node_make(&other, "other", KC_ROLE_CONSUMER_LIMITED, "^.*$");
    char *pol = example("rate-limit.lua", "local MAX = 20", "local MAX = 3", NULL);
    const char *files[] = {pol};
    node_policy(&ctl, files, 1);
    kc_err err;
    for (int i = 0; i < 3; i++) {
        clock_now += 60;
        assert_int_equal(reencrypt(&ctl, &c, "sensors", &err), KC_OK);
    }
    assert_int_equal(reencrypt(&ctl, &c, "sensors", &err), KC_ERR_DENIED);
    assert_non_null(strstr(err.msg, "rate limit: 3 requests from"));
    /* per requester and per root */
    assert_int_equal(reencrypt(&ctl, &other, "sensors", &err), KC_OK);
    assert_int_equal(reencrypt(&ctl, &c, "billing", &err), KC_OK);
    /* the window slides: one hour after the first, one slot is free again */
    clock_now = T0 + 60 + 3600;
    assert_int_equal(reencrypt(&ctl, &c, "sensors", &err), KC_OK);
    assert_int_equal(reencrypt(&ctl, &c, "sensors", &err), KC_ERR_DENIED);
    free(pol);

    /* hours: T0 is 08:00 UTC */
    pol = example("rate-limit.lua", "local FROM_HOUR, TO_HOUR = 0, 24",
                  "local FROM_HOUR, TO_HOUR = 9, 17", NULL);
    files[0] = pol;
    node_policy(&ctl, files, 1);
    clock_now = T0;
    assert_int_equal(reencrypt(&ctl, &c, "sensors", &err), KC_ERR_DENIED);
    assert_non_null(strstr(err.msg, "outside the hours 09:00-17:00 UTC"));
    clock_now = T0 + 3600;
    assert_int_equal(reencrypt(&ctl, &c, "sensors", &err), KC_OK);
    node_free(&ctl);
    node_free(&c);
    node_free(&other);
    free(pol);
}

static void test_failing_policies_refuse_and_all_must_allow(void **state)
{
    tnode c, p;
    node_make(&c, "consumer", KC_ROLE_CONSUMER, "^.*$");
    node_make(&p, "producer", KC_ROLE_PRODUCER, "^.*$");
    char *loop = policy_text("loop.lua", "return { key_request = function() while true do end end }\n");
    char *boom = policy_text("boom.lua", "return { key_request = function(req) return req.nope.x end }\n");
    char *odd = policy_text("odd.lua", "return { key_request = function() return 'yes' end }\n");
    char *silent = policy_text("silent.lua", "return { key_request = function() return false end }\n");
    char *yes = policy_text("yes.lua", "return { key_request = function() return true end }\n");
    char *other = policy_text("other.lua", "return { issue_chain = function() return false end }\n");
    kc_err err;
    kc_status got;
    static const struct { int file; const char *why; } cases[] = {
        {0, "loop.lua: hook key_request: instruction budget of 1000000 exceeded"},
        {1, "boom.lua: hook key_request: "},
        {2, "odd.lua: hook key_request: returned a string; expected true"},
        {3, "silent.lua: hook key_request: denied: no reason given"},
    };
    const char *bad[] = {loop, boom, odd, silent};
    for (size_t i = 0; i < 4; i++) {
        const char *files[] = {yes, other, bad[cases[i].file]};
        node_policy(&p, files, 3);
        assert_int_equal(ask(&c, &p, "sensors", &got, &err), KC_ERR_DENIED);
        if (!strstr(err.msg, cases[i].why))
            fail_msg("case %zu: %s", i, err.msg);
        assert_true(logged(cases[i].why));
        /* the exchange carries on: the same producer answers once the policy allows */
        const char *good[] = {yes, other};
        node_policy(&p, good, 2);
        assert_int_equal(ask(&c, &p, "sensors", &got, &err), KC_OK);
    }
    /* A file that fails to load fails the set, naming it. */
    kc_policy *ps;
    char *broken = policy_text("broken.lua", "return {\n");
    const char *files[] = {yes, broken};
    assert_int_equal(kc_policy_open(&ps, (char *const *)files, 2, NULL, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "broken.lua"));
    node_free(&c);
    node_free(&p);
    free(loop); free(boom); free(odd); free(silent); free(yes); free(other); free(broken);
}

/* The review's case: a key_request hook with a backtracking pattern held
 * the management thread for 20-25 s per call and its answer was used. Now
 * it is refused within its budget (plus a margin for loaded machines) and
 * the refusal is logged with the file, the hook and the time it took; the
 * next request is answered once the policy is fixed. */
static void test_pathological_pattern_is_refused_in_time(void **state)
{
    tnode c, p;
    node_make(&c, "consumer", KC_ROLE_CONSUMER, "^.*$");
    node_make(&p, "producer", KC_ROLE_PRODUCER, "^.*$");
    char *slow = policy_text("slow.lua",
                             "return { key_request = function(req)\n"
                             "  return string.find(('a'):rep(200), 'a*a*a*a*b') == nil\n"
                             "end }\n");
    kc_policy_free(p.policy);
    kc_err err;
    kc_sandbox_limits lim = {.instructions = UINT64_MAX / 2, .seconds = 0.2};
    char *const files[] = {slow};
    assert_int_equal(kc_policy_open(&p.policy, files, 1, &lim, &err), KC_OK);
    kc_exchange_set_check(p.p.x, kc_policy_exchange_check, p.policy);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    kc_status got;
    assert_int_equal(ask(&c, &p, "sensors", &got, &err), KC_ERR_DENIED);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(took < 0.2 + 0.8);
    const char *line = strstr(logbuf, "WARNING:kafkacrypto.policy:Refused by policy (root=sensors): "
                                      "policy file ");
    if (!line || !strstr(line, "slow.lua: hook key_request: time budget of 0.2 s exceeded "
                               "(stopped after 0."))
        fail_msg("%s", logbuf);
    /* the default budgets stop it by instruction count */
    const char *def[] = {slow};
    node_policy(&p, def, 1);
    assert_int_equal(ask(&c, &p, "sensors", &got, &err), KC_ERR_DENIED);
    assert_non_null(strstr(err.msg, "slow.lua: hook key_request: instruction budget"));
    node_free(&c);
    node_free(&p);
    free(slow);
}

static void test_consumer_refuses_a_reply_without_using_it(void **state)
{
    tnode c, p;
    node_make(&c, "consumer", KC_ROLE_CONSUMER, "^.*$");
    node_make(&p, "producer", KC_ROLE_PRODUCER, "^.*$");
    char pol_text[300];
    snprintf(pol_text, sizeof pol_text,
             "return { key_reply = function(req)\n"
             "  return req.fingerprint == '%s', 'producer ' .. req.fingerprint .. ' not trusted'\n"
             "end }\n", c.fingerprint);   /* trusts only itself: refuses p */
    char *pol = policy_text("reply.lua", pol_text);
    const char *files[] = {pol};
    node_policy(&c, files, 1);
    kc_exchange_msgs req = {0}, rep = {0};
    kc_exchange_keys keys = one_key(), got = {0};
    kc_err err;
    assert_int_equal(kc_exchange_signed_epks(c.p.x, "sensors", &req, NULL), KC_OK);
    assert_int_equal(kc_exchange_encrypt_keys(p.p.x, "sensors", &keys, req.items[0].value.data,
                                              req.items[0].value.len, &rep, &err), KC_OK);
    assert_int_equal(kc_exchange_decrypt_keys(c.p.x, "sensors", rep.items[0].value.data,
                                              rep.items[0].value.len, &got, &err), KC_ERR_DENIED);
    assert_int_equal(got.n, 0);
    assert_non_null(strstr(err.msg, p.fingerprint));
    /* nothing was consumed: without the policy the same reply is accepted */
    kc_exchange_set_check(c.p.x, NULL, NULL);
    assert_int_equal(kc_exchange_decrypt_keys(c.p.x, "sensors", rep.items[0].value.data,
                                              rep.items[0].value.len, &got, &err), KC_OK);
    assert_int_equal(got.n, 1);
    kc_exchange_msgs_clear(&req);
    kc_exchange_msgs_clear(&rep);
    kc_exchange_keys_clear(&keys);
    kc_exchange_keys_clear(&got);
    node_free(&c);
    node_free(&p);
    free(pol);
}

static void grant_set(kc_policy_grant *g, const char *topic, const char *usage, int64_t pathlen,
                      double lifetime)
{
    memset(g, 0, sizeof *g);
    g->topics[0] = strdup(topic);
    g->n_topics = 1;
    g->has_topics = true;
    g->usages[0] = strdup(usage);
    g->n_usages = 1;
    g->has_usages = true;
    g->pathlen = pathlen;
    g->lifetime = lifetime;
}

static void test_issue_chain_grants(void **state)
{
    char *def = example("default.lua", NULL, NULL, NULL);
    char *shorter = example("short-chains.lua", NULL, NULL, NULL);
    char *bad = policy_text("badgrant.lua",
                            "return { issue_chain = function(req) return { lifetime = -1 } end }\n");
    char *deny = policy_text("denygrant.lua",
                             "return { issue_chain = function(req)\n"
                             "  if req.node_id == 'intruder' then return false, 'not this one' end\n"
                             "  req.grant.topics[#req.grant.topics + 1] = 'extra'\n"
                             "  return req.grant end }\n");
    kc_policy *p;
    kc_err err;
    kc_policy_grant g;
    kc_policy_request r = {NULL, NULL, NULL, T0, NULL, "node-1", NULL};

    const char *files1[] = {def, shorter, deny};
    assert_int_equal(kc_policy_open(&p, (char *const *)files1, 3, NULL, &err), KC_OK);
    grant_set(&g, "sensors", "key-encrypt", 2, 7 * DAY);
    assert_int_equal(kc_policy_issue(p, &r, &g, &err), KC_OK);
    assert_int_equal(g.n_topics, 2);
    assert_string_equal(g.topics[0], "sensors");
    assert_string_equal(g.topics[1], "extra");
    assert_int_equal(g.n_usages, 1);
    assert_string_equal(g.usages[0], "key-encrypt");
    assert_int_equal(g.pathlen, -1);
    assert_true(g.lifetime == DAY);
    r.node_id = "intruder";
    assert_int_equal(kc_policy_issue(p, &r, &g, &err), KC_ERR_DENIED);
    assert_non_null(strstr(err.msg, "denygrant.lua: hook issue_chain: denied: not this one"));
    kc_policy_grant_clear(&g);
    kc_policy_free(p);

    const char *files2[] = {bad};
    assert_int_equal(kc_policy_open(&p, (char *const *)files2, 1, NULL, &err), KC_OK);
    grant_set(&g, "sensors", "key-encrypt", -1, DAY);
    assert_int_equal(kc_policy_issue(p, &r, &g, &err), KC_ERR_DENIED);
    assert_non_null(strstr(err.msg, "lifetime: expected a positive number"));
    /* refused: the proposal is left as it was */
    assert_true(g.lifetime == DAY);
    kc_policy_grant_clear(&g);
    kc_policy_free(p);
    free(def);
    free(shorter);
    free(bad);
    free(deny);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_default_allows_what_the_chain_allows, setup),
        cmocka_unit_test_setup(test_hook_sees_verified_chain, setup),
        cmocka_unit_test_setup(test_fingerprint_list, setup),
        cmocka_unit_test_setup(test_per_root_allowlist_file, setup),
        cmocka_unit_test_setup(test_rate_limit_on_resigning, setup),
        cmocka_unit_test_setup(test_failing_policies_refuse_and_all_must_allow, setup),
        cmocka_unit_test_setup(test_pathological_pattern_is_refused_in_time, setup),
        cmocka_unit_test_setup(test_consumer_refuses_a_reply_without_using_it, setup),
        cmocka_unit_test_setup(test_issue_chain_grants, setup),
    };
    return cmocka_run_group_tests_name("policy", tests, group_setup, group_teardown);
}
