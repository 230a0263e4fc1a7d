-- Writes every kind of node file the way the runtime does, for
-- test_file_crash.sh to kill at each step:
--   kafkacrypto run files_write.lua DIR
-- config: created, then rewritten; .crypto: created, then rewritten with a
-- new signing key; .seed: created, rewritten by rename (seed_init on an
-- existing file), then advanced in place (a ratchet open).
local kafkacrypto = require "kafkacrypto"
local core = require "kafkacrypto.core"
local dir = assert(arg[1], "usage: files_write.lua DIR")
local quiet = kafkacrypto.log.capture()
local kcs = kafkacrypto.store(dir .. "/n1.config", "n1")
kcs:store_value("written", "one")
kcs:store_value("written", "two")
kcs:close()
core.cryptokey_keys(dir .. "/n1.crypto", 1)
core.seed_init(dir .. "/n1.seed")
core.seed_init(dir .. "/n1.seed")
local s = kafkacrypto.serde.standalone { seed = dir .. "/n1.seed" }
s = nil
collectgarbage()
quiet:stop()
print("written")
