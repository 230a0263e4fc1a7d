-- The next open after a crash: every node file in DIR that exists must
-- parse (old or new content, never a mix); then each is opened as a node
-- would (created if missing), which removes what a killed writer left.
--   kafkacrypto run files_check.lua DIR NODE_ID
-- Prints "corrupt FILE: why" (exit 1) or "ok".
local kafkacrypto = require "kafkacrypto"
local core = require "kafkacrypto.core"
local dir, id = assert(arg[1]), assert(arg[2])
local base = dir .. "/" .. id
local function exists(p) local f = io.open(p, "rb") if f then f:close() end return f ~= nil end
local quiet = kafkacrypto.log.capture()
local bad
local function check(path, f)
  if bad then return end
  local existed = exists(path)
  local ok, why = pcall(f)
  if not ok then bad = ("%s %s: %s"):format(existed and "corrupt" or "cannot create", path, tostring(why)) end
end
check(base .. ".config", function()
  kafkacrypto.store(base .. ".config", id):close()
end)
check(base .. ".crypto", function()
  if exists(base .. ".crypto") then core.cryptokey_keys(base .. ".crypto") end  -- read-only parse
  core.cryptokey_keys(base .. ".crypto", 1)   -- the locked open (clears leftovers)
end)
check(base .. ".seed", function()
  local s = kafkacrypto.serde.standalone { seed = base .. ".seed" }
  s = nil
  collectgarbage()
end)
quiet:stop()
if bad then print(bad) os.exit(1) end
print("ok")
