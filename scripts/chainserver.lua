-- chainserver: re-issue short-lived chains for the nodes in `chainkeys` (spec §8.2)
--
-- kafkacrypto chainserver --node NODE.config [--broker HOST:PORT] [--policy FILE]...
--                         [--once] [--seconds N]
--
-- Every interval_secs (node config; default 300) it re-issues the
-- certificates of section chainkeys that expire within lifetime *
-- refresh_fraction, with the rights and lifetime the policies grant (hook
-- `issue_chain`, see policies/README.md), and pushes each new chain on
-- topic `chains`. --once makes one pass; otherwise it runs until SIGINT or
-- SIGTERM, or for --seconds N.

local kafkacrypto = require "kafkacrypto"
local chainserver = require "kafkacrypto.authorities.chainserver"
local cli = require "kafkacrypto.tools.cli"

local tool = cli.tool("chainserver", [[
usage: kafkacrypto chainserver --node NODE.config [--broker HOST:PORT]
                               [--policy FILE]... [--once] [--seconds N]
  Keeps short-lived certificate chains fresh: for each node key listed in
  the [chainkeys] section of NODE.config, it re-issues the node's chain
  when it expires within lifetime * refresh_fraction (every interval_secs,
  default 300 s), with the rights and lifetime the policies grant, and
  publishes each new chain on the `chains` topic, where nodes adopt it.

  --node NODE.config  the chain server's node files (`kafkacrypto
                      chain-server-provision` makes them)
  --broker HOST:PORT  bootstrap servers (else kafkacrypto.cfg's or the
                      node config's)
  --policy FILE       a policy file deciding what each chain may do
                      (repeatable; hook `issue_chain`, see policies/README.md)
  --once              make one pass and exit
  --seconds N         stop after N seconds (default: run until SIGINT/SIGTERM)
  On exit it prints how many chains it issued.
  Exit status: 0 stopped; 1 a failure (node files, Kafka); 2 bad arguments.
]], {
  ["--node"] = { value = true, check = cli.nonempty("expected a file name") },
  ["--broker"] = { value = true, check = cli.nonempty("expected HOST:PORT[,HOST:PORT...]") },
  ["--policy"] = { value = true, many = true },
  ["--once"] = { value = false },
  ["--seconds"] = { value = true, check = cli.number_at_least(1e-9, "expected a positive number") },
})
local opts = cli.parse(tool, { ... })
cli.require(tool, opts, "--node")

local ok, cs = pcall(chainserver.new, { config = opts["--node"], bootstrap_servers = opts["--broker"],
                                        policies = opts["--policy"] })
if not ok then cli.fail(tool, cs) end
if opts["--once"] then
  cs:check()
else
  local deadline = opts["--seconds"] and kafkacrypto.clock() + opts["--seconds"]
  local signalled = false
  cs:run(function() return signalled or (deadline and kafkacrypto.clock() >= deadline) end,
         function(seconds) signalled = kafkacrypto.wait_for_signal(seconds) ~= nil end)
end
local s = cs:stats()
io.stderr:write(("kafkacrypto chainserver: renewed %d, refused %d\n"):format(s.renewed, s.refused))
cs:close()
