-- answers key requests for every key a node holds, without producing (a key server)
local kafkacrypto = require "kafkacrypto"
local cli = require "kafkacrypto.tools.cli"

local USAGE = [[
usage: kafkacrypto serve --node NODE.config [--broker HOST:PORT]
                         [--for SECONDS|forever] [--connect-timeout SECONDS]
                         [-X NAME=VALUE]...
  Runs the node of NODE.config only to answer key requests: every producer
  key the node holds (those its producer runs saved in the node config's
  oldkeys, of every root, younger than crypto_max_pgen_age) is served to
  consumers whose chain and policies allow it, requests made before it
  started included. Use it when the producer has exited or is busy; keys a
  producer makes after `serve` opened the node are served by that producer
  (or by the next `serve`).

  It runs until SIGINT or SIGTERM (or --for SECONDS), then says on stderr
  what it served: per root, requests answered (replies sent), refused, and
  asking for keys the node does not hold.

  --for SECONDS       stop after SECONDS (default: forever)
  --connect-timeout SECONDS
                      give up (status 1) if no broker answers within SECONDS
                      (default 30)
  --broker HOST:PORT  bootstrap servers; otherwise `kafkacrypto --broker`,
                      kafkacrypto.cfg's broker, or the node config's
                      bootstrap_servers. One of them is required.
  -X NAME=VALUE       a librdkafka property over the node config's Kafka
                      options, for the node's key-exchange clients
                      (repeatable).
  Exit status: 0 stopped by --for or a signal; 1 the node holds no producer
  key, or a failure (node files, Kafka); 2 bad arguments.
]]

local tool = cli.tool("serve", USAGE, cli.node_specs {
  ["--node"] = { value = true, check = cli.nonempty("expected a file name") },
  ["--broker"] = { value = true, check = cli.nonempty("expected HOST:PORT[,HOST:PORT...]") },
  ["--for"] = { value = true, check = cli.seconds_or_forever },
  ["-X"] = { value = true, many = true, check = cli.property },
})

local opts = cli.parse(tool, { ... })
cli.require(tool, opts, "--node")
local seconds = opts["--for"] or math.huge

kafkacrypto.catch_signals(true)
local node, _, store = cli.open(tool, opts, "producer", nil,
                               kafkacrypto.tunables().mgmt_topic_chains or "chains")
local function close() node:close(); store:close() end

local held, roots = {}, {}
for _, k in ipairs(node:producer_keys()) do
  if not held[k.root] then roots[#roots + 1] = k.root end
  held[k.root] = (held[k.root] or 0) + 1
end
table.sort(roots)
if #roots == 0 then
  close()
  cli.fail(tool, ("the node of %s holds no producer key (none saved in its oldkeys, or all "
    .. "older than crypto_max_pgen_age): nothing to serve; run `kafkacrypto produce` with "
    .. "this node first"):format(opts["--node"]))
end
local list = {}
for _, r in ipairs(roots) do list[#list + 1] = ("%s (%d key(s))"):format(r, held[r]) end
io.stderr:write(("kafkacrypto serve: serving keys of %s %s\n"):format(table.concat(list, ", "),
  seconds == math.huge and "until SIGINT/SIGTERM" or ("for %g s"):format(seconds)))
io.stderr:flush()

local signal = kafkacrypto.wait_for_signal(seconds < math.huge and seconds or nil)
if signal then io.stderr:write(("kafkacrypto serve: %s: stopping\n"):format(signal)) end
local stats = node:stats()
close()
io.stderr:write(cli.served_report(tool, stats))
io.stderr:flush()
