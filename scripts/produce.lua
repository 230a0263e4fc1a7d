-- sends lines of stdin to a topic, encrypted by a node (like kcat -P)
local kafkacrypto = require "kafkacrypto"
local cli = require "kafkacrypto.cli"

local USAGE = [[
usage: kafkacrypto produce --node NODE.config --topic TOPIC [--broker HOST:PORT]
                           [--no-key] [--serve SECONDS|forever]
                           [--connect-timeout SECONDS] [-X NAME=VALUE]...
  Reads stdin line by line, "KEY<TAB>VALUE" (split at the first tab; the value
  may hold more tabs) or, with --no-key, "VALUE" with a null key, and sends
  each line to TOPIC with key and value encrypted by the node of NODE.config
  (its NODE.crypto and NODE.seed are found as the config says; the node ID
  is the config's). Then it waits until every message is delivered.

  Consumers get the keys to decrypt from a running node that holds them.
  From the moment it opens, the node answers key requests (also requests
  made before it started) for every producer key it holds: the one of this
  run and those of earlier runs (saved in the node config's oldkeys), of
  every root, younger than crypto_max_pgen_age. With --serve it stays up
  that many seconds (or "forever") after sending, until SIGINT or SIGTERM,
  and then says what it served per root; with empty stdin it only serves.
  `kafkacrypto serve` does the same without reading stdin.

  --broker HOST:PORT  bootstrap servers; otherwise `kafkacrypto --broker`,
                      kafkacrypto.cfg's broker, or the node config's
                      bootstrap_servers. One of them is required.
  --connect-timeout SECONDS
                      give up (status 1) if no broker answers within SECONDS
                      (default 30)
  -X NAME=VALUE       a librdkafka property over the node config's Kafka
                      options, for this tool's producer and for the node's
                      key-exchange clients (repeatable; e.g.
                      -X security.protocol=PLAINTEXT for a node config made
                      for a TLS cluster).
  Exit status: 0 sent (and served); 1 a failure (bad input line, node files,
  Kafka errors, undelivered messages); 2 bad arguments.
]]

local tool = cli.tool("produce", USAGE, cli.node_specs {
  ["--node"] = { value = true, check = cli.nonempty("expected a file name") },
  ["--topic"] = { value = true },
  ["--broker"] = { value = true, check = cli.nonempty("expected HOST:PORT[,HOST:PORT...]") },
  ["--no-key"] = { value = false },
  ["--serve"] = { value = true, check = cli.seconds_or_forever },
  ["-X"] = { value = true, many = true, check = cli.property },
})

local opts = cli.parse(tool, { ... })
cli.require(tool, opts, "--node", "--topic")
local topic, no_key = opts["--topic"], opts["--no-key"]

local node, config, store = cli.open(tool, opts, "producer", nil, topic)
local function stop(message)
  node:close()
  store:close()
  if message then cli.fail(tool, message) end
end

config.key_serializer = node:key_serializer()
config.value_serializer = node:value_serializer()
local ok, producer = pcall(kafkacrypto.producer, config)
if not ok then stop(tostring(producer)) end

local sent, bad = 0, nil
ok, bad = pcall(function()
  local number = 0
  for line in io.stdin:lines() do
    number = number + 1
    local key, value
    if no_key then
      value = line
    else
      key, value = line:match("^([^\t]*)\t(.*)$")
      if not key then
        return ("stdin line %d: expected KEY<TAB>VALUE (or use --no-key)"):format(number)
      end
    end
    producer:send(topic, key, value)
    sent = sent + 1
  end
end)
if not ok then bad = tostring(bad) end
local flushed, why = pcall(producer.flush, producer)
producer:close()
if bad or not flushed then
  stop(bad and ("%s; %d line(s) before it were sent"):format(bad, sent) or tostring(why))
end

local serve = opts["--serve"] or 0
io.stderr:write(("kafkacrypto produce: sent %d messages to %s%s\n"):format(sent, topic,
  serve == 0 and "" or serve == math.huge and "; serving keys until SIGINT/SIGTERM"
  or ("; serving keys for %g s"):format(serve)))
io.stderr:flush()
if serve > 0 then
  local signal = kafkacrypto.wait_for_signal(serve < math.huge and serve or nil)
  if signal then
    io.stderr:write(("kafkacrypto produce: %s: stopping\n"):format(signal))
  end
  io.stderr:write(cli.served_report(tool, node:stats()))
end
stop()
