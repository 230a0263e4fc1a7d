-- sends lines of stdin to a topic, encrypted by a node (like kcat -P)
local kafkacrypto = require "kafkacrypto"
local cli = require "kafkacrypto.tools.cli"
local kcat = require "kafkacrypto.tools.kcat"

local USAGE = [[
usage: kafkacrypto produce --node NODE.config -t TOPIC [OPTIONS] [FILE]...
       kafkacrypto produce -L [-t TOPIC] [-b HOST:PORT] [--node NODE.config]
       kafkacrypto produce -X list
  Reads messages from stdin (or FILEs) and sends each to TOPIC with key and
  value encrypted by the node of NODE.config (its NODE.crypto and NODE.seed
  are found as the config says; the node ID is the config's). Then it waits
  until every message is delivered. Headers (-H) are sent in plaintext, as
  upstream kafkacrypto does. kcat's producer options work with their kcat
  meaning (kcat -P ... becomes kafkacrypto produce --node NODE.config ...).

  Input: messages end at -D's delimiter (default a newline); empty ones are
  skipped unless -Z. Each is split into key and value:
    default             "KEY<TAB>VALUE" at the first tab (the value may hold
                        more tabs); a message without a tab is an error
    -K DELIM            at the first DELIM; without DELIM, all of it is the
                        value and the key is null (as kcat)
    -k KEY              KEY for every message, all of the input the value
    --no-key            a null key, all of the input the value
  DELIM arguments understand \n \t \r \0 \\ \xHH.
    -D DELIM            the message delimiter
    -Z                  an empty value is sent as null (a tombstone, which
                        compaction removes; the null is not encrypted), an
                        empty key as a null key
    -H NAME=VALUE       a header on every message (repeatable; NAME alone: a
                        null value)
    -p PARTITION        the partition (default: librdkafka's partitioner)
    FILE...             each FILE is one message (its whole content) ...
    -l                  ... or, with -l, is read like stdin
    -T                  echo each message sent to stdout, with the delimiter

  Consumers get the keys to decrypt from a running node that holds them.
  From the moment it opens, the node answers key requests (also requests
  made before it started) for every producer key it holds: the one of this
  run and those of earlier runs (saved in the node config's oldkeys), of
  every root, younger than crypto_max_pgen_age. With --serve it stays up
  that many seconds (or "forever") after sending, until SIGINT or SIGTERM,
  and then says what it served per root; with empty stdin it only serves.
  `kafkacrypto serve` does the same without reading stdin.

  -t, --topic TOPIC   the topic
  -b, --broker HOST:PORT  bootstrap servers; otherwise `kafkacrypto --broker`,
                      kafkacrypto.cfg's broker, or the node config's
                      bootstrap_servers. One of them is required.
  --connect-timeout SECONDS
                      give up (status 1) if no broker answers within SECONDS
                      (default 30)
  -X NAME=VALUE       a librdkafka property over the node config's Kafka
                      options, for this tool's producer and for the node's
                      key-exchange clients (repeatable; e.g.
                      -X security.protocol=PLAINTEXT for a node config made
                      for a TLS cluster). -X list: list them.
  -L                  print the cluster's metadata (of -t TOPIC, else all)
  -q                  quiet: no summary line on stderr
  -P                  ignored (kcat's producer mode)
  A message larger than message.max.bytes (1000000 by default) fails:
  encryption adds up to 75 bytes to each of key and value.
  Exit status: 0 sent (and served); 1 a failure (bad input, node files,
  Kafka errors, undelivered messages); 2 bad arguments.
]]

local tool = cli.tool("produce", USAGE, cli.node_specs {
  ["--node"] = { value = true, check = cli.nonempty("expected a file name") },
  ["--topic"] = { value = true },
  ["-t"] = { value = true },
  ["--broker"] = { value = true, check = cli.nonempty("expected HOST:PORT[,HOST:PORT...]") },
  ["-b"] = { value = true, check = cli.nonempty("expected HOST:PORT[,HOST:PORT...]") },
  ["--no-key"] = { value = false },
  ["--serve"] = { value = true, check = cli.seconds_or_forever },
  ["-X"] = { value = true, many = true, check = function(text)
    if text == "list" then return "list" end
    return cli.property(text)
  end },
  ["-K"] = { value = true, check = cli.nonempty("expected a delimiter") },
  ["-k"] = { value = true },
  ["-H"] = { value = true, many = true, check = cli.nonempty("expected NAME=VALUE") },
  ["-p"] = { value = true, check = function(text)
    local n = tonumber(text)
    if n and n >= 0 and n == math.floor(n) and n < 2^31 then return n end
    return nil, "expected a partition number >= 0"
  end },
  ["-Z"] = { value = false },
  ["-l"] = { value = false },
  ["-T"] = { value = false },
  ["-D"] = { value = true, check = cli.nonempty("expected a delimiter") },
  ["-L"] = { value = false },
  ["-q"] = { value = false },
  ["-P"] = { value = false },
}, true)

local opts = cli.parse(tool, { ... })
local xs = {}
for _, x in ipairs(opts["-X"]) do
  if x == "list" then
    kafkacrypto.show_kafka_properties()
    os.exit(0)
  end
  xs[#xs + 1] = x
end
opts["-X"] = xs
for long, short in pairs{ ["--broker"] = "-b", ["--topic"] = "-t" } do
  if opts[long] ~= nil and opts[short] ~= nil then
    cli.usage_error(tool, "%s and %s are the same option: give one", long, short)
  end
  opts[long] = opts[long] or opts[short]
end

if opts["-L"] then
  local options, _, store = cli.kafka_options(tool, opts, "producer")
  if store then store:close() end
  local ok, err = pcall(function()
    local admin = kafkacrypto.admin(options)
    io.stdout:write(kcat.metadata_text(admin:metadata(opts["--topic"]), opts["--topic"]))
    admin:close()
  end)
  if not ok then cli.fail(tool, err) end
  os.exit(0)
end

cli.require(tool, opts, "--node", "--topic")
local topic = opts["--topic"]
local keying = 0
for _, o in ipairs{ "--no-key", "-k", "-K" } do
  if opts[o] ~= nil then keying = keying + 1 end
end
if keying > 1 then cli.usage_error(tool, "--no-key, -k and -K: give one") end
local key_delim = opts["-K"] and kcat.unescape(opts["-K"])
local delim = kcat.unescape(opts["-D"] or "\\n")
if opts["-l"] and #opts == 0 then cli.usage_error(tool, "-l needs a FILE") end
local headers = {}
for i, hv in ipairs(opts["-H"]) do
  local name, value = hv:match("^([^=]*)=(.*)$")
  headers[i] = { name or hv, value }
end
local files = {}
for i, f in ipairs(opts) do files[i] = f end
for _, f in ipairs(files) do
  local fh = io.open(f, "rb")
  if not fh then cli.fail(tool, ("cannot read %s"):format(f)) end
  fh:close()
end

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

local sent, number = 0, 0
local function send(record)
  number = number + 1
  if record == "" and not opts["-Z"] then return end
  local key, value
  if opts["--no-key"] then
    value = record
  elseif opts["-k"] then
    key, value = opts["-k"], record
  elseif key_delim then
    local at = record:find(key_delim, 1, true)
    if at then
      key, value = record:sub(1, at - 1), record:sub(at + #key_delim)
    else
      value = record
    end
  else
    key, value = record:match("^([^\t]*)\t(.*)$")
    if not key then
      error(("message %d: expected KEY<TAB>VALUE (or use --no-key, -k or -K)"):format(number), 0)
    end
  end
  if opts["-Z"] then
    if value == "" then value = nil end
    if key == "" then key = nil end
  end
  producer:send{ topic = topic, key = key, value = value, partition = opts["-p"],
                 headers = #headers > 0 and headers or nil }
  sent = sent + 1
  if opts["-T"] then io.stdout:write(record, delim) end
end

-- Calls send for each delimited message of file handle fh. Lines are sent
-- as they arrive (a pipe from `tail -f` is not held back until 64 KiB
-- gather); other delimiters are read in blocks.
local function each_message(fh)
  if delim == "\n" then
    for line in fh:lines() do send(line) end
    return
  end
  local buffer = ""
  while true do
    local chunk = fh:read(65536)
    if not chunk then break end
    buffer = buffer .. chunk
    local from = 1
    while true do
      local at = buffer:find(delim, from, true)
      if not at then break end
      send(buffer:sub(from, at - 1))
      from = at + #delim
    end
    buffer = buffer:sub(from)
  end
  if buffer ~= "" then send(buffer) end
end

local bad
ok, bad = pcall(function()
  if #files == 0 then
    each_message(io.stdin)
  end
  for _, f in ipairs(files) do
    local fh = assert(io.open(f, "rb"))
    if opts["-l"] then
      each_message(fh)
    else
      send(fh:read("*a"))
    end
    fh:close()
  end
end)
if ok then bad = nil else bad = tostring(bad) end
io.stdout:flush()
local flushed, why = pcall(producer.flush, producer)
producer:close()
if bad or not flushed then
  stop(bad and ("%s; %d message(s) before it were sent"):format(bad, sent) or tostring(why))
end

local serve = opts["--serve"] or 0
if not opts["-q"] then
  io.stderr:write(("kafkacrypto produce: sent %d messages to %s%s\n"):format(sent, topic,
    serve == 0 and "" or serve == math.huge and "; serving keys until SIGINT/SIGTERM"
    or ("; serving keys for %g s"):format(serve)))
  io.stderr:flush()
end
if serve > 0 then
  local signal = kafkacrypto.wait_for_signal(serve < math.huge and serve or nil)
  if signal and not opts["-q"] then
    io.stderr:write(("kafkacrypto produce: %s: stopping\n"):format(signal))
  end
  io.stderr:write(cli.served_report(tool, node:stats()))
end
stop()
