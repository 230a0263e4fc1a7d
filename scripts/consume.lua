-- prints the messages of topics, decrypted by a node (like kcat -C)
local kafkacrypto = require "kafkacrypto"
local cli = require "kafkacrypto.tools.cli"
local kcat = require "kafkacrypto.tools.kcat"

local USAGE = [[
usage: kafkacrypto consume --node NODE.config -t TOPIC [-t TOPIC]... [OPTIONS]
       kafkacrypto consume --node NODE.config -G GROUP TOPIC... [OPTIONS]
       kafkacrypto consume -L [-t TOPIC] [-b HOST:PORT] [--node NODE.config]
       kafkacrypto consume -X list
  Reads every partition of each TOPIC and prints each message that the node
  of NODE.config decrypts. The node asks the producers for keys it lacks; a
  message whose key has not arrived yet is kept and retried as keys arrive,
  so messages of one partition may come out of order. kcat's consumer
  options work with their kcat meaning (kcat -C ... becomes
  kafkacrypto consume --node NODE.config ...).

  Output (stdout), one message per line:
    default             KEY<TAB>VALUE
    -K DELIM            KEY DELIM VALUE, then -D's delimiter
    -D DELIM            VALUE DELIM (kcat's default output)
    -f FORMAT           kcat's format: %t topic, %p partition, %o offset, %k key,
                        %s value, %S value size, %K key size (-1 for null), %T
                        timestamp (ms), %h headers (n=v,...), %% a %; \n \t \r
                        \\ \0 \xHH in FORMAT are those bytes
    -J                  kcat's JSON envelope per line: topic, partition, offset,
                        tstype, ts, broker, headers, key, payload; null for
                        null. Always valid JSON: bytes that are not UTF-8 are
                        given in base64, with "key_encoding"/"payload_encoding":
                        "base64" (a header value as {"base64": ...})
  In the text forms, key, value and header bytes are escaped so that a
  message is one line: \\ backslash, \n \r \0, \xHH for other control
  bytes but tab, and \N for a null key or value, so a null key, a tombstone
  (null value) and an empty value are told apart. Sizes (%S %K) are -1 for
  null.
    --raw               write bytes unescaped and null as empty, as kcat does
    -Z                  with --raw: null as NULL (kcat -Z)

  Where to read (kcat's -o, -p, -e, -c, -G):
    -o OFFSET           beginning, end (default), stored, N (absolute), -N (N
                        before the end), s@MS (first message at or after that
                        time), e@MS (stop each partition at the first message at
                        or after that time, not printed; also at its end)
    --from-beginning    -o beginning
    -p PARTITION        only this partition of the topics
    -e                  exit when every partition's end is reached (messages
                        still waiting for keys get --key-wait more seconds)
    --key-wait SECONDS  how long a message may wait for its key when 10000 wait,
                        and with -e or e@ after the end (default 10)
    -c, --count N       stop after N messages are printed
    --timeout SECONDS   stop after SECONDS in all (default: no limit)
    -G GROUP            balanced consumer group GROUP on the TOPICs given as
                        arguments: partitions are shared with other members,
                        and offsets of printed messages are committed (those of
                        messages still waiting for keys are not). -o beginning/
                        end set where a group without commits starts.
  Without -e, -c or --timeout it runs until SIGINT or SIGTERM.

  Other options:
    -t, --topic TOPIC   a topic to read (repeatable)
    -b, --broker HOST:PORT  bootstrap servers; otherwise `kafkacrypto --broker`,
                        kafkacrypto.cfg's broker, or the node config's
                        bootstrap_servers. One of them is required.
    --connect-timeout SECONDS  give up (status 1) if no broker answers within
                        SECONDS (default 30)
    -X NAME=VALUE       a librdkafka property over the node config's Kafka
                        options, for this tool's consumer and for the node's
                        key-exchange clients (repeatable). -X list: list them.
    -L                  print the cluster's metadata (of -t TOPIC, else all)
    -q                  quiet: no informational lines on stderr
    -u                  unbuffered: write each message at once (otherwise
                        stdout is flushed whenever no message is waiting)
    -C                  ignored (kcat's consumer mode)

  Messages it cannot decrypt are reported on stderr, never on stdout:
    ! undecryptable TOPIC partition P offset O: REASON
  at once for bytes that are not a kafkacrypto message, and on exit for those
  whose key never came. While 10000 wait for keys, reading pauses (nothing is
  dropped) until keys come, or until the oldest has waited --key-wait seconds
  (then it is reported).
  Exit status: 0 done (-c reached; otherwise stopped by -e, --timeout or a
  signal); 1 -c not reached, or a failure (node files, Kafka errors); 2 bad
  arguments.
]]

local PENDING_MAX = 10000   -- messages waiting for keys before reading pauses
local RETRY_EVERY = 0.25   -- s between retries of messages still waiting for a key

local function whole_number(low, what)
  return function(text)
    local n = tonumber(text)
    if n and n >= low and n == math.floor(n) and n < 2^53 then return n end
    return nil, what
  end
end

local tool = cli.tool("consume", USAGE, cli.node_specs {
  ["--node"] = { value = true, check = cli.nonempty("expected a file name") },
  ["--topic"] = { value = true, many = true },
  ["-t"] = { value = true, many = true },
  ["--broker"] = { value = true, check = cli.nonempty("expected HOST:PORT[,HOST:PORT...]") },
  ["-b"] = { value = true, check = cli.nonempty("expected HOST:PORT[,HOST:PORT...]") },
  ["--from-beginning"] = { value = false },
  ["--count"] = { value = true, check = whole_number(1, "expected a whole number >= 1") },
  ["-c"] = { value = true, check = whole_number(1, "expected a whole number >= 1") },
  ["--timeout"] = { value = true, check = cli.number_at_least(0, "expected seconds >= 0") },
  ["--key-wait"] = { value = true, check = cli.number_at_least(0, "expected seconds >= 0") },
  ["-X"] = { value = true, many = true, check = function(text)
    if text == "list" then return "list" end
    return cli.property(text)
  end },
  ["-f"] = { value = true },
  ["-J"] = { value = false },
  ["-K"] = { value = true },
  ["-D"] = { value = true },
  ["-o"] = { value = true, many = true, check = kcat.parse_offset },
  ["-p"] = { value = true, check = whole_number(0, "expected a partition number >= 0") },
  ["-e"] = { value = false },
  ["-G"] = { value = true, check = cli.nonempty("expected a group ID") },
  ["-q"] = { value = false },
  ["-u"] = { value = false },
  ["-Z"] = { value = false },
  ["--raw"] = { value = false },
  ["-L"] = { value = false },
  ["-C"] = { value = false },
}, true)

local opts = cli.parse(tool, { ... })
for _, x in ipairs(opts["-X"]) do
  if x == "list" then
    kafkacrypto.show_kafka_properties()
    os.exit(0)
  end
end
local xs = {}
for _, x in ipairs(opts["-X"]) do xs[#xs + 1] = x end
opts["-X"] = xs

local function merge(long, short)
  if opts[long] ~= nil and opts[short] ~= nil then
    cli.usage_error(tool, "%s and %s are the same option: give one", long, short)
  end
  opts[long] = opts[long] or opts[short]
end
merge("--broker", "-b")
merge("--count", "-c")
for _, t in ipairs(opts["-t"]) do table.insert(opts["--topic"], t) end
local group = opts["-G"]
for _, t in ipairs(opts) do
  if not group then cli.usage_error(tool, "unexpected argument '%s' (topics as arguments go with -G)", t) end
  table.insert(opts["--topic"], t)
end
local quiet = opts["-q"]

if opts["-L"] then
  local options, _, store = cli.kafka_options(tool, opts, "consumer")
  if store then store:close() end
  local ok, err = pcall(function()
    local admin = kafkacrypto.admin(options)
    io.stdout:write(kcat.metadata_text(admin:metadata(opts["--topic"][1]), opts["--topic"][1]))
    admin:close()
  end)
  if not ok then cli.fail(tool, err) end
  os.exit(0)
end

cli.require(tool, opts, "--node")
if #opts["--topic"] == 0 then
  cli.usage_error(tool, group and "-G needs topics as arguments" or "--topic is required")
end
local count, timeout = opts["--count"], opts["--timeout"]
local key_wait = opts["--key-wait"] or 10

-- Where to start and stop.
local start, stop_ts = opts["--from-beginning"] and "beginning" or nil, nil
for _, o in ipairs(opts["-o"]) do
  if o.stop_timestamp then
    stop_ts = o.stop_timestamp
  elseif start ~= nil then
    cli.usage_error(tool, "-o: only one starting offset (and one e@MS) can be given")
  else
    start = o.start
  end
end
if group and start ~= nil and start ~= "beginning" and start ~= "end" then
  cli.usage_error(tool, "-o with -G: only beginning or end (where a group without commits starts)")
end
local exit_at_end = opts["-e"] or stop_ts ~= nil

-- What a message looks like on stdout.
local format
if opts["-J"] then
  if opts["-f"] then cli.usage_error(tool, "-J and -f: give one") end
  format = function(msg) return kcat.json(msg) .. "\n" end
else
  local f = opts["-f"]
  if not f then
    local delim = opts["-D"] or "\\n"
    f = opts["-K"] and ("%k" .. opts["-K"] .. "%s" .. delim)
        or opts["-D"] and ("%s" .. delim) or "%k\t%s\n"
  end
  local why
  format, why = kcat.formatter(f, { raw = opts["--raw"], null_text = opts["-Z"] and "NULL" or nil })
  if not format then cli.usage_error(tool, "-f %s: %s", f, why) end
end
io.stdout:setvbuf(opts["-u"] and "no" or "full")

local clock = kafkacrypto.clock
local started = clock()
local function left()
  return timeout and timeout - (clock() - started) or math.huge
end
local function info(fmt, ...)
  if not quiet then
    io.stderr:write(fmt:format(...), "\n")
    io.stderr:flush()
  end
end

-- Our own loop retries messages, so the deserializer hardly waits at first
-- sight of a key (spec §4.4: 9 intervals).
local node, config, store = cli.open(tool, opts, "consumer", { key_wait_interval = 0.02 },
                                    opts["--topic"][1])
config["enable.auto.commit"] = "false"   -- commits are ours (-G), never of unprinted messages
config.key_deserializer = node:key_deserializer()
config.value_deserializer = node:value_deserializer()
if exit_at_end then config["enable.partition.eof"] = "true" end
if group then
  -- librdkafka's names: the node config may hold them already (a table
  -- holding both spellings would leave the winner to chance)
  config.group_id, config["group.id"] = nil, group
  if start then
    config.auto_offset_reset = nil
    config["auto.offset.reset"] = start == "beginning" and "earliest" or "latest"
  end
end
local ok, consumer = pcall(kafkacrypto.consumer, config)
if not ok then
  node:close()
  store:close()
  cli.fail(tool, tostring(consumer))
end

local printed, pending, status = 0, {}, nil
-- -G: per "topic\0partition", the offsets seen and not yet printed (or
-- reported), and the next offset after the highest seen: the offset to
-- commit is the lowest open one, else that next one.
local open_offsets, next_offset, committed = {}, {}, {}
local function tp_key(msg) return msg.topic .. "\0" .. msg.partition end

local function commit(final)
  if not group then return end
  local list = {}
  for key, nxt in pairs(next_offset) do
    local low = nxt
    for off in pairs(open_offsets[key] or {}) do low = math.min(low, off) end
    if committed[key] ~= low then
      local topic, part = key:match("^(.*)%z(%d+)$")
      list[#list + 1] = { topic = topic, partition = tonumber(part), offset = low }
      committed[key] = low
    end
  end

  if #list > 0 then
    local ok, why = pcall(consumer.commit, consumer, list, not final)
    if not ok then io.stderr:write(("kafkacrypto consume: %s\n"):format(why)) end
  end
end

local function finish(code, message)
  for _, msg in ipairs(pending) do
    io.stderr:write(("! undecryptable %s partition %d offset %d: no key received\n")
                    :format(msg.topic, msg.partition, msg.offset))
  end
  io.stdout:flush()
  commit(true)
  consumer:close()
  node:close()
  store:close()
  if message then cli.fail(tool, message) end
  os.exit(code)
end

local function done_with(msg)
  if not group then return end
  local set = open_offsets[tp_key(msg)]
  if set then set[msg.offset] = nil end
end

local function cleartext(part, retry)
  return part == nil or part:is_cleartext(retry)
end

local function decrypted(msg, retry)
  return cleartext(msg.key, retry) and cleartext(msg.value, retry)
end

local function plain(part)
  if part == nil then return nil end
  return part:get_message(false)
end

local function show(msg)
  io.stdout:write(format{
    topic = msg.topic, partition = msg.partition, offset = msg.offset,
    timestamp = msg.timestamp, timestamp_type = msg.timestamp_type, broker = msg.broker,
    headers = msg.headers, key = plain(msg.key), value = plain(msg.value),
  })
  done_with(msg)
  printed = printed + 1
  if count and printed >= count then finish(0) end
end

local function never_decryptable(msg)
  local function never(part) return part ~= nil and not part:is_possibly_decryptable() end
  return never(msg.key) or never(msg.value)
end

local assigned = {}   -- without -G: the partitions assigned (below)
local stopped = {}    -- partitions past e@MS: later messages are not printed

-- At PENDING_MAX messages waiting for keys, reading pauses: the partitions
-- read now, save those stopped at e@; resumed below the bound.
local paused
local function flow()
  if #pending >= PENDING_MAX and not paused then
    paused = {}
    local list = group and consumer:assignment() or assigned
    for _, tp in ipairs(list) do
      if not stopped[tp_key(tp)] then
        paused[#paused + 1] = { topic = tp.topic, partition = tp.partition }
      end
    end
    if #paused > 0 then consumer:pause(paused) end
  elseif paused and #pending < PENDING_MAX then
    -- a rebalance may have taken some of them away meanwhile
    if #paused > 0 then pcall(consumer.resume, consumer, paused) end
    paused = nil
  end
end

-- While paused, messages that waited --key-wait seconds are given up.
local function expire_pending()
  if not paused then return end
  local now = clock()
  while #pending > 0 and now - pending[1].held_at >= key_wait do
    local oldest = table.remove(pending, 1)
    io.stderr:write(("! undecryptable %s partition %d offset %d: no key received within %g s\n")
                    :format(oldest.topic, oldest.partition, oldest.offset, key_wait))
    done_with(oldest)
  end
end

local last_retry = -math.huge
local function retry_pending(force)
  if #pending == 0 or (not force and clock() - last_retry < RETRY_EVERY) then return end
  last_retry = clock()
  local still, ready = {}, {}
  for _, msg in ipairs(pending) do
    table.insert(decrypted(msg, true) and ready or still, msg)
  end
  pending = still
  for _, msg in ipairs(ready) do show(msg) end
  expire_pending()
  flow()
end

local function take(msg)
  if group then
    local key = tp_key(msg)
    open_offsets[key] = open_offsets[key] or {}
    open_offsets[key][msg.offset] = true
    next_offset[key] = math.max(next_offset[key] or 0, msg.offset + 1)
  end
  if decrypted(msg, false) then
    show(msg)
  elseif never_decryptable(msg) then
    io.stderr:write(("! undecryptable %s partition %d offset %d: not a kafkacrypto message\n")
                    :format(msg.topic, msg.partition, msg.offset))
    done_with(msg)
  else
    -- kept even past the bound: a message already fetched is never dropped
    msg.held_at = clock()
    pending[#pending + 1] = msg
    flow()
  end
end

-- The first offset of a partition for -o.
local function first_offset(topic, p, from)
  if type(from) ~= "table" then return from end
  if from.relative then
    local low, high = consumer:watermarks(topic, p, math.max(0.1, math.min(10, left())))
    return math.max(low, high - from.relative)
  end
  if from.timestamp == 0 then return "beginning" end   -- every message is at or after 0
  local got = consumer._handle:offsets_for_times({ { topic = topic, partition = p,
                                                     offset = from.timestamp } })
  return got[1].offset or "end"
end

local log = kafkacrypto.log.logger("kafkacrypto.consume")
local function where(from)
  if type(from) == "number" then return "offset " .. from end
  if type(from) == "table" then
    return from.relative and (from.relative .. " before the end")
           or ("the time %d ms"):format(from.timestamp)
  end
  return from == "stored" and "the stored offset" or "the " .. from
end

-- Without -G, partitions are assigned directly (a consumer group would take
-- seconds to form on a fresh broker). A topic that does not exist yet is
-- looked for again, and read from its beginning once it appears.
local waiting = {}
for _, t in ipairs(opts["--topic"]) do waiting[#waiting + 1] = t end
local last_lookup, first_lookup, told_missing = -math.huge, true, {}
local ended, nended = {}, 0   -- partitions at their end (-e) or past e@MS
local function assign_new_topics()
  if #waiting == 0 or clock() - last_lookup < 0.5 then return end
  last_lookup = clock()
  local from = first_lookup and (start or "end") or "beginning"
  first_lookup = false
  local still, changed = {}, false
  for _, t in ipairs(waiting) do
    local n = consumer:partition_count(t, math.max(0.1, math.min(2, left())))
    if n > 0 and opts["-p"] and opts["-p"] >= n then
      finish(1, ("topic %s has no partition %d (%d partitions)"):format(t, opts["-p"], n))
    elseif n > 0 then
      if not quiet then log:info("reading %s from %s (%d partition(s))", t, where(from), n) end
      for p = 0, n - 1 do
        if not opts["-p"] or opts["-p"] == p then
          assigned[#assigned + 1] = { topic = t, partition = p, offset = first_offset(t, p, from) }
        end
      end
      changed = true
    else
      if not told_missing[t] then
        if not quiet then log:info("topic %s does not exist yet: looking again every 0.5 s", t) end
        told_missing[t] = true
      end
      still[#still + 1] = t
    end
  end
  waiting = still
  if changed then consumer:assign(assigned) end
end

local function partitions_now()
  if group then return #consumer:assignment() end
  return #waiting == 0 and #assigned or math.huge
end

local function partition_ended(msg, why)
  local key = tp_key(msg)
  if ended[key] then return end
  ended[key] = true
  nended = nended + 1
  info("%% %s %s [%d] at offset %d", why, msg.topic, msg.partition, msg.offset)
end

if group then
  local sok, serr = pcall(consumer.subscribe, consumer, opts["--topic"])
  if not sok then finish(1, serr) end
  waiting = {}
end

kafkacrypto.catch_signals(true)
local all_ended_at
local last_commit = clock()
local run_ok, err = pcall(function()
  while true do
    local signal = kafkacrypto.wait_for_signal(0)
    if signal then
      info("kafkacrypto consume: %s: stopping", signal)
      status = count and 1 or 0
      return
    end
    if left() <= 0 then
      status = count and 1 or 0
      return
    end
    if group and clock() - last_commit >= 1 then
      commit(false)
      last_commit = clock()
    end
    assign_new_topics()
    retry_pending(false)
    if exit_at_end and nended > 0 and nended >= partitions_now() then
      all_ended_at = all_ended_at or clock()
      if #pending == 0 or clock() - all_ended_at >= key_wait then
        retry_pending(true)
        status = count and printed < count and 1 or 0
        return
      end
    end
    local active = group or #assigned > 0
    local msg = active and consumer:poll(math.min(0.2, left()))
    if msg and msg.eof then
      if exit_at_end then partition_ended(msg, "Reached end of topic") end
    elseif msg then
      if stop_ts and msg.timestamp >= stop_ts then
        stopped[tp_key(msg)] = true
        partition_ended(msg, "Reached stop timestamp for topic")
        if not group then consumer:pause{ topic = msg.topic, partition = msg.partition } end
      elseif not stopped[tp_key(msg)] then
        take(msg)
      end
    else
      io.stdout:flush()
      if not active then kafkacrypto.wait_for_signal(0.1) end
    end
  end
end)
if not run_ok then finish(1, tostring(err)) end
finish(status)
