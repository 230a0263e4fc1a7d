-- chainserver: re-issue short-lived chains for the nodes in `chainkeys` (spec §8.2)
--
-- kafkacrypto chainserver --node NODE.config [--broker HOST:PORT] [--policy FILE]...
--                         [--once] [--seconds N]
--
-- Every interval_secs (node config; default 300) it re-issues the
-- certificates of section chainkeys that expire within lifetime *
-- refresh_fraction, with the rights and lifetime the policies grant (hook
-- `issue_chain`, see policies/README.md), and pushes each new chain on
-- topic `chains`. --once makes one pass; --seconds N stops after N seconds.

local chainserver = require "kafkacrypto.chainserver"

local USAGE = "usage: kafkacrypto chainserver --node NODE.config [--broker HOST:PORT] "
  .. "[--policy FILE]... [--once] [--seconds N]"

local function fail(msg)
  io.stderr:write("kafkacrypto chainserver: ", msg, "\n", USAGE, "\n")
  os.exit(2)
end

local o = { policies = {} }
local once, seconds
local args = { ... }
local i = 1
while i <= #args do
  local a, v = args[i], args[i + 1]
  if a == "-h" or a == "--help" then
    print(USAGE)
    os.exit(0)
  elseif a == "--once" then
    once, i = true, i + 1
  elseif a == "--node" or a == "--broker" or a == "--policy" or a == "--seconds" then
    if v == nil then fail(a .. " needs a value") end
    if a == "--node" then o.config = v
    elseif a == "--broker" then o.bootstrap_servers = v
    elseif a == "--policy" then o.policies[#o.policies + 1] = v
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

local ok, cs = pcall(chainserver.new, o)
if not ok then
  io.stderr:write("kafkacrypto chainserver: ", tostring(cs), "\n")
  os.exit(1)
end
if once then
  cs:check()
else
  local deadline = seconds and os.time() + seconds
  cs:run(function() return deadline and os.time() >= deadline end)
end
local s = cs:stats()
io.stderr:write(("kafkacrypto chainserver: renewed %d, refused %d\n"):format(s.renewed, s.refused))
cs:close()
