-- kafkacrypto.authorities.chainserver: upstream's chain server (spec §8.2) as a
-- library, run by scripts/chainserver.lua (`kafkacrypto chainserver`).
--
-- Every interval_secs it looks at the unsigned certificates in section
-- `chainkeys` of its node config (written by an administrator: name =
-- mp([max_age, bin(poison), key])). One that expires within
-- lifetime * refresh_fraction is re-issued: the policies (hook
-- `issue_chain`, policies/README.md) decide the rights and lifetime, the
-- core signs it with the chain server's key, appends it to the chain
-- server's own chain, checks that the result validates, and the chain is
-- pushed on topic `chains` with the node's public key bytes as the Kafka
-- key; nodes adopt it (spec §7.12). The new certificate is stored back
-- once the push is flushed.
--
--   local cs = chainserver.new{ config = "cs.config", policies = { "p.lua" },
--                               bootstrap_servers = "127.0.0.1:9092" }
--   cs:check()          -- one pass; cs:run() loops every interval_secs
--   cs:close()
--
-- Options: config (required), policies (files, after kafkacrypto.cfg's),
-- kafka (extra producer options), bootstrap_servers. Settings come from
-- the node config as upstream's: interval_secs (300), lifetime (604800),
-- refresh_fraction (0.143), flush_time (2.0).

local kafkacrypto = require "kafkacrypto"
local core = require "kafkacrypto.core"

local chainserver = {}
local ChainServer = {}
ChainServer.__index = ChainServer

local logger = kafkacrypto.log.logger("kafkacrypto.chainserver")
local CHAINS_TOPIC = "chains"   -- upstream hard-codes it

function chainserver.new(o)
  if type(o) ~= "table" or type(o.config) ~= "string" then
    core.error("chainserver.new: expected a table with config (the chain server's .config file)")
  end
  local store = kafkacrypto.store(o.config)
  local ok, pconf = pcall(store.get_kafka_config, store, "producer")
  store:close()
  if not ok then error(pconf, 0) end
  for k, v in pairs(o.kafka or {}) do
    pconf[(k:gsub("_", "."))] = nil
    pconf[k] = v
  end
  if o.bootstrap_servers then
    pconf["bootstrap.servers"], pconf.bootstrap_servers = nil, o.bootstrap_servers
  end
  local self = setmetatable({ renewed = 0, refused = 0 }, ChainServer)
  self.cs = core.chainserver_open(o.config, o.policies or {})
  self.settings = self.cs:settings()
  local pok, producer = pcall(kafkacrypto.producer, pconf)
  if not pok then
    self.cs:close()
    error(producer, 0)
  end
  self.producer = producer
  return self
end

-- One pass over chainkeys at time `now` (default: the clock). Returns the
-- numbers renewed and refused in this pass.
function ChainServer:check(now)
  now = now or os.time()
  local s = self.settings
  local renewed, refused = 0, 0
  logger:info("Checking Key Lifetimes")
  local ok, entries = pcall(self.cs.entries, self.cs)
  if not ok then   -- upstream's loop dies here; ours says why and carries on
    logger:warning("%s", tostring(entries))
    entries = {}
  end
  for _, e in ipairs(entries) do
    logger:info("Checking Key: %s", e.key)
    if e.max_age < now + s.lifetime * s.refresh_fraction then
      logger:warning("Key expires soon, renewing %s (%s)", e.name, e.key)
      local chain, key, cert = self.cs:renew(e.name, now)
      if chain then
        self.producer:send(CHAINS_TOPIC, key, chain, 0)
        self.producer:flush(s.flush_time)
        self.cs:store(e.name, cert)
        renewed = renewed + 1
      else
        logger:warning("Not renewing %s: %s", e.name, key)
        refused = refused + 1
      end
    end
  end
  logger:info("Done Checking.")
  self.renewed, self.refused = self.renewed + renewed, self.refused + refused
  return renewed, refused
end

-- Checks now and then every interval_secs until stop() returns true
-- (tested about once a second).
function ChainServer:run(stop, sleep)
  sleep = sleep or function(s) os.execute("sleep " .. s) end
  local next_check = 0
  while not (stop and stop(self)) do
    if os.time() >= next_check then
      self:check()
      next_check = os.time() + self.settings.interval_secs
    end
    sleep(1)
  end
end

-- The chainkeys entries: { {name, max_age, key = hex}, ... }
function ChainServer:entries()
  return self.cs:entries()
end

function ChainServer:stats()
  return { renewed = self.renewed, refused = self.refused }
end

function ChainServer:close()
  if self.producer then self.producer:close(self.settings.flush_time) end
  if self.cs then self.cs:close() end
  self.producer, self.cs = nil, nil
end

return chainserver
