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
-- "controller"). It stops on SIGINT or SIGTERM, or after --seconds N.

local kafkacrypto = require "kafkacrypto"
local controller = require "kafkacrypto.authorities.controller"
local cli = require "kafkacrypto.tools.cli"

local tool = cli.tool("controller", [[
usage: kafkacrypto controller --node NODE.config [--broker HOST:PORT]
                              [--policy FILE]... [--group-id ID] [--seconds N]
  Approves key requests of limited consumers (nodes provisioned with role
  "consumer-limited" or "prodcon-limited", whose own chains may not ask
  producers for keys directly). It reads every ROOT.subs topic as a member
  of a consumer group, checks each request's certificate chain, asks the
  policies, and forwards approved requests, signed with the controller's
  own key, to ROOT.reqs, where producers answer them.

  --node NODE.config  the controller's node files (provisioned with role
                      "controller": `kafkacrypto simple-provision`)
  --broker HOST:PORT  bootstrap servers (else kafkacrypto.cfg's or the
                      node config's)
  --policy FILE       a policy file asked about each request, after
                      kafkacrypto.cfg's `policies` (repeatable; hook
                      `reencrypt`, see policies/README.md). Without any,
                      every request with a valid chain is forwarded.
  --group-id ID       the consumer group (default: the node ID)
  --seconds N         stop after N seconds (default: run until SIGINT/SIGTERM)
  On exit it prints how many requests it forwarded and refused.
  Exit status: 0 stopped; 1 a failure (node files, Kafka); 2 bad arguments.
]], {
  ["--node"] = { value = true, check = cli.nonempty("expected a file name") },
  ["--broker"] = { value = true, check = cli.nonempty("expected HOST:PORT[,HOST:PORT...]") },
  ["--policy"] = { value = true, many = true },
  ["--group-id"] = { value = true, check = cli.nonempty("expected a group ID") },
  ["--seconds"] = { value = true, check = cli.number_at_least(1e-9, "expected a positive number") },
})
local opts = cli.parse(tool, { ... })
cli.require(tool, opts, "--node")

local ok, c = pcall(controller.new, { config = opts["--node"], bootstrap_servers = opts["--broker"],
                                      policies = opts["--policy"], group_id = opts["--group-id"] })
if not ok then cli.fail(tool, c) end
io.stderr:write(("kafkacrypto controller: node %s, reading %s\n"):format(
  c.node:node_id(), c.pattern))
kafkacrypto.catch_signals(true)
local deadline = opts["--seconds"] and kafkacrypto.clock() + opts["--seconds"]
c:run(function()
  return kafkacrypto.wait_for_signal(0) ~= nil or (deadline and kafkacrypto.clock() >= deadline)
end)
local s = c:stats()
io.stderr:write(("kafkacrypto controller: forwarded %d, refused %d\n"):format(s.forwarded, s.refused))
c:close()
