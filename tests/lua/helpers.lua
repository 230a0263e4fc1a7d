-- Shared by the Lua tests: one broker for the whole run, fresh topic names,
-- and waiting for conditions with generous timeouts (the machine may be busy).
local kafkacrypto = require "kafkacrypto"

local helpers = {}

local broker
function helpers.broker()
  broker = broker or kafkacrypto.broker.start()
  return broker
end

local counter = 0
-- A topic name not used before in this run.
function helpers.topic(prefix)
  counter = counter + 1
  return ("%s%d_%d"):format(prefix or "t", counter, math.random(1e9))
end

function helpers.producer(extra)
  local config = { bootstrap_servers = helpers.broker().bootstrap_servers, linger_ms = 1 }
  for k, v in pairs(extra or {}) do config[k] = v end
  return kafkacrypto.producer(config)
end

function helpers.consumer(extra)
  -- the mock broker holds empty fetches for fetch_max_wait_ms: keep it short
  local config = { bootstrap_servers = helpers.broker().bootstrap_servers, fetch_max_wait_ms = 50 }
  for k, v in pairs(extra or {}) do config[k] = v end
  return kafkacrypto.consumer(config)
end

-- Polls until n messages arrived or `timeout` seconds (default 30) passed.
function helpers.collect(consumer, n, timeout)
  local got, deadline = {}, os.time() + (timeout or 30)
  while #got < n and os.time() <= deadline do
    local msg = consumer:poll(0.2)
    if msg then got[#got + 1] = msg end
  end
  return got
end

-- The error message of f(...), or nil if it did not fail.
function helpers.error_of(f, ...)
  local ok, err = pcall(f, ...)
  if not ok then return tostring(err) end
end

-- A new empty directory (remove it with rmtree).
function helpers.tmpdir()
  local path = os.tmpname()   -- creates a file: make it a directory
  os.remove(path)
  assert(os.execute(("mkdir -m 700 '%s'"):format(path)) == 0, "cannot create " .. path)
  return path
end

function helpers.rmtree(path)
  if path and path:match("^/tmp/") then os.execute(("rm -rf '%s'"):format(path)) end
end

function helpers.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

function helpers.read_file(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

-- A producer data path (new seed and .crypto files in dir, long key
-- indices) and a consumer one, made without the warnings that new node
-- files draw.
function helpers.data_paths(dir)
  local cap = kafkacrypto.log.capture()
  local ok, p = pcall(kafkacrypto.serde.standalone,
                      { seed = dir .. "/p.seed", crypto = dir .. "/p.crypto" })
  cap:stop()
  assert(ok, p)
  return p, kafkacrypto.serde.standalone()
end

return helpers
