-- watch the key-exchange topics: who requested keys, who answered
--
--   kafkacrypto key-monitor --node NODE.config [--broker HOST:PORT] [--count N] [--timeout S]
--
-- Subscribes by pattern to every <root>.reqs, <root>.subs and <root>.keys
-- topic (the suffixes as configured) with the node's Kafka consumer
-- settings, and prints one line per message: the topic, what it is
-- (a request sent directly to producers, a subscription for controllers, or
-- a producer's reply), the signing key that sent it (its fingerprint), the
-- root of trust, and whether its chain is valid for that root topic and
-- usage against the node's allowlist and denylist at the message's time;
-- otherwise "(INVALID)", the reason and the chain's items. It does not
-- decrypt anything. Stops after --count messages, after --timeout seconds,
-- or on Ctrl-C (SIGINT ends the process).
--
-- It counts, per root, what it saw (requests, subscriptions, replies; valid
-- or not) and says so on exit. With --metrics-listen HOST:PORT it also
-- serves the counts in the Prometheus text format at /metrics
-- (kafkacrypto_monitor_messages_total{root,kind,valid}) with, per root, how
-- long its last request has gone without a valid reply
-- (kafkacrypto_monitor_unanswered_seconds, 0 once answered).
--
-- Node values read as upstream's tool does: refresh_secs (default 300, how
-- often new topics are picked up), restart_commit_beginning (read from the
-- beginning), poll_timeout_ms (default 1000).
local P = require "kafkacrypto.tools.provisioning"
local kafkacrypto = require "kafkacrypto"
local chain = require "kafkacrypto.chain"

local t = P.tool {
  name = "key-monitor",
  usage = "--node NODE.config [OPTIONS]",
  help = "Prints who requests keys and who answers on the key-exchange topics.",
  options = {
    { "--node", "FILE", "the node config whose Kafka settings, allowlist and denylist to use (required)" },
    { "--broker", "HOST:PORT", "bootstrap servers to use instead of the node's (plaintext)" },
    { "--count", "N", "stop after N messages" },
    { "--timeout", "SECONDS", "stop after SECONDS" },
    { "--from-beginning", nil, "read the topics from their beginning (restart_commit_beginning)" },
    { "--refresh", "SECONDS", "how often new topics are picked up (refresh_secs)" },
    { "--metrics-listen", "HOST:PORT", "serve the counts per root for Prometheus at /metrics" },
  },
}
local opts, rest = t:parse(arg)
if #rest > 0 then t:usage_error("unexpected argument %s", rest[1]) end
if not opts.node then t:usage_error("--node NODE.config is required") end
local count = t:int_option(opts, "count", nil, 1)
local timeout = opts.timeout and tonumber(opts.timeout)
if opts.timeout and (not timeout or timeout <= 0) then t:usage_error("--timeout %s: expected seconds > 0", opts.timeout) end

-- (no io.open check first: opening a FIFO for reading would wait for ever)
local ok, kcs = pcall(kafkacrypto.store, opts.node)
if not ok and tostring(kcs):find("No such file", 1, true) then t:usage_error("--node %s: no such file", opts.node) end
if not ok then t:fail("%s", kcs) end
local function entries(section)
  local values, names = kcs:load_section(section, false)
  if not values then return nil end
  local l = {}
  for i, k in ipairs(names) do l[i] = values[k] end
  return l
end
local allowlist, denylist = entries("allowlist"), entries("denylist")
local refresh = t:int_option(opts, "refresh", tonumber(kcs:load_value("refresh_secs")) or 300, 1)
local poll_timeout = (tonumber(kcs:load_value("poll_timeout_ms")) or 1000) / 1000
local from_beginning = opts["from-beginning"] or kcs:load_value("restart_commit_beginning") == true
local config = kcs:get_kafka_config("consumer")
kcs:close()
if opts.broker then
  config["bootstrap.servers"], config["security.protocol"] = opts.broker, "plaintext"
elseif (config["bootstrap.servers"] or "") == "" then
  t:usage_error("%s has no bootstrap_servers in its kafka section: give --broker", opts.node)
end
config["topic.metadata.refresh.interval.ms"] = tostring(refresh * 1000)
if from_beginning then config["auto.offset.reset"] = "earliest" end

local tun = kafkacrypto.tunables()
local kinds = {
  [tun.topic_suffix_reqs] = { what = "request", usage = "key-encrypt-request", by = "requested by" },
  [tun.topic_suffix_subs] = { what = "subscription", usage = "key-encrypt-subscribe", by = "requested by" },
  [tun.topic_suffix_keys] = { what = "reply", usage = "key-encrypt", by = "answered by" },
}
local function escape(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?|\\]", "\\%0")) end
local alternatives = {}
for suffix in pairs(kinds) do alternatives[#alternatives + 1] = escape(suffix) end
table.sort(alternatives)
local pattern = "^.*(" .. table.concat(alternatives, "|") .. ")$"

local consumer
config.key_topics = true   -- the pattern is for key-exchange topics
ok, consumer = pcall(kafkacrypto.consumer, config)
if not ok then t:fail("%s", consumer) end
consumer:subscribe { pattern = pattern }
io.stdout:setvbuf("line")
io.stderr:write(("key-monitor: watching %s (Ctrl-C to stop)\n"):format(pattern))

local function short(h) return h and h:sub(1, 16) or "?" end

-- counts[root] = { request = {valid = n, invalid = n}, ..., asked = time of
-- the first request since the last valid reply, or nil }
local counts, roots = {}, {}
local function tally(root, kind, valid, when)
  local c = counts[root]
  if not c then
    c = { request = {}, subscription = {}, reply = {} }
    counts[root], roots[#roots + 1] = c, root
    table.sort(roots)
  end
  local v = valid and "valid" or "invalid"
  c[kind.what][v] = (c[kind.what][v] or 0) + 1
  if kind.what == "reply" and valid then
    c.asked = nil
  elseif kind.what ~= "reply" and not c.asked then
    c.asked = when
  end
end

local function label(v) return (v:gsub("[\\\"\n]", { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" })) end

local function metrics_page()
  local out = {
    "# HELP kafkacrypto_monitor_messages_total Key-exchange messages seen, by root, kind and validity.",
    "# TYPE kafkacrypto_monitor_messages_total counter",
  }
  for _, root in ipairs(roots) do
    for _, what in ipairs{ "request", "subscription", "reply" } do
      for _, v in ipairs{ "valid", "invalid" } do
        out[#out + 1] = ('kafkacrypto_monitor_messages_total{root="%s",kind="%s",valid="%s"} %d'):format(
          label(root), what, v == "valid" and "true" or "false", counts[root][what][v] or 0)
      end
    end
  end
  out[#out + 1] = "# HELP kafkacrypto_monitor_unanswered_seconds Since the first request without a valid reply after it (0: answered)."
  out[#out + 1] = "# TYPE kafkacrypto_monitor_unanswered_seconds gauge"
  local now = os.time()
  for _, root in ipairs(roots) do
    local asked = counts[root].asked
    out[#out + 1] = ('kafkacrypto_monitor_unanswered_seconds{root="%s"} %d'):format(
      label(root), asked and math.max(0, now - asked) or 0)
  end
  return table.concat(out, "\n") .. "\n"
end

local server
if opts["metrics-listen"] then
  local listen_ok
  listen_ok, server = pcall(kafkacrypto.metrics_server, opts["metrics-listen"])
  if not listen_ok then t:usage_error("--metrics-listen %s: %s", opts["metrics-listen"], server) end
  server:set(metrics_page())
  io.stderr:write(("key-monitor: metrics at http://%s/metrics\n"):format(
    opts["metrics-listen"]:gsub(":%d+$", ":" .. server:port())))
end

local function report(msg)
  local kind, root
  for suffix, k in pairs(kinds) do
    if #msg.topic > #suffix and msg.topic:sub(-#suffix) == suffix then
      kind, root = k, msg.topic:sub(1, -#suffix - 1)
    end
  end
  local when = msg.timestamp and msg.timestamp / 1000 or os.time()
  local stamp = os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(when))
  local value = msg.value or ""
  local info, why = chain.process(value, { topic = root, usage = kind.usage, allowlist = allowlist,
                                           denylist = denylist, checktime = when })
  tally(root, kind, info ~= nil, when)
  if info then
    local signer = info.signers[#info.signers]
    print(("%s %s: %s for root %s %s %s (fpr %s), root of trust %s: valid (usages %s; expires %s)"):format(
      stamp, msg.topic, kind.what, root, kind.by, short(signer), short(chain.fingerprint(P.unhex(signer, "key"))),
      short(info.rot), table.concat(info.usages or {}, ","),
      info.expiry == 0 and "never" or os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(info.expiry))))
  else
    print(("%s %s (INVALID): %s for root %s: %s"):format(stamp, msg.topic, kind.what, root, why))
    print("      items: " .. (chain.describe(value) or "?"))
  end
end

local seen, started = 0, os.time()
while (not count or seen < count) and (not timeout or os.time() - started < timeout) do
  local msg_ok, msg = pcall(consumer.poll, consumer, math.min(poll_timeout, 1))
  if not msg_ok then t:fail("%s", msg) end
  if msg then
    seen = seen + 1
    report(msg)
  end
  if server then server:set(metrics_page()) end
end
consumer:close()
if server then server:close() end
io.stderr:write(("key-monitor: %d message(s)\n"):format(seen))
for _, root in ipairs(roots) do
  local c, parts = counts[root], {}
  for _, what in ipairs{ "request", "subscription", "reply" } do
    local valid, invalid = c[what].valid or 0, c[what].invalid or 0
    parts[#parts + 1] = ("%d %s(s)%s"):format(valid + invalid, what,
                                              invalid > 0 and (" (%d invalid)"):format(invalid) or "")
  end
  io.stderr:write(("key-monitor: root %s: %s%s\n"):format(root, table.concat(parts, ", "),
    c.asked and "; the last request has no valid reply" or ""))
end
