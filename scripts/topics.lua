-- creates a root's key-exchange topics, or lists topics (Admin API)
local kafkacrypto = require "kafkacrypto"
local cli = require "kafkacrypto.tools.cli"
local kcat = require "kafkacrypto.tools.kcat"

local USAGE = [[
usage: kafkacrypto topics --create ROOT [--partitions N] [--replication N]
                          [--config NAME=VALUE]... [--management] [CONNECTION]
       kafkacrypto topics --list [TOPIC] [CONNECTION]
  --create ROOT       creates the topics of ROOT's key exchange: ROOT.reqs,
                      ROOT.keys and ROOT.subs (with the configured suffixes),
                      for clusters that do not create topics on first use.
                      Topics that exist already are left as they are. Log
                      compaction of these topics is fine (e.g. --config
                      cleanup.policy=compact,delete).
  --partitions N      partitions of each (default 1: nodes read partition 0)
  --replication N     replication factor (default: the broker's)
  --config NAME=VALUE a topic configuration (repeatable)
  --management        also create the management topics chains, allowlist
                      and denylist (names as configured)
  --list [TOPIC]      the cluster's metadata, as kcat -L prints it
  CONNECTION:
  --broker HOST:PORT  bootstrap servers; otherwise `kafkacrypto --broker`,
                      kafkacrypto.cfg's broker, or --node's
  --node NODE.config  take the Kafka options (TLS, SASL) of this node config
  -X NAME=VALUE       a librdkafka property (repeatable)
  --timeout SECONDS   how long to wait for the cluster (default 30)
  Exit status: 0 done; 1 the cluster refused or did not answer (the topics
  that failed are named); 2 bad arguments.
]]

local tool = cli.tool("topics", USAGE, {
  ["--create"] = { value = true, check = cli.nonempty("expected a root topic") },
  ["--list"] = { value = false },
  ["--partitions"] = { value = true, check = cli.number_at_least(1, "expected a number >= 1") },
  ["--replication"] = { value = true, check = cli.number_at_least(1, "expected a number >= 1") },
  ["--config"] = { value = true, many = true, check = function(text)
    local name, value = text:match("^([^=]+)=(.*)$")
    if not name then return nil, "expected NAME=VALUE (a topic configuration)" end
    return { name = name, value = value }
  end },
  ["--management"] = { value = false },
  ["--broker"] = { value = true, check = cli.nonempty("expected HOST:PORT[,HOST:PORT...]") },
  ["--node"] = { value = true, check = cli.nonempty("expected a file name") },
  ["-X"] = { value = true, many = true, check = cli.property },
  ["--timeout"] = { value = true, check = cli.number_at_least(0.001, "expected seconds > 0") },
}, true)

local opts = cli.parse(tool, { ... })
if (opts["--create"] ~= nil) == (opts["--list"] ~= nil) then
  cli.usage_error(tool, "give one of --create ROOT and --list")
end
if #opts > (opts["--list"] and 1 or 0) then cli.usage_error(tool, "unexpected argument '%s'", opts[#opts]) end
for _, n in ipairs{ "--partitions", "--replication" } do
  if opts[n] and opts[n] ~= math.floor(opts[n]) then
    cli.usage_error(tool, "%s %s: expected a whole number", n, opts[n])
  end
end

local options, _, store = cli.kafka_options(tool, opts, "producer")
if store then store:close() end
local ok, err = pcall(function()
  local admin = kafkacrypto.admin(options)
  if opts["--list"] then
    io.stdout:write(kcat.metadata_text(admin:metadata(opts[1], opts["--timeout"]), opts[1]))
  else
    local config
    for _, c in ipairs(opts["--config"]) do
      config = config or {}
      config[c.name] = c.value
    end
    local made = admin:create_key_topics(opts["--create"], {
      partitions = opts["--partitions"], replication = opts["--replication"], config = config,
      management = opts["--management"], timeout = opts["--timeout"] or 30 })
    for _, t in ipairs(made) do io.stdout:write(t.name, "\n") end
  end
  admin:close()
end)
if not ok then cli.fail(tool, err) end
