-- A producer node and a consumer node (provisioned by the tools in DIR)
-- exchange keys over the broker and the consumer decrypts one message.
--   kafkacrypto --broker HOST:PORT run tools_exchange.lua DIR PRODUCER CONSUMER TOPIC [FLAGDIR]
-- With FLAGDIR (test_hsm.sh), FLAGDIR/removed is written once the message is
-- sent: the consumer's token (behind tests/pkcs11/kc_p11_shim.c) is pulled
-- just before it must sign its key request; the shell puts it back.
local kafkacrypto = require "kafkacrypto"
local dir, pname, cname, topic, flagdir = arg[1], arg[2], arg[3], arg[4], arg[5]
-- the test broker (the files have no bootstrap servers and say SSL)
local plain = { bootstrap_servers = kafkacrypto.settings().broker, security_protocol = "PLAINTEXT" }
local function node(name)
  return kafkacrypto.new(name, plain, plain, { config = dir .. "/" .. name .. ".config",
                                               key_wait_interval = 0.2, max_key_wait_intervals = 300 })
end
local pnode, cnode = node(pname), node(cname)
local producer = kafkacrypto.producer { key_serializer = pnode:key_serializer(),
                                        value_serializer = pnode:value_serializer() }
producer:send(topic, "k", "tools exchange works", 0)
producer:flush(30)
if flagdir then assert(io.open(flagdir .. "/removed", "w")):close() end
local consumer = kafkacrypto.consumer { key_deserializer = cnode:key_deserializer(),
                                        value_deserializer = cnode:value_deserializer(),
                                        fetch_max_wait_ms = 50 }
consumer:assign { { topic = topic, partition = 0, offset = "beginning" } }
local deadline = os.time() + 60
while os.time() < deadline do
  local msg = consumer:poll(0.2)
  if msg then
    print(msg.value:is_cleartext() and ("decrypted: " .. msg.value:get_message()) or "not decrypted")
    break
  end
end
consumer:close()
producer:close()
pnode:close()
cnode:close()
