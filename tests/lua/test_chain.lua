-- kafkacrypto.chain: the trust decision for scripts, on chains written by
-- provisioning (a password root, its provisioner, a node certificate).
local lu = require "luaunit"
local kafkacrypto = require "kafkacrypto"
local chain = require "kafkacrypto.chain"
local h = require "helpers"

local function fromhex(s) return (s:gsub("..", function(x) return string.char(tonumber(x, 16)) end)) end

-- One provisioned producer (and a second root) for the whole file: pwhash is slow.
local fixture
local function node()
  if fixture then return fixture end
  local dir = h.tmpdir()
  local function provision(id, rot_password)
    kafkacrypto.provision { dir = dir, node_id = id, role = "producer",
                            rot_password = rot_password, provisioning_password = "staple!",
                            topics = { "example001.foo", "example002" } }
    local s = kafkacrypto.store(dir .. "/" .. id .. ".config")
    local c, r = s:load_value("chain0", "chains"), s:load_value("rot0", "allowlist")
    s:close()
    return c, r
  end
  local log = kafkacrypto.log.capture()
  local c, r = provision("p1", "correct horse battery")
  local _, other = provision("p2", "another root password")
  log:stop()
  h.rmtree(dir)
  fixture = { chain = c, rot = r, other_rot = other }
  return fixture
end

TestChain = {}

function TestChain:test_valid_chain_in_words()
  local f = node()
  local now = os.time()
  local info = assert(chain.process(f.chain, { allowlist = { f.rot }, topic = "example001",
                                               usage = "key-encrypt" }))
  lu.assertEquals(info.topics, { "example001", "example002" })
  lu.assertEquals(info.usages, { "key-encrypt" })
  lu.assertEquals(info.pathlen, 1)
  lu.assertTrue(math.abs(info.expiry - (now + 316224000)) < 60)
  lu.assertEquals(info.rot_index, 1)
  lu.assertFalse(info.self_signed)
  lu.assertEquals(info.rot, (f.rot:sub(-32):gsub(".", function(c) return ("%02x"):format(c:byte()) end)))
  lu.assertEquals(#info.signers, 3)             -- root, provisioner, node
  lu.assertEquals(info.signers[1], info.rot)
  lu.assertEquals(info.signers[3], info.key)
  lu.assertEquals(info.keys, { info.key })
  lu.assertEquals(info.fingerprint, chain.fingerprint(fromhex(info.key)))
  lu.assertEquals(info.rot_fingerprint, chain.fingerprint(fromhex(info.rot)))
  lu.assertEquals(#info.fingerprint, 64)
  lu.assertNotEquals(info.fingerprint, info.key)
  lu.assertStrContains(info.key_text, "(Ed25519, " .. info.key .. ")")
  lu.assertEquals(info.n_extra, 0)
  lu.assertEquals(info.extra, "\144")
  lu.assertStrContains(info.printable, "usages: ['key-encrypt']")
end

function TestChain:test_no_topic_or_usage_check()
  local f = node()
  local info = assert(chain.process(f.chain, { allowlist = { f.rot } }))
  lu.assertEquals(info.usages, { "key-encrypt" })
end

function TestChain:test_refusals_say_which_item_and_why()
  local f = node()
  local cases = {
    { { topic = "example003" }, "topic 'example003' not in allowed topics" },
    { { usage = "key-encrypt-request" }, "usage 'key-encrypt-request' not in allowed usages" },
    { { checktime = os.time() + 20 * 365 * 86400 }, "chain item 2: expired at" },
    { { denylist = { f.rot } }, "chain item 1 is denylisted" },
    { { allowlist = { f.other_rot } }, "chain item 1" },
    { { allowlist = {} }, "the allowlist is empty" },
    { { allowlist = false }, "no allowlist" },
  }
  local log = kafkacrypto.log.capture()
  for _, case in ipairs(cases) do
    local options = { allowlist = { f.rot } }
    for k, v in pairs(case[1]) do options[k] = v or nil end
    local info, why, report = chain.process(f.chain, options)
    lu.assertNil(info)
    lu.assertStrContains(why, case[2])
    lu.assertEquals(type(report), "string")
  end
  lu.assertStrContains(table.concat(log:stop(), "\n"), "Chain uses denylisted signing key")
end

function TestChain:test_tampered_and_truncated()
  local f = node()
  local c = f.chain
  local tampered = c:sub(1, 100) .. string.char((c:byte(101) + 1) % 256) .. c:sub(102)
  local info, why = chain.process(tampered, { allowlist = { f.rot } })
  lu.assertNil(info)
  lu.assertStrContains(why, "chain item")
  for _, bad in ipairs { c:sub(1, -2), "", "\145\196\001x", "\192", c .. "x" } do
    info, why = chain.process(bad, { allowlist = { f.rot } })
    lu.assertNil(info)
    lu.assertEquals(type(why), "string")
  end
  -- garbage in the lists fails the chain, it does not crash
  info, why = chain.process(c, { allowlist = { "not an entry" } })
  lu.assertNil(info)
  lu.assertEquals(type(why), "string")
end

function TestChain:test_bad_arguments_raise()
  local f = node()
  lu.assertStrContains(h.error_of(chain.process, f.chain, { allowlist = "x" }),
                       "allowlist: expected an array")
  lu.assertStrContains(h.error_of(chain.process, f.chain, { allowlist = { 1 } }),
                       "allowlist[1]: expected a byte string")
  lu.assertStrContains(h.error_of(chain.process, f.chain, { topic = 5, allowlist = {} }),
                       "topic: expected a string")
  lu.assertStrContains(h.error_of(chain.process, nil), "string expected")
end

function TestChain:test_describe_items_build()
  local f = node()
  local text = assert(chain.describe(f.chain))
  lu.assertStrContains(text, "usages: ['key-encrypt'], topics: ['example001', 'example002']")
  local items = assert(chain.items(f.chain))
  lu.assertEquals(#items, 2)
  lu.assertEquals(chain.build(items), f.chain)
  lu.assertEquals(chain.build({}), "\144")
  lu.assertNil(chain.items("\193"))
  lu.assertEquals(type(chain.describe("xx")), "string")   -- says why, never raises
  lu.assertNil(chain.fingerprint("short"))
  lu.assertStrContains(h.error_of(chain.build, { 1 }), "item 1: expected a byte string")
end
