-- prints the messages of topics, decrypted by a node (like kcat -C)
local kafkacrypto = require "kafkacrypto"
local cli = require "kafkacrypto.cli"

local USAGE = [[
usage: kafkacrypto consume --node NODE.config --topic TOPIC [--topic TOPIC]...
                           [--broker HOST:PORT] [--from-beginning] [--count N]
                           [--timeout SECONDS] [--connect-timeout SECONDS]
                           [-X NAME=VALUE]...
  Reads every partition of each TOPIC (from now on, or with --from-beginning
  from the first message kept) and prints each message that the node of
  NODE.config decrypts as "KEY<TAB>VALUE" on stdout (a null key as an empty
  one). The node asks the producers for keys it lacks; a message whose key
  has not arrived yet is kept and retried as keys arrive, so lines of one
  partition may come out of order.

  Messages it cannot decrypt are reported on stderr, never on stdout:
    ! undecryptable TOPIC partition P offset O: REASON
  at once for bytes that are not a kafkacrypto message, and on exit (or when
  more than 10000 are waiting) for those whose key never came.

  --count N           stop after N messages are printed decrypted
  --timeout SECONDS   stop after SECONDS in all (default: no limit)
  Without either it runs until SIGINT or SIGTERM.
  --connect-timeout SECONDS
                      give up (status 1) if no broker answers within SECONDS
                      (default 30)
  --broker HOST:PORT  bootstrap servers; otherwise `kafkacrypto --broker`,
                      kafkacrypto.cfg's broker, or the node config's
                      bootstrap_servers. One of them is required.
  -X NAME=VALUE       a librdkafka property over the node config's Kafka
                      options, for this tool's consumer and for the node's
                      key-exchange clients (repeatable).
  Exit status: 0 done (--count reached; without --count: stopped by
  --timeout or a signal); 1 --count not reached, or a failure (node files,
  Kafka errors); 2 bad arguments.
]]

local PENDING_MAX = 10000
local RETRY_EVERY = 0.25   -- s between retries of messages still waiting for a key

local tool = cli.tool("consume", USAGE, cli.node_specs {
  ["--node"] = { value = true, check = cli.nonempty("expected a file name") },
  ["--topic"] = { value = true, many = true },
  ["--broker"] = { value = true, check = cli.nonempty("expected HOST:PORT[,HOST:PORT...]") },
  ["--from-beginning"] = { value = false },
  ["--count"] = { value = true, check = function(text)
    local n = tonumber(text)
    if n and n >= 1 and n == math.floor(n) and n < 2^53 then return n end
    return nil, "expected a whole number >= 1"
  end },
  ["--timeout"] = { value = true, check = cli.number_at_least(0, "expected seconds >= 0") },
  ["-X"] = { value = true, many = true, check = cli.property },
})

local opts = cli.parse(tool, { ... })
cli.require(tool, opts, "--node")
if #opts["--topic"] == 0 then cli.usage_error(tool, "--topic is required") end
local count, timeout = opts["--count"], opts["--timeout"]

local clock = kafkacrypto.clock
local started = clock()
local function left()
  return timeout and timeout - (clock() - started) or math.huge
end

-- Our own loop retries messages, so the deserializer hardly waits at first
-- sight of a key (spec §4.4: 9 intervals).
local node, config, store = cli.open(tool, opts, "consumer", { key_wait_interval = 0.02 },
                                    opts["--topic"][1])
config["enable.auto.commit"] = config["enable.auto.commit"] or "false"
config.key_deserializer = node:key_deserializer()
config.value_deserializer = node:value_deserializer()
local ok, consumer = pcall(kafkacrypto.consumer, config)
if not ok then
  node:close()
  store:close()
  cli.fail(tool, tostring(consumer))
end

local printed, pending, status = 0, {}, nil
local function finish(code, message)
  for _, msg in ipairs(pending) do
    io.stderr:write(("! undecryptable %s partition %d offset %d: no key received\n")
                    :format(msg.topic, msg.partition, msg.offset))
  end
  consumer:close()
  node:close()
  store:close()
  if message then cli.fail(tool, message) end
  io.stdout:flush()
  os.exit(code)
end

local function cleartext(part, retry)
  return part == nil or part:is_cleartext(retry)
end

local function decrypted(msg, retry)
  return cleartext(msg.key, retry) and cleartext(msg.value, retry)
end

local function show(msg)
  io.stdout:write(msg.key and msg.key:get_message(false) or "", "\t",
                  msg.value and msg.value:get_message(false) or "", "\n")
  io.stdout:flush()
  printed = printed + 1
  if count and printed >= count then finish(0) end
end

local function never_decryptable(msg)
  local function never(part) return part ~= nil and not part:is_possibly_decryptable() end
  return never(msg.key) or never(msg.value)
end

local last_retry = -math.huge
local function retry_pending()
  if #pending == 0 or clock() - last_retry < RETRY_EVERY then return end
  last_retry = clock()
  local still, ready = {}, {}
  for _, msg in ipairs(pending) do
    table.insert(decrypted(msg, true) and ready or still, msg)
  end
  pending = still
  for _, msg in ipairs(ready) do show(msg) end
end

local function take(msg)
  if decrypted(msg, false) then
    show(msg)
  elseif never_decryptable(msg) then
    io.stderr:write(("! undecryptable %s partition %d offset %d: not a kafkacrypto message\n")
                    :format(msg.topic, msg.partition, msg.offset))
  else
    if #pending >= PENDING_MAX then
      local oldest = table.remove(pending, 1)
      io.stderr:write(("! undecryptable %s partition %d offset %d: no key received (gave up: "
                       .. "%d messages waiting)\n"):format(oldest.topic, oldest.partition,
                       oldest.offset, PENDING_MAX))
    end
    pending[#pending + 1] = msg
  end
end

-- Partitions are assigned directly (a consumer group would take seconds to
-- form on a fresh broker). A topic that does not exist yet is looked for
-- again, and read from its beginning once it appears.
local waiting = {}
for _, t in ipairs(opts["--topic"]) do waiting[#waiting + 1] = t end
local assigned, last_lookup, first_lookup, told_missing = {}, -math.huge, true, {}
local log = kafkacrypto.log.logger("kafkacrypto.consume")
local function assign_new_topics()
  if #waiting == 0 or clock() - last_lookup < 0.5 then return end
  last_lookup = clock()
  local from = (opts["--from-beginning"] or not first_lookup) and "beginning" or "end"
  first_lookup = false
  local still, changed = {}, false
  for _, t in ipairs(waiting) do
    local n = consumer:partition_count(t, math.max(0.1, math.min(2, left())))
    if n > 0 then
      log:info("reading %s from the %s (%d partition(s))", t, from, n)
      for p = 0, n - 1 do assigned[#assigned + 1] = { topic = t, partition = p, offset = from } end
      changed = true
    else
      if not told_missing[t] then
        log:info("topic %s does not exist yet: looking again every 0.5 s", t)
        told_missing[t] = true
      end
      still[#still + 1] = t
    end
  end
  waiting = still
  if changed then consumer:assign(assigned) end
end

kafkacrypto.catch_signals(true)
local run_ok, err = pcall(function()
  while true do
    local signal = kafkacrypto.wait_for_signal(0)
    if signal then
      io.stderr:write(("kafkacrypto consume: %s: stopping\n"):format(signal))
      status = count and 1 or 0
      return
    end
    if left() <= 0 then
      status = count and 1 or 0
      return
    end
    assign_new_topics()
    retry_pending()
    local msg = #assigned > 0 and consumer:poll(math.min(0.2, left()))
    if msg then take(msg) elseif #assigned == 0 then kafkacrypto.wait_for_signal(0.1) end
  end
end)
if not run_ok then finish(1, tostring(err)) end
finish(status)
