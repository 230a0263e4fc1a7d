-- kafkacrypto.authorities.controller: upstream's controller (spec §8.1) as a library,
-- run by scripts/controller.lua (`kafkacrypto controller`).
--
-- A controller is a node whose chain allows key-encrypt-request. Consumers
-- provisioned "limited" (key-encrypt-subscribe only) write their key
-- requests to <root>.subs alone; the controller reads every *.subs topic,
-- has the core verify each request's chain for key-encrypt-subscribe and
-- ask the policies (hook `reencrypt`, policies/README.md), re-signs the
-- approved ones with its own key and forwards them to <root>.reqs with the
-- same Kafka key, where producers answer them as usual.
--
--   local c = controller.new{ config = "ctl.config", policies = { "p.lua" },
--                             bootstrap_servers = "127.0.0.1:9092",
--                             group_id = "controllers" }
--   while true do c:step(1) end       -- or c:run()
--   c:close()
--
-- Options: config (NODE.config, required), node_id, policies (files, added
-- to kafkacrypto.cfg's), group_id (default: the node ID), kafka (extra
-- client options for both clients), bootstrap_servers, enable_auto_commit
-- (default false: offsets are committed synchronously after each batch),
-- poll_records (default: the node's mgmt_poll_records, at most 100).
--
-- The node itself (its management thread) applies the chains, allowlist
-- and denylist topics, exactly as any node; the controller's group
-- consumer reads only the *.subs topics, so those messages are not
-- processed twice.

local kafkacrypto = require "kafkacrypto"
local core = require "kafkacrypto.core"

local controller = {}
local Controller = {}
Controller.__index = Controller

local LOGGER = "kafkacrypto.controller"
local logger = kafkacrypto.log.logger(LOGGER)

local function pattern_escape(s)
  return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?%{%}|\\]", "\\%0"))
end

local function hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

function controller.new(o)
  if type(o) ~= "table" or (not o.config and not o.node_id) then
    core.error("controller.new: expected a table with config (the node's .config file)")
  end
  local kafka = {}
  for k, v in pairs(o.kafka or {}) do kafka[k] = v end
  if o.bootstrap_servers then kafka.bootstrap_servers = o.bootstrap_servers end

  -- The controller's own clients start from the node config's Kafka
  -- sections, as the node's do (read before the node locks the file).
  local base = {}
  if o.config then
    local store = kafkacrypto.store(o.config)
    local ok, err = pcall(function()
      base.consumer = store:get_kafka_config("consumer")
      base.producer = store:get_kafka_config("producer")
    end)
    store:close()
    if not ok then error(err, 0) end
  end
  local node = kafkacrypto.new{ config = o.config, node_id = o.node_id, policies = o.policies,
                                producer = kafka, consumer = kafka }
  local self = setmetatable({ node = node, topics = core.node_topics(node),
                              forwarded = 0, refused = 0, last_unknown = -math.huge }, Controller)
  local ok, err = pcall(function()
    local group_id = o.group_id or node:node_id()
    local auto_commit = o.enable_auto_commit
    if auto_commit == nil then auto_commit = false end
    if auto_commit ~= false then
      logger:warning("Auto commit not disabled, controller may miss messages.")
    end
    if not group_id or group_id == "" then
      logger:warning("Group ID not set, controller may miss messages.")
    end
    -- the options given win over the file's (librdkafka names there)
    local function merged(from)
      local t = {}
      for k, v in pairs(from or {}) do t[k] = v end
      for k, v in pairs(kafka) do
        t[(k:gsub("_", "."))] = nil
        t[k] = v
      end
      return t
    end
    local cconf, pconf = merged(base.consumer), merged(base.producer)
    local function set(t, name, value)   -- under its librdkafka name
      t[(name:gsub("%.", "_"))] = nil
      t[name] = value
    end
    set(cconf, "group.id", group_id ~= "" and group_id or nil)
    set(cconf, "enable.auto.commit", tostring(auto_commit))   -- Kafka options take text
    set(cconf, "auto.offset.reset", cconf["auto.offset.reset"] or cconf.auto_offset_reset
                                    or "earliest")
    -- a regex subscription sees new *.subs topics at metadata refreshes
    set(cconf, "topic.metadata.refresh.interval.ms",
        cconf["topic.metadata.refresh.interval.ms"] or "5000")
    self.group = cconf["group.id"] ~= nil
    cconf.key_topics = true   -- its pattern is for key-exchange topics
    self.consumer = kafkacrypto.consumer(cconf)
    self.producer = kafkacrypto.producer(pconf)
    self.pattern = "^.*" .. pattern_escape(self.topics.subs) .. "$"
    self.poll_records = o.poll_records or 100
    -- Subscribed once: librdkafka re-evaluates the pattern at each metadata
    -- refresh (upstream re-subscribes every MGMT_SUBSCRIBE_INTERVAL, which
    -- with librdkafka would force a rebalance each time).
    self.consumer:subscribe{ self.pattern }
  end)
  if not ok then
    self:close()
    error(err, 0)
  end
  return self
end

-- Handles one message of a *.subs topic.
function Controller:_handle(msg)
  local suffix = self.topics.subs
  local topic = msg.topic
  if #topic <= #suffix or topic:sub(-#suffix) ~= suffix then
    if os.time() - self.last_unknown >= 60 then   -- rate-limited, as upstream
      logger:warning("Unknown topic type in message")
      self.last_unknown = os.time()
    end
    return
  end
  local root = topic:sub(1, #topic - #suffix)
  local value = type(msg.value) == "string" and msg.value or nil
  local resigned, why
  if value then
    resigned, why = core.controller_reencrypt(self.node, root, value)
  else
    why = "the message has no value"
  end
  if resigned then
    local reqs = root .. self.topics.reqs
    local key = msg.key and hex(msg.key) or "None"
    logger:info("Valid consumer key request on topic=%s, root=%s, msgkey=%s. Resending to "
                .. "topic=%s, msgkey=%s", topic, root, key, reqs, key)
    self.producer:send(reqs, msg.key, resigned, 0)
    self.forwarded = self.forwarded + 1
  else
    logger:info("Invalid consumer key request on topic=%s: %s", topic, tostring(why))
    self.refused = self.refused + 1
  end
end

-- One batch: waits up to `timeout` seconds for the first message, handles
-- up to poll_records, flushes the forwarded requests and commits. Returns
-- the number of messages handled.
function Controller:step(timeout)
  local n = 0
  local msg = self.consumer:poll(timeout or 1)
  while msg do
    self:_handle(msg)
    n = n + 1
    if n >= self.poll_records then break end
    msg = self.consumer:poll(0)
  end
  if n > 0 then
    self.producer:flush(self.topics.flush_time)
    if self.group then self.consumer:commit() end
  end
  return n
end

-- Runs until stop() returns true (checked after every batch; default:
-- forever).
function Controller:run(stop)
  repeat self:step(1) until stop and stop(self)
end

function Controller:stats()
  return { forwarded = self.forwarded, refused = self.refused }
end

function Controller:close()
  if self.consumer then self.consumer:close() end
  if self.producer then self.producer:close(self.topics.flush_time) end
  if self.node then self.node:close() end
  self.consumer, self.producer, self.node = nil, nil, nil
end

return controller
