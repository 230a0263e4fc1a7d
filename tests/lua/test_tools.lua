-- The provisioning tools (scripts/*.lua) run as `kafkacrypto TOOL`: files
-- byte-compatible with upstream's, and a node they provision exchanges keys.
local lu = require "luaunit"
local kafkacrypto = require "kafkacrypto"
local chain = require "kafkacrypto.chain"
local P = require "kafkacrypto.tools.provisioning"
local cjson = require "cjson"
local h = require "helpers"

local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  local pwd = io.popen("pwd"):read("*l")
  return pwd .. "/" .. path
end
-- `make lua-test` runs from the repository root
local EXE = absolute(os.getenv("KC_BIN") or "build/kafkacrypto")
local VECTORS = absolute(os.getenv("KC_VECTORS") or "tests/vectors/data")

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- runs `kafkacrypto TOOL ARGS` with stdin `input`; returns status, stdout, stderr
local function run(dir, env, input, ...)
  h.write_file(dir .. "/stdin", input or "")
  local cmd = { "env" }
  for k, v in pairs(env or {}) do cmd[#cmd + 1] = k .. "=" .. q(v) end
  cmd[#cmd + 1] = q(EXE)
  for _, a in ipairs { ... } do cmd[#cmd + 1] = q(a) end
  os.execute(("cd %s && %s <stdin >stdout 2>stderr; echo $? >status"):format(q(dir), table.concat(cmd, " ")))
  return tonumber(h.read_file(dir .. "/status")), h.read_file(dir .. "/stdout"), h.read_file(dir .. "/stderr")
end

local function vector(kind, node_id)
  local v = cjson.decode(h.read_file(VECTORS .. "/" .. kind .. ".json"))
  for _, x in ipairs(v.vectors) do
    if x.node_id == node_id then return x end
  end
end

local function unhex(s) return assert(P.unhex(s, "vector")) end

TestTools = {}

function TestTools:setUp() self.dir = h.tmpdir() end
function TestTools:tearDown() h.rmtree(self.dir) end

-- upstream's simple-provision answers, piped: the same file as upstream's
function TestTools:test_simple_provision_writes_upstreams_file()
  local v = vector("provision", "producer1")
  local expected = vector("store", "producer1").config_text
  local env = { KAFKACRYPTO_ROT_PASSWORD = v.rot_password, KAFKACRYPTO_PASSWORD = v.prov_password }
  local status, out, err = run(self.dir, env, table.concat(v.inputs, "\n") .. "\n", "simple-provision")
  lu.assertEquals(status, 0, err)
  lu.assertStrContains(out, "Is nodeID = producer1 a:")
  lu.assertStrContains(out, "Congratulations! Provisioning is complete.")
  local text = h.read_file(self.dir .. "/producer1.config")
  local function mask(s)
    return (s:gsub("ssl_cafile : [^\n]*", "ssl_cafile : X"):gsub("chain0 : [^\n]*", "chain0 : X"))
  end
  lu.assertEquals(mask(text), mask(expected))
  -- the root-signed provisioner certificate is deterministic: the same bytes
  local kcs = kafkacrypto.store(self.dir .. "/producer1.config")
  local ours = chain.items(kcs:load_value("chain0", "chains"))
  kcs:close()
  lu.assertEquals(P.hex(ours[1]), v.chain0_items[1].signed)
  -- nothing secret on the terminal
  lu.assertNotStrContains(out .. err, v.rot_password)
  lu.assertNotStrContains(out .. err, v.prov_password)
end

-- the certificates the tools build and sign are upstream's, byte for byte
function TestTools:test_signed_certificates_match_upstream()
  local v = vector("provision", "producer1")
  local rot = P.password_rot(v.rot_password)
  lu.assertEquals(P.hex(P.rot_entry(rot:public_key())), v.written.allowlist.rot0)
  local provs = P.password_provisioners(v.prov_password, rot:public_key())
  local prov_cert = P.cert { max_age = 0, key = provs.producer:public_key(),
                             poison = { { "usages", { "key-encrypt" } } } }
  lu.assertEquals(P.hex(rot:sign(prov_cert)), v.chain0_items[1].signed)
  local node_cert = P.cert { max_age = v.chain0_items[2].content_decoded[1], key = unhex(v.node_pk),
                             poison = P.node_poison({ "key-encrypt" }, { "sensor", "metrics" }, 1) }
  lu.assertEquals(P.hex(provs.producer:sign(node_cert)), v.chain0_items[2].signed)
  rot:close()
  lu.assertStrContains(h.error_of(rot.sign, rot, "x"), "signer is closed")
  lu.assertStrContains(h.error_of(P.password_rot, "x", 4), "key type 4")
  lu.assertStrContains(h.error_of(P.cert, { key = "short" }), "cert: key")
  lu.assertStrContains(h.error_of(P.cert, { key = unhex(v.node_pk), poison = { { "bogus", {} } } }),
                       "poison[1]")
end

function TestTools:test_roots_base64_and_hex_helpers()
  lu.assertEquals(P.roots_of(" a.b  c a.x d.e.f c "), { "a", "c", "d" })
  lu.assertEquals(P.unbase64("kwDEAZA=", "x"), "\147\0\196\1\144")
  lu.assertStrContains(select(2, P.unbase64("kwDEAZA", "x")), "truncated base64")
  lu.assertStrContains(select(2, P.unbase64("kw*EAZA=", "x")), "not base64")
  lu.assertStrContains(select(2, P.unhex("abc", "x")), "odd number")
  lu.assertStrContains(select(2, P.unhex("zz", "x")), "not hex")
end

-- automation: flags and password files; a producer and a consumer
-- provisioned this way exchange keys and decrypt on the broker
function TestTools:test_provisioned_nodes_exchange_keys()
  local d = self.dir
  h.write_file(d .. "/rot.pw", "a root of trust password\n")
  h.write_file(d .. "/prov.pw", "provisioning\n")
  for _, n in ipairs { { "tp", "producer" }, { "tc", "consumer" } } do
    local status, _, err = run(d, {}, "", "simple-provision", "--keytype", "1", "--node-id", n[1],
                               "--role", n[2], "--topics", "toolsx.a toolsx.b", "--pathlen", "1",
                               "--rot-password-file", "rot.pw", "--password-file", "prov.pw",
                               "--dir", d, "--yes")
    lu.assertEquals(status, 0, err)
  end
  local log = kafkacrypto.log.capture()
  local producer_node = kafkacrypto.new { config = d .. "/tp.config", key_wait_interval = 0.2 }
  local consumer_node = kafkacrypto.new { config = d .. "/tc.config", key_wait_interval = 0.2,
                                          max_key_wait_intervals = 50 }
  local topic = "toolsx." .. h.topic("m")
  kafkacrypto.broker.embedded():create_topic(topic, 1)
  local producer = kafkacrypto.producer { key_serializer = producer_node:key_serializer(),
                                          value_serializer = producer_node:value_serializer() }
  producer:send(topic, "k", "secret value")
  producer:flush()
  local consumer = kafkacrypto.consumer { key_deserializer = consumer_node:key_deserializer(),
                                          value_deserializer = consumer_node:value_deserializer(),
                                          fetch_max_wait_ms = 50 }
  consumer:assign { { topic = topic, partition = 0, offset = "beginning" } }
  local got = h.collect(consumer, 1, 30)
  consumer:close()
  producer:close()
  lu.assertEquals(#got, 1)
  lu.assertTrue(got[1].value:is_cleartext())
  lu.assertEquals(got[1].value:get_message(), "secret value")
  lu.assertTrue(consumer_node:stats().keys_received >= 1)
  producer_node:close()
  consumer_node:close()
  log:stop()
end
