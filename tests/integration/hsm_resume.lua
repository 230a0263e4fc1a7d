-- A producer and a consumer whose key is in a token behind the test module
-- (tests/pkcs11/kc_p11_shim.c): the token is pulled (FLAGDIR/removed is
-- written) just before the consumer needs a key, so it cannot sign its key
-- request; the shell puts the token back once the node has logged that,
-- and the consumer must then get the key and decrypt.
--   kafkacrypto --broker HOST:PORT run hsm_resume.lua DIR PRODUCER CONSUMER TOPIC FLAGDIR
local kafkacrypto = require "kafkacrypto"
local dir, pname, cname, topic, flagdir = arg[1], arg[2], arg[3], arg[4], arg[5]
local plain = { bootstrap_servers = kafkacrypto.settings().broker, security_protocol = "PLAINTEXT" }
local function node(name)
  return kafkacrypto.new(name, plain, plain, { config = dir .. "/" .. name .. ".config",
                                               key_wait_interval = 0.2, max_key_wait_intervals = 300 })
end
local pnode, cnode = node(pname), node(cname)
local producer = kafkacrypto.producer { key_serializer = pnode:key_serializer(),
                                        value_serializer = pnode:value_serializer() }
producer:send(topic, "k", "signed again after the token came back", 0)
producer:flush(30)
assert(io.open(flagdir .. "/removed", "w")):close()
local consumer = kafkacrypto.consumer { key_deserializer = cnode:key_deserializer(),
                                        value_deserializer = cnode:value_deserializer(),
                                        fetch_max_wait_ms = 50 }
consumer:assign { { topic = topic, partition = 0, offset = "beginning" } }
local deadline = os.time() + 90
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
