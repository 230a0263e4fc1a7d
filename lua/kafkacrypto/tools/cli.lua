-- What the command-line tools (scripts/*.lua) share: argument parsing, and
-- for those that run a node the choice of broker and Kafka options.

local kafkacrypto = require "kafkacrypto"

local cli = {}

-- A tool: name, usage text, option specs.
--   spec[name] = { value = true|false, many = true, check = function(text) -> value | nil, why }
-- With positional = true, other arguments are returned in order as opts[1], opts[2], ...
function cli.tool(name, usage, specs, positional)
  return { name = name, usage = usage, specs = specs, positional = positional }
end

function cli.usage_error(tool, fmt, ...)
  io.stderr:write(("kafkacrypto %s: %s\n"):format(tool.name, fmt:format(...)), tool.usage)
  io.stderr:flush()
  os.exit(2)
end

-- Exits 1 with `message` (an error of ours is located in this script, or
-- in several when re-raised: those locations are no news to the user).
function cli.fail(tool, message)
  message = tostring(message)
  repeat
    local n
    message, n = message:gsub("^[^\n]-%.lua:%d+: ", "")
  until n == 0
  io.stderr:write(("kafkacrypto %s: %s\n"):format(tool.name, message))
  io.stderr:flush()
  os.exit(1)
end

-- Stores option `name` (its spec) with `value` into opts, checked.
local function store_option(tool, opts, name, spec, value)
  if spec.value then
    local checked, why = value, nil
    if spec.check then checked, why = spec.check(value) end
    if checked == nil then cli.usage_error(tool, "%s %s: %s", name, value, why) end
    value = checked
  else
    value = true
  end
  if spec.many then
    table.insert(opts[name], value)
  elseif opts[name] ~= nil then
    cli.usage_error(tool, "%s given twice", name)
  else
    opts[name] = value
  end
end

-- Parses `args`: options "--name VALUE", "--name=VALUE", "-x VALUE" or
-- "-xVALUE", flags "-a -b" or "-ab". Returns a table by option name (lists for `many` options),
-- and the positional arguments as opts[1], opts[2], ... when the tool takes them.
function cli.parse(tool, args)
  args = { unpack(args) }   -- bundled flags are expanded in place
  local opts = {}
  for name, spec in pairs(tool.specs) do
    if spec.many then opts[name] = {} end
  end
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "-h" or a == "--help" then
      io.stdout:write(tool.usage)
      os.exit(0)
    end
    local name, value = a:match("^(%-%-[%w-]+)=(.*)$")
    if not name then
      name = a
      -- kcat's short forms: "-oVALUE" for an option taking a value, "-qe"
      -- for several flags
      local letter, rest = a:match("^(%-%a)(.+)$")
      local spec = letter and not tool.specs[a] and tool.specs[letter]
      if spec and spec.value then
        name, value = letter, rest
      elseif spec then
        local flags = {}
        for c in a:sub(2):gmatch(".") do
          local f = tool.specs["-" .. c]
          if not f or f.value then flags = nil break end
          flags[#flags + 1] = "-" .. c
        end
        if flags then
          for k = #flags, 2, -1 do table.insert(args, i + 1, flags[k]) end
          name = flags[1]
        end
      end
    end
    local spec = tool.specs[name]
    if spec then
      if spec.value and value == nil then
        i = i + 1
        value = args[i]
        if value == nil then cli.usage_error(tool, "%s needs a value", name) end
      elseif not spec.value and value ~= nil then
        cli.usage_error(tool, "%s takes no value", name)
      end
      store_option(tool, opts, name, spec, value)
    elseif tool.positional and not a:match("^%-.") then
      opts[#opts + 1] = a
    else
      cli.usage_error(tool, "unknown argument '%s'", a)
    end
    i = i + 1
  end
  return opts
end

-- Value checks for option specs.
function cli.number_at_least(low, what)
  return function(text)
    local n = tonumber(text)
    if n and n == n and n >= low and n < math.huge then return n end
    return nil, what
  end
end

-- Seconds >= 0, or "forever" (math.huge).
function cli.seconds_or_forever(text)
  if text == "forever" then return math.huge end
  return cli.number_at_least(0, "expected seconds >= 0 or \"forever\"")(text)
end

function cli.nonempty(what)
  return function(text)
    if text ~= "" then return text end
    return nil, what
  end
end

function cli.property(text)
  local name, value = text:match("^([^=]+)=(.*)$")
  if not name then return nil, "expected NAME=VALUE (a librdkafka property)" end
  return { name = name, value = value }
end

function cli.require(tool, opts, ...)
  for _, name in ipairs{ ... } do
    if opts[name] == nil then cli.usage_error(tool, "%s is required", name) end
  end
end

-- The default of --connect-timeout: how long a tool waits for the broker
-- to answer before it gives up (a broker that is still starting gets time).
cli.CONNECT_TIMEOUT = 30

-- Option specs every tool that opens a node takes (merged into its own).
function cli.node_specs(specs)
  specs["--connect-timeout"] = { value = true,
                                 check = cli.number_at_least(0, "expected seconds >= 0") }
  return specs
end

-- Waits until the broker answers a metadata request about `topic`, at most
-- --connect-timeout seconds; otherwise exits 1 with what to check. A Kafka
-- client retries an unreachable broker for minutes (a producer's flush:
-- message.timeout.ms, 300 s), so the tools look once, first.
local function reach_broker(tool, opts, broker, options, topic)
  local limit = opts["--connect-timeout"] or cli.CONNECT_TIMEOUT
  local clock, started = kafkacrypto.clock, kafkacrypto.clock()
  local probe = {}
  for k, v in pairs(options) do probe[k] = v end
  probe["bootstrap.servers"] = broker
  local ok, consumer = pcall(kafkacrypto.consumer, probe)
  if not ok then return nil, tostring(consumer) end
  local why
  repeat
    local left = limit - (clock() - started)
    local asked
    asked, why = pcall(consumer.partition_count, consumer, topic, math.max(0.1, math.min(2, left)))
    if asked then
      consumer:close()
      return true
    end
  until clock() - started >= limit
  consumer:close()
  why = tostring(why):gsub("^.*%.lua:%d+: ", "")
  return nil, ("no Kafka broker answered at %s within %g s (%s). Check that the broker runs "
    .. "and that --broker (or the node config's bootstrap_servers) names it, and the "
    .. "security settings (a node config made for TLS needs -X security.protocol=PLAINTEXT "
    .. "on a plaintext broker); --connect-timeout SECONDS changes the wait"):format(broker,
    limit, why)
end

-- The Kafka options of a data client of kind `kind` ("producer" or
-- "consumer"), most specific first: --broker, then -X (in order, the last
-- wins), then the global `kafkacrypto --broker` / kafkacrypto.cfg broker,
-- then the node config of --node (if given). Returns them, those to lay over
-- the node's key-exchange clients, and the open store (or nil).
function cli.kafka_options(tool, opts, kind)
  local store, data = nil, {}
  if opts["--node"] then
    local ok
    ok, store = pcall(kafkacrypto.store, opts["--node"])
    if not ok then cli.fail(tool, tostring(store)) end
    data = store:get_kafka_config(kind)
  end
  local over = {}
  for _, x in ipairs(opts["-X"] or {}) do over[x.name] = x.value end
  local broker = opts["--broker"] or over["bootstrap.servers"] or over.bootstrap_servers
                 or kafkacrypto.settings().broker or data["bootstrap.servers"]
  if broker == nil or broker == "" then
    if store then store:close() end
    cli.usage_error(tool, "no Kafka broker: give --broker HOST:PORT (%s; `kafkacrypto broker` "
                    .. "runs one for tests)", opts["--node"]
                    and ("the node config " .. opts["--node"] .. " names none") or "no --node")
  end
  over.bootstrap_servers, over["bootstrap.servers"] = nil, broker
  for k, v in pairs(over) do data[k] = v end
  return data, over, store
end

-- Opens the node of --node with the Kafka options of cli.kafka_options.
-- Returns the node, the options of the data client of kind `kind` and the
-- store. node_options = kafkacrypto.new options. With probe_topic, the
-- broker must first answer about that topic within --connect-timeout.
function cli.open(tool, opts, kind, node_options, probe_topic)
  local data, over, store = cli.kafka_options(tool, opts, kind)
  local o = { config = store, producer = over, consumer = over }
  for k, v in pairs(node_options or {}) do o[k] = v end
  local ok, node = pcall(kafkacrypto.new, o)
  if not ok then
    store:close()
    cli.fail(tool, tostring(node))
  end
  -- after the node's files (their errors are instant and come first)
  if probe_topic then
    local options = store:get_kafka_config("consumer")
    for k, v in pairs(over) do options[k] = v end
    local reached, why = reach_broker(tool, opts, over["bootstrap.servers"], options, probe_topic)
    if not reached then
      node:close()
      store:close()
      cli.fail(tool, why)
    end
  end
  return node, data, store
end

-- What a node answered, from node:stats(): one line per root whose
-- requests it saw (spec D2), for the tools that serve keys.
function cli.served_report(tool, stats)
  local roots = {}
  for root, r in pairs(stats.roots) do
    if (r.requests_answered or 0) + (r.requests_refused or 0) + (r.requests_not_held or 0) > 0 then
      roots[#roots + 1] = root
    end
  end
  table.sort(roots)
  if #roots == 0 then
    return ("kafkacrypto %s: served no key request\n"):format(tool.name)
  end
  local out = {}
  for _, root in ipairs(roots) do
    local r = stats.roots[root]
    local why = {}
    for reason, n in pairs(r.refused or {}) do
      if n > 0 then why[#why + 1] = ("%s: %d"):format(reason, n) end
    end
    table.sort(why)
    out[#out + 1] = ("kafkacrypto %s: root %s: %d request(s) answered (%d repl%s), "
      .. "%d refused%s, %d for keys not held\n"):format(tool.name, root, r.requests_answered,
      r.replies_sent, r.replies_sent == 1 and "y" or "ies", r.requests_refused,
      #why > 0 and " (" .. table.concat(why, ", ") .. ")" or "", r.requests_not_held)
  end
  return table.concat(out)
end

return cli
