-- Made-up key indices against a running `kafkacrypto consume` (spec D4), for
-- test_flood.sh and tests/soak/soak_flood.sh:
--   kafkacrypto --broker HOST:PORT run flood.lua provision DIR
--       provisions prod_a, prod_b (producers) and cons (consumer) in DIR
--   kafkacrypto --broker HOST:PORT run flood.lua run DIR SECONDS FLOOD MAX_DELAY PID
--       with `kafkacrypto consume --node DIR/cons.config --topic flood.data`
--       (process PID) writing DIR/cons.out and DIR/cons.err: producer A sends a
--       message; then, in rounds until SECONDS have passed (at least one),
--       FLOOD messages with made-up key indices and a marker (not a kafkacrypto
--       message), and once the consumer has read the marker, producer B,
--       restarted (so with a key index never seen), sends one message. Prints
--       how long each took to come out decrypted; fails past MAX_DELAY s.
local kafkacrypto = require "kafkacrypto"
local crypto = kafkacrypto.crypto
local mode, dir = arg[1], arg[2]
local TOPIC = "flood.data"

if mode == "provision" then
  for _, n in ipairs { { "prod_a", "producer" }, { "prod_b", "producer" }, { "cons", "consumer" } } do
    kafkacrypto.provision { node_id = n[1], role = n[2], dir = dir,
                            rot_password = "flood test root password",
                            provisioning_password = "provisioning password" }
  end
  return
end

local seconds, flood, max_delay, pid = tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5]), arg[6]
local clock = kafkacrypto.clock
-- the test broker (the node files have no bootstrap servers and say SSL)
local plain = { bootstrap_servers = kafkacrypto.settings().broker, security_protocol = "PLAINTEXT" }

local function sleep(s)
  if kafkacrypto.wait_for_signal(s) then os.exit(1) end   -- stopped by the test's cleanup
end

local function read(path)
  local f = io.open(path)
  if not f then return "" end
  local text = f:read("*a")
  f:close()
  return text
end

local function count(text, plain_pattern)
  local n, at = 0, 1
  while true do
    local s, e = text:find(plain_pattern, at, true)
    if not s then return n end
    n, at = n + 1, e + 1
  end
end

-- Polls FILE until PATTERN occurs N times; the time it did, or nil after LIMIT s.
local function wait_for(file, pattern, n, limit)
  local deadline = clock() + limit
  repeat
    if count(read(dir .. "/" .. file), pattern) >= n then return clock() end
    sleep(0.01)
  until clock() > deadline
end

local function node(name)
  return kafkacrypto.new(name, plain, plain, { config = dir .. "/" .. name .. ".config" })
end

local function send_with(n, value)
  local p = kafkacrypto.producer { value_serializer = n:value_serializer(), linger_ms = 0 }
  p:send(TOPIC, nil, value)
  p:flush(30)
  p:close()
end

local function rss_kib()
  return tonumber(read("/proc/" .. pid .. "/status"):match("VmRSS:%s*(%d+)")) or -1
end

local a = node("prod_a")
send_with(a, "from A")
assert(wait_for("cons.out", "\tfrom A\n", 1, 60), "the consumer never decrypted A's message")

local raw = kafkacrypto.producer { linger_ms = 5 }
local started, round, worst = clock(), 0, 0
repeat
  round = round + 1
  for _ = 1, flood do
    -- 01 93 c4 20 <32> c4 10 <16> c4 28 <40>: a key index nobody holds
    raw:send(TOPIC, nil, "\1\147\196\32" .. crypto.random(32) .. "\196\16" .. crypto.random(16)
                         .. "\196\40" .. crypto.random(40))
  end
  raw:send(TOPIC, nil, "marker " .. round)
  raw:flush(60)
  local flooded = clock()
  assert(wait_for("cons.err", "not a kafkacrypto message", round, 120),
         "the consumer never read the flood of round " .. round)
  local read_flood = clock() - flooded
  local b = node("prod_b")   -- a new key index at each start
  local value = "from B " .. round
  local t0 = clock()
  send_with(b, value)
  local t1 = wait_for("cons.out", "\t" .. value .. "\n", 1, max_delay + 30)
  b:close()
  local delay = t1 and t1 - t0
  print(("round %d: %d made-up key indices (read in %.2f s); the new producer's message "
         .. "decrypted after %s; consumer RSS %d KiB"):format(round, flood, read_flood,
         delay and ("%.2f s"):format(delay) or "never", rss_kib()))
  io.stdout:flush()
  if not delay or delay > max_delay then
    io.stderr:write(("round %d: delay %s over %.1f s\n"):format(round, tostring(delay), max_delay))
    os.exit(1)
  end
  worst = math.max(worst, delay)
until clock() - started >= seconds
print(("%d rounds, worst delay %.2f s"):format(round, worst))
raw:close()
a:close()
