-- Helper of test_authorities.sh (run with `kafkacrypto --broker B run`).
--   setup DIR BOOTSTRAP      provision prod, lim (consumer-limited), ctl
--                            (controller), cs (chain server: prodcon) and
--                            node (consumer, chain expiring in 100 s); make
--                            ROOT.subs exist; chainkeys entry for node
--   exchange DIR SECONDS     prod encrypts, lim must decrypt (key via the
--                            controller): prints the plaintext or "no key"
--   poke                     one message that is not a request on ROOT.subs
--   adopt DIR SECONDS        opens node, prints "adopted" once a chain
--                            arrives on `chains`, else "not adopted"
local kafkacrypto = require "kafkacrypto"
local chain = require "kafkacrypto.chain"

local ROOT = "itest"
local cmd, dir = arg[1], arg[2]
local function path(n) return dir .. "/" .. n .. ".config" end

if cmd == "setup" then
  local bootstrap = arg[3]
  local log = kafkacrypto.log.capture()
  for _, n in ipairs { { "prod", "producer" }, { "lim", "consumer-limited" },
                       { "ctl", "controller" }, { "cs", "prodcon" }, { "node", "consumer", 100 } } do
    kafkacrypto.provision { dir = dir, node_id = n[1], role = n[2], lifetime = n[3],
                            rot_password = "correct horse battery staple",
                            provisioning_password = "provisioning" }
    local s = kafkacrypto.store(path(n[1]))
    -- a new request round replaces the consumer's ephemeral key (spec §7.6):
    -- leave the controller path time to answer before asking again
    s:store_value("crypto_sub_interval", 5)
    s:store_value("bootstrap_servers", bootstrap, "kafka")
    s:store_value("security_protocol", "PLAINTEXT", "kafka")
    if n[1] == "ctl" then
      -- the embedded broker holds a group rebalance for up to the rebalance
      -- timeout (max.poll.interval.ms, 300 s by default) when a controller
      -- restarts; the controller's group consumer reads this section
      s:store_value("session_timeout_ms", 6000, "kafka-consumer")
      s:store_value("max_poll_interval_ms", 7000, "kafka-consumer")
    end
    s:close()
  end
  local s = kafkacrypto.store(path("node"))
  local items = assert(chain.items(s:load_value("chain0", "chains")))
  s:close()
  s = kafkacrypto.store(path("cs"))
  s:store_value("node", kafkacrypto.bytes(items[#items]:sub(65)), "chainkeys")
  s:close()
  log:stop()
  -- the controller's regex subscription then finds ROOT.subs at once
  local p = kafkacrypto.producer{}
  p:send(ROOT .. ".subs", "x", "not a request", 0)
  p:send("chains", "x", "not a chain", 0)
  p:flush(30)
  p:close()
  print("set up")
elseif cmd == "poke" then
  local p = kafkacrypto.producer{}
  p:send(ROOT .. ".subs", "x", "not a request either", 0)
  p:flush(30)
  p:close()
elseif cmd == "exchange" then
  local function node(n) return kafkacrypto.new { config = path(n), key_wait_interval = 0.2 } end
  local prod, lim = node("prod"), node("lim")
  local topic = ROOT .. ".data"
  local msg = lim:value_deserializer():deserialize(
    topic, prod:value_serializer():serialize(topic, "via the controller"))
  local deadline = os.time() + tonumber(arg[3])
  local got = "no key"
  repeat
    if msg:is_cleartext() then got = msg:get_message() break end
  until os.time() > deadline
  prod:close()
  lim:close()
  print(got)
elseif cmd == "adopt" then
  local node = kafkacrypto.new { config = path("node") }
  print("listening")
  io.stdout:flush()
  local deadline = os.time() + tonumber(arg[3])
  while node:stats().chains_adopted < 1 and os.time() <= deadline do
    os.execute("sleep 0.2")
  end
  print(node:stats().chains_adopted >= 1 and "adopted" or "not adopted")
  node:close()
else
  error("unknown command " .. tostring(cmd))
end
