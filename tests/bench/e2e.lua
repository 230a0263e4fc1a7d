-- kc-bench, the Lua path: the end-to-end round of bench_e2e.c written with
-- kafkacrypto.producer/consumer and the serializers, run by kc-bench in its
-- own process (same embedded broker) right after the C rounds.
-- Arguments: size n rounds. Sets the global LUA_E2E = {enc_ns, plain_ns,
-- enc_cpu_ns, plain_cpu_ns} (best round of each; CPU = os.clock, every
-- thread of the process).
local kafkacrypto = require "kafkacrypto"
local clock = require("kafkacrypto.core").clock   -- monotonic seconds
local size, n, rounds = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3])
local PARTITIONS = 8
local topic = "bench.lua" .. size

local broker = kafkacrypto.broker.embedded()
broker:create_topic(topic, PARTITIONS)

local dir = os.tmpname()
os.remove(dir)
assert(os.execute(("mkdir -m 700 '%s'"):format(dir)) == 0)
local cap = kafkacrypto.log.capture()   -- new ratchet files warn
local writer = kafkacrypto.serde.standalone{ seed = dir .. "/w.seed" }
cap:stop()
local reader = kafkacrypto.serde.standalone()
local value = ("v"):rep(size)

-- One round: send n values round-robin over the partitions while draining
-- the consumer, then wait for the rest. Returns wall and CPU ns per message.
local function round(p, c, encrypted)
  local tps = {}
  for i = 0, PARTITIONS - 1 do tps[#tps + 1] = { topic = topic, partition = i, offset = "end" } end
  c:assign(tps)
  local got = 0
  local function take(timeout)
    local m = c:poll(timeout)
    if not m then return false end
    local v = m.value
    if encrypted then v = v:get_message() end
    assert(#v == size, "a message did not arrive intact")
    got = got + 1
    return true
  end
  local cpu0, t0 = os.clock(), clock()
  for i = 1, n do
    p:send(topic, nil, value, (i - 1) % PARTITIONS)
    if i % 64 == 0 then while take(0) do end end
  end
  p:flush()
  local last = clock()
  while got < n do
    if take(0.1) then last = clock()
    elseif clock() - last > 20 then error(("%d of %d messages arrived"):format(got, n)) end
  end
  return (clock() - t0) * 1e9 / n, (os.clock() - cpu0) * 1e9 / n
end

-- the first encrypted message makes the writer's key; then the reader gets it
do
  local p = kafkacrypto.producer{ bootstrap_servers = broker.bootstrap_servers,
                                  value_serializer = writer:value_serializer() }
  p:send(topic, nil, value, 0)
  p:close()
  writer:share_keys_with(reader, "bench")   -- the root of the topic
end

local pe = kafkacrypto.producer{ bootstrap_servers = broker.bootstrap_servers, linger_ms = 5,
                                 value_serializer = writer:value_serializer() }
local ce = kafkacrypto.consumer{ bootstrap_servers = broker.bootstrap_servers, fetch_max_wait_ms = 5,
                                 value_deserializer = reader:value_deserializer() }
local pp = kafkacrypto.producer{ bootstrap_servers = broker.bootstrap_servers, linger_ms = 5 }
local cp = kafkacrypto.consumer{ bootstrap_servers = broker.bootstrap_servers, fetch_max_wait_ms = 5 }
local best = { enc_ns = 1e30, plain_ns = 1e30, enc_cpu_ns = 1e30, plain_cpu_ns = 1e30 }
for _ = 1, rounds do
  local w, c = round(pp, cp, false)
  best.plain_ns, best.plain_cpu_ns = math.min(best.plain_ns, w), math.min(best.plain_cpu_ns, c)
  w, c = round(pe, ce, true)
  best.enc_ns, best.enc_cpu_ns = math.min(best.enc_ns, w), math.min(best.enc_cpu_ns, c)
end
for _, x in ipairs{ pe, ce, pp, cp } do x:close() end
os.execute(("rm -rf '%s'"):format(dir))
LUA_E2E = best
