-- controller: re-sign approved key requests of limited consumers (spec §8.1)
--
-- kafkacrypto controller --node NODE.config [--broker HOST:PORT] [--policy FILE]...
--                        [--group-id ID] [--seconds N]
--
-- Reads every <root>.subs topic as a member of a consumer group, has the
-- core verify each request's chain (usage key-encrypt-subscribe), asks the
-- policies (kafkacrypto.cfg's `policies` and every --policy FILE; hook
-- `reencrypt`, see policies/README.md), and forwards approved requests,
-- re-signed with the controller's key, to <root>.reqs. The node must be
-- provisioned with a chain allowing key-encrypt-request (role
-- "controller"). --seconds N stops after N seconds (for tests and demos).

local kafkacrypto = require "kafkacrypto"
local controller = require "kafkacrypto.controller"

local USAGE = "usage: kafkacrypto controller --node NODE.config [--broker HOST:PORT] "
  .. "[--policy FILE]... [--group-id ID] [--seconds N]"

local function fail(msg)
  io.stderr:write("kafkacrypto controller: ", msg, "\n", USAGE, "\n")
  os.exit(2)
end

local o = { policies = {} }
local seconds
local args = { ... }
local i = 1
while i <= #args do
  local a, v = args[i], args[i + 1]
  if a == "-h" or a == "--help" then
    print(USAGE)
    os.exit(0)
  elseif a == "--node" or a == "--broker" or a == "--policy" or a == "--group-id"
      or a == "--seconds" then
    if v == nil then fail(a .. " needs a value") end
    if a == "--node" then o.config = v
    elseif a == "--broker" then o.bootstrap_servers = v
    elseif a == "--policy" then o.policies[#o.policies + 1] = v
    elseif a == "--group-id" then o.group_id = v
    else
      seconds = tonumber(v)
      if not seconds or seconds <= 0 then fail("--seconds: expected a positive number") end
    end
    i = i + 2
  else
    fail("unknown argument " .. a)
  end
end
if not o.config then fail("--node is required") end

local ok, c = pcall(controller.new, o)
if not ok then
  io.stderr:write("kafkacrypto controller: ", tostring(c), "\n")
  os.exit(1)
end
io.stderr:write(("kafkacrypto controller: node %s, reading %s\n"):format(
  c.node:node_id(), c.pattern))
local deadline = seconds and os.time() + seconds
c:run(function() return deadline and os.time() >= deadline end)
local s = c:stats()
io.stderr:write(("kafkacrypto controller: forwarded %d, refused %d\n"):format(s.forwarded, s.refused))
c:close()
