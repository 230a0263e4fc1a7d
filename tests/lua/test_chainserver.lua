-- The chain server on the broker (spec §8.2, §7.12): an entry of chainkeys
-- that expires soon is re-issued with the rights and lifetime the policy
-- grants, pushed on `chains`, and adopted by the node it is for; a policy
-- refusal pushes nothing and keeps the entry.
local lu = require "luaunit"
local kafkacrypto = require "kafkacrypto"
local chainserver = require "kafkacrypto.authorities.chainserver"
local chain = require "kafkacrypto.chain"
local h = require "helpers"

local fixture
local function setup()
  if fixture then return fixture end
  local dir = h.tmpdir()
  local log = kafkacrypto.log.capture()
  local function provision(id, role, lifetime)
    kafkacrypto.provision { dir = dir, node_id = id, role = role, lifetime = lifetime,
                            rot_password = "correct horse battery staple",
                            provisioning_password = "provisioning" }
  end
  provision("cs", "prodcon")
  provision("cons", "consumer", 100)   -- its chain expires in 100 s
  -- the administrator's chainkeys entry: cons's certificate, unsigned
  local s = kafkacrypto.store(dir .. "/cons.config")
  local items = assert(chain.items(s:load_value("chain0", "chains")))
  s:close()
  local cert = items[#items]:sub(65)
  s = kafkacrypto.store(dir .. "/cs.config")
  s:store_value("cons", kafkacrypto.bytes(cert), "chainkeys")
  s:close()
  log:stop()
  h.broker():create_topic("chains", 1)
  fixture = { dir = dir, cert = cert }
  return fixture
end

local function kafka()
  return { bootstrap_servers = h.broker().bootstrap_servers, security_protocol = "PLAINTEXT" }
end

local function reset_entry()
  local s = kafkacrypto.store(setup().dir .. "/cs.config")
  s:store_value("cons", kafkacrypto.bytes(setup().cert), "chainkeys")
  s:close()
end

local function server(policies)
  return chainserver.new { config = setup().dir .. "/cs.config", kafka = kafka(),
                           policies = policies }
end

TestChainServer = {}

function TestChainServer:test_node_adopts_the_reissued_chain()
  local f = setup()
  reset_entry()
  local log = kafkacrypto.log.capture()
  local node = kafkacrypto.new { config = f.dir .. "/cons.config", producer = kafka(),
                                 consumer = kafka() }
  local ok, err = pcall(function()
    local cs = server { (os.getenv("KC_SOURCE_DIR") or ".") .. "/policies/short-chains.lua" }
    local now = os.time()
    local done, renewed, refused = pcall(cs.check, cs, now)
    local entry = done and cs:entries()[1]
    cs:close()
    if not done then error(renewed, 0) end
    lu.assertEquals({ renewed, refused }, { 1, 0 })
    -- short-chains.lua: one day instead of the configured week
    lu.assertAlmostEquals(entry.max_age, now + 86400, 1)
    local deadline = os.time() + 20
    while node:stats().chains_adopted < 1 and os.time() <= deadline do
      os.execute("sleep 0.2")
    end
    lu.assertEquals(node:stats().chains_adopted, 1)
  end)
  node:close()
  log:stop()
  if not ok then error(err, 0) end
  lu.assertNotNil(log:find("WARNING:kafkacrypto.chainserver:Key expires soon, renewing cons"))
  -- the adoption is asserted above ("Utilizing new chain" is said at INFO)
end

function TestChainServer:test_fresh_entries_are_left_alone()
  setup()
  reset_entry()
  local log = kafkacrypto.log.capture()
  local cs = server()
  -- 100 s left is "soon" for a week's lifetime; not when the clock says
  -- it has a full lifetime ahead
  lu.assertEquals({ cs:check(os.time() - 604800) }, { 0, 0 })
  cs:close()
  log:stop()
end

function TestChainServer:test_policy_refusal_pushes_nothing()
  local f = setup()
  reset_entry()
  local deny = f.dir .. "/deny.lua"
  h.write_file(deny, [[
return { issue_chain = function(req)
  return false, "no chains for " .. req.node_id .. " (" .. req.fingerprint:sub(1, 8) .. ")"
end }
]])
  local log = kafkacrypto.log.capture()
  local cs = server { deny }
  local before = cs:entries()[1].max_age
  lu.assertEquals({ cs:check() }, { 0, 1 })
  lu.assertEquals(cs:entries()[1].max_age, before)
  cs:close()
  log:stop()
  lu.assertNotNil(log:find("deny.lua: hook issue_chain: denied: no chains for cons ("))
end

function TestChainServer:test_bad_grant_and_bad_files()
  local f = setup()
  reset_entry()
  local bad = f.dir .. "/bad.lua"
  h.write_file(bad, "return { issue_chain = function(req) req.grant.topics = 'all' "
                    .. "return req.grant end }\n")
  local log = kafkacrypto.log.capture()
  local cs = server { bad }
  local counts = { cs:check() }
  cs:close()
  lu.assertEquals(counts, { 0, 1 })
  lu.assertStrContains(h.error_of(chainserver.new, {}), "expected a table with config")
  lu.assertStrContains(h.error_of(server, { f.dir .. "/missing.lua" }), "missing.lua")
  log:stop()
  lu.assertNotNil(log:find("bad.lua: hook issue_chain: returned a bad grant: expected an array"))
end

function TestChainServer:test_zz_cleanup()
  if fixture then h.rmtree(fixture.dir) end
  fixture = nil
end
