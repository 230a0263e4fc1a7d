-- hold_undecryptable: messages whose key has not come are held and
-- released decrypted when it does; a full hold pauses, never drops.
local lu = require "luaunit"
local kafkacrypto = require "kafkacrypto"
local h = require "helpers"

TestHold = {}

function TestHold:setUp()
  self.dir = h.tmpdir()
  self.p, self.c = h.data_paths(self.dir)
end

function TestHold:tearDown()
  h.rmtree(self.dir)
end

-- n messages "<prefix><i>" to partition 0 of a new one-partition topic (no
-- dot: the topic is its root).
local function produce(p, prefix, n)
  local topic = h.topic(prefix)
  h.broker():create_topic(topic, 1)
  local producer = h.producer{ value_serializer = p:value_serializer() }
  for i = 1, n do producer:send(topic, nil, prefix .. i, 0) end
  lu.assertEquals(producer:flush(30), 0)
  producer:close()
  return topic
end

local function consumer(self, topics, extra)
  local config = { value_deserializer = self.c:value_deserializer() }
  for k, v in pairs(extra) do config[k] = v end
  local c = h.consumer(config)
  local list = {}
  for i, t in ipairs(topics) do list[i] = { topic = t, partition = 0, offset = "beginning" } end
  c:assign(list)
  return c
end

function TestHold:test_held_messages_are_released_and_a_full_hold_pauses_without_loss()
  local N, M, MAX = 20000, 50, 1000
  local late = produce(self.p, "late", N)
  local ready = produce(self.p, "ready", M)
  self.p:share_keys_with(self.c, ready)
  local c = consumer(self, { late, ready }, { hold_undecryptable = 120, hold_max_messages = MAX })
  local seen, n = {}, 0
  local function take(msg)
    lu.assertTrue(msg.value:is_cleartext(), "delivered undecrypted")
    local v = msg.value:bytes()
    lu.assertNil(seen[v], "delivered twice: " .. v)
    seen[v], n = true, n + 1
  end
  -- no key for `late`: its messages fill the hold, which pauses
  local deadline = kafkacrypto.clock() + 60
  while not c:hold_stats().paused and kafkacrypto.clock() < deadline do
    local msg = c:poll(0.2)
    if msg then take(msg) end
  end
  local st = c:hold_stats()
  lu.assertTrue(st.paused, "the hold never filled")
  lu.assertTrue(st.waiting >= MAX)
  lu.assertTrue(st.waiting < MAX + 2000, "paused late: " .. st.waiting)   -- one fetch over at most
  lu.assertEquals(st.released, 0)
  -- paused: nothing more is fetched of `late`
  for _ = 1, 5 do
    local msg = c:poll(0.1)
    if msg then take(msg) end
  end
  lu.assertEquals(c:hold_stats().held, st.held)
  -- the key comes: everything is delivered, decrypted, once
  self.p:share_keys_with(self.c, late)
  deadline = kafkacrypto.clock() + 120
  while n < N + M and kafkacrypto.clock() < deadline do
    local msg = c:poll(0.2)
    if msg then take(msg) end
  end
  lu.assertEquals(n, N + M)
  for i = 1, N, 997 do lu.assertTrue(seen["late" .. i]) end
  for i = 1, M do lu.assertTrue(seen["ready" .. i]) end
  st = c:hold_stats()
  lu.assertEquals(st.released, st.held)
  lu.assertTrue(st.held >= MAX)
  lu.assertEquals(st.expired, 0)
  lu.assertEquals(st.waiting, 0)
  lu.assertFalse(st.paused)
  lu.assertTrue(st.pauses >= 1)
  c:close()
end

function TestHold:test_what_stays_undecryptable_is_delivered_as_such_when_the_hold_ends()
  local topic = produce(self.p, "never", 5)
  local c = consumer(self, { topic }, { hold_undecryptable = 0.3 })
  local t0 = kafkacrypto.clock()
  local got = h.collect(c, 5)
  lu.assertEquals(#got, 5)
  lu.assertTrue(kafkacrypto.clock() - t0 >= 0.3)
  for _, msg in ipairs(got) do
    lu.assertFalse(msg.value:is_cleartext())
    lu.assertTrue(msg.value:is_possibly_decryptable())
  end
  local st = c:hold_stats()
  lu.assertEquals({ st.held, st.released, st.expired, st.waiting }, { 5, 0, 5, 0 })
  c:close()
end

function TestHold:test_a_stack_without_keep_raises_for_a_message_that_timed_out()
  local topic = produce(self.p, "stack", 1)
  local stack = kafkacrypto.serde.stack(self.c:value_deserializer(), function(s) return s end)
  local c = h.consumer{ value_deserializer = stack, hold_undecryptable = 0.2 }
  c:assign{ { topic = topic, partition = 0, offset = "beginning" } }
  local deadline, err = kafkacrypto.clock() + 30, nil
  while not err and kafkacrypto.clock() < deadline do
    local ok, e = pcall(c.poll, c, 0.2)
    if not ok then err = e end
  end
  lu.assertTrue(kafkacrypto.errors.is(err, kafkacrypto.errors.MESSAGE))
  lu.assertStrContains(err.message, topic)
  lu.assertEquals(c:hold_stats().expired, 1)
  c:close()
end

function TestHold:test_bad_hold_options_are_errors()
  lu.assertStrContains(h.error_of(h.consumer, { hold_undecryptable = -1 }),
                       "hold_undecryptable: expected seconds >= 0")
  lu.assertStrContains(h.error_of(h.consumer, { poll_key_wait = "x" }),
                       "poll_key_wait: expected seconds >= 0")
  lu.assertStrContains(h.error_of(h.consumer, { hold_max_messages = 5 }),
                       "need hold_undecryptable")
  lu.assertStrContains(h.error_of(h.consumer, { hold_undecryptable = 1, hold_max_bytes = 0 }),
                       "hold_max_bytes: expected a whole number >= 1")
  lu.assertNil(h.consumer{}:hold_stats())
end
