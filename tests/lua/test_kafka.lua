-- kafkacrypto.producer / kafkacrypto.consumer through an in-process broker.
local lu = require "luaunit"
local kafkacrypto = require "kafkacrypto"
local h = require "helpers"

TestKafka = {}

function TestKafka:test_round_trip_with_assign_from_beginning()
  local topic = h.topic("plain")
  local producer = h.producer()
  producer:send(topic, "k1", "v1")
  producer:send(topic, nil, "no key")
  producer:send{ topic = topic, key = "k3", value = "" }
  producer:flush()
  local stats = producer:stats()
  lu.assertEquals(stats.sent, 3)
  lu.assertEquals(stats.delivered, 3)
  producer:close()

  local consumer = h.consumer()
  consumer:assign{ { topic = topic, partition = 0, offset = "beginning" },
                   { topic = topic, partition = 1, offset = "beginning" },
                   { topic = topic, partition = 2, offset = "beginning" },
                   { topic = topic, partition = 3, offset = "beginning" } }
  local got = h.collect(consumer, 3)
  lu.assertEquals(#got, 3)
  table.sort(got, function(a, b) return (a.key or "") < (b.key or "") end)
  lu.assertNil(got[1].key)
  lu.assertEquals(got[1].value, "no key")
  lu.assertEquals({ got[2].key, got[2].value }, { "k1", "v1" })
  lu.assertEquals({ got[3].key, got[3].value }, { "k3", "" })
  for _, m in ipairs(got) do
    lu.assertEquals(m.topic, topic)
    lu.assertTrue(m.partition >= 0 and m.partition < 4)
    lu.assertTrue(m.offset >= 0)
    lu.assertTrue(m.timestamp > 1.6e12)   -- milliseconds since 1970
  end
  lu.assertNil(consumer:poll(0.2))
  consumer:close()
end

function TestKafka:test_partition_and_assign_from_end()
  local topic = h.topic("part")
  local producer = h.producer()
  producer:send(topic, "a", "first", 2)
  producer:flush()
  local consumer = h.consumer()
  consumer:assign{ topic = topic, partition = 2, offset = "end" }
  lu.assertNil(consumer:poll(0.2))
  producer:send(topic, "b", "second", 2)
  producer:flush()
  local got = h.collect(consumer, 1)
  lu.assertEquals(got[1].value, "second")
  lu.assertEquals(got[1].partition, 2)
  lu.assertEquals(got[1].offset, 1)
  -- an explicit offset
  consumer:assign{ { topic = topic, partition = 2, offset = 0 } }
  lu.assertEquals(h.collect(consumer, 1)[1].value, "first")
  consumer:close()
  producer:close()
end

function TestKafka:test_serializer_functions_and_objects()
  local topic = h.topic("ser")
  local seen_topic
  local upper = { serialize = function(self, t, v) seen_topic = t; return v:upper() end }
  local producer = h.producer{
    key_serializer = function(k) return "key:" .. tostring(k) end,
    value_serializer = upper,
  }
  producer:send(topic, "k", "hello", 0)
  producer:send(topic, nil, "world", 0)   -- serializers see nil too, as in kafka-python
  producer:flush()
  lu.assertEquals(seen_topic, topic)
  producer:close()

  local deserialized_topic
  local consumer = h.consumer{
    key_deserializer = function(k) return k and k:sub(5) end,
    value_deserializer = { deserialize = function(self, t, v)
      deserialized_topic = t
      return { text = v }
    end },
  }
  consumer:assign{ { topic = topic, partition = 0, offset = "beginning" } }
  local got = h.collect(consumer, 2)
  lu.assertEquals(got[1].key, "k")
  lu.assertEquals(got[1].value, { text = "HELLO" })
  lu.assertEquals(got[2].key, "nil")
  lu.assertEquals(got[2].value, { text = "WORLD" })
  lu.assertEquals(deserialized_topic, topic)
  consumer:close()
end

function TestKafka:test_json_stack_with_lua_cjson()
  local cjson = require "cjson"
  local topic = h.topic("json")
  local producer = h.producer{ value_serializer = kafkacrypto.serde.stack(cjson.encode) }
  producer:send(topic, nil, { n = 1, list = { 1, 2 } }, 0)
  producer:flush()
  producer:close()
  local consumer = h.consumer{ value_deserializer = kafkacrypto.serde.stack(cjson.decode) }
  consumer:assign{ { topic = topic, partition = 0, offset = "beginning" } }
  lu.assertEquals(h.collect(consumer, 1)[1].value, { n = 1, list = { 1, 2 } })
  consumer:close()
end

function TestKafka:test_values_must_be_bytes_after_serialization()
  local producer = h.producer()
  local err = h.error_of(function() producer:send("x", nil, { 1 }) end)
  lu.assertStrContains(err, "test_kafka.lua:")   -- the caller's line
  lu.assertStrContains(err, "value is a table")
  lu.assertStrContains(err, "value_serializer")
  err = h.error_of(function() producer:send(nil, "k", "v") end)
  lu.assertStrContains(err, "expected a topic name, got nil")
  err = h.error_of(function() producer:send("bad topic!", "k", "v") end)
  lu.assertStrContains(err, "'bad topic!' is not a valid Kafka topic name")
  producer:close()
end

function TestKafka:test_delivery_reports()
  local topic = h.topic("dr")
  h.broker():create_topic(topic, 1)
  local reports = {}
  local producer = h.producer{ on_delivery = function(err, r)
    reports[#reports + 1] = { err = err, seq = r.seq, partition = r.partition, offset = r.offset }
  end }
  local s1 = producer:send(topic, "a", "1")
  local s2 = producer:send(topic, "b", "2", 5)   -- the topic has no partition 5
  producer:flush()
  lu.assertEquals(#reports, 2)
  table.sort(reports, function(a, b) return a.seq < b.seq end)
  lu.assertEquals(reports[1].seq, s1)
  lu.assertNil(reports[1].err)
  lu.assertEquals(reports[1].offset, 0)
  lu.assertEquals(reports[2].seq, s2)
  lu.assertStrContains(reports[2].err:lower(), "partition")
  -- poll() serves reports too, without waiting for everything
  local s3 = producer:send(topic, "c", "3")
  for _ = 1, 300 do
    producer:poll(0.1)
    if #reports == 3 then break end
  end
  lu.assertEquals(reports[3].seq, s3)
  lu.assertEquals(reports[3].offset, 1)
  producer:close()

  -- without on_delivery a failure is not silent: flush raises
  local quiet = h.producer()
  local cap = kafkacrypto.log.capture()
  quiet:send(topic, "c", "3", 7)
  local err = h.error_of(function() quiet:flush() end)
  cap:stop()
  lu.assertStrContains(err, "1 message(s) failed")
  lu.assertNotNil(cap:find("WARNING:kafkacrypto.kafka:Message to topic " .. topic))
  quiet:close()
end

function TestKafka:test_subscribe_list_with_group()
  local t1, t2 = h.topic("sub"), h.topic("sub")
  local producer = h.producer()
  producer:send(t1, "1", "one")
  producer:send(t2, "2", "two")
  producer:flush()
  -- topics in the config are subscribed to, as KafkaConsumer("t1", "t2", ...)
  local consumer = h.consumer{ t1, t2, group_id = h.topic("group"),
                               auto_offset_reset = "earliest" }
  local got = h.collect(consumer, 2)
  lu.assertEquals(#got, 2)
  local values = { got[1].value, got[2].value }
  table.sort(values)
  lu.assertEquals(values, { "one", "two" })
  consumer:close()
  producer:close()
end

function TestKafka:test_boolean_options()
  -- kafka-python style booleans (enable_auto_commit=False) reach librdkafka as text
  local t = h.topic("bool")
  local producer = h.producer{ ["enable.idempotence"] = true }
  producer:send(t, "k", "v", 0)
  producer:flush()
  local consumer = h.consumer{ t, group_id = h.topic("group"), auto_offset_reset = "earliest",
                               enable_auto_commit = false }
  local got = h.collect(consumer, 1)
  lu.assertEquals(got[1].value, "v")
  consumer:close()
  producer:close()
end

function TestKafka:test_subscribe_regex_and_iterator()
  local prefix = h.topic("rx")
  local producer = h.producer()
  for i = 1, 3 do producer:send(prefix .. ".a", nil, "a" .. i) end
  producer:send(h.topic("other"), nil, "not me")
  producer:flush()
  local consumer = h.consumer{ auto_offset_reset = "earliest" }
  consumer:subscribe{ pattern = prefix:gsub("%.", "\\.") .. "\\..*" }
  local values = {}
  for msg in consumer:messages(30) do   -- generous: the group forms in 3 s or more
    values[#values + 1] = msg.value
    if #values == 3 then break end
  end
  table.sort(values)
  lu.assertEquals(values, { "a1", "a2", "a3" })
  -- the iterator ends after `timeout` seconds without messages
  local t0 = os.time()
  for _ in consumer:messages(0.5) do lu.fail("no message expected") end
  lu.assertTrue(os.time() - t0 < 10)
  consumer:close()
  producer:close()
end

function TestKafka:test_iterator_without_timeout_ends_when_closed()
  local topic = h.topic("iter")
  local producer = h.producer()
  producer:send(topic, nil, "only", 0)
  producer:flush()
  producer:close()
  local consumer = h.consumer()
  consumer:assign{ { topic = topic, partition = 0, offset = "beginning" } }
  local n = 0
  for msg in consumer:messages() do
    n = n + 1
    lu.assertEquals(msg.value, "only")
    consumer:close()
  end
  lu.assertEquals(n, 1)
end

function TestKafka:test_close_is_final_and_idempotent()
  local producer = h.producer()
  producer:close()
  producer:close()
  lu.assertStrContains(h.error_of(function() producer:send("t", "k", "v") end), "closed")
  local consumer = h.consumer()
  consumer:close()
  consumer:close()
  lu.assertStrContains(h.error_of(function() consumer:poll(0) end), "closed")
end

function TestKafka:test_bad_configs_are_reported()
  local err = h.error_of(kafkacrypto.producer, { no_such_option = 1 })
  lu.assertStrContains(err, "no_such_option")
  err = h.error_of(kafkacrypto.consumer, { session_timeout_ms = "soon" })
  lu.assertStrContains(err, "session.timeout.ms")
  err = h.error_of(kafkacrypto.producer, { bootstrap_servers = function() end })
  lu.assertStrContains(err, "bootstrap_servers")
  err = h.error_of(kafkacrypto.producer, { value_serializer = 42 })
  lu.assertStrContains(err, "value_serializer")
  err = h.error_of(kafkacrypto.producer, "not a table")
  lu.assertStrContains(err, "config table")
  local consumer = h.consumer()
  err = h.error_of(function() consumer:assign{ { topic = "t", partition = -1 } } end)
  lu.assertStrContains(err, "partition")
  err = h.error_of(function() consumer:assign{ { topic = "t", offset = "middle" } } end)
  lu.assertStrContains(err, "offset")
  err = h.error_of(function() consumer:subscribe{} end)
  lu.assertStrContains(err, "at least one topic")
  err = h.error_of(function() consumer:subscribe{ "a b" } end)
  lu.assertStrContains(err, "'a b' is neither a valid topic name")
  consumer:close()
end

function TestKafka:test_deserializer_errors_name_the_message()
  local topic = h.topic("deser")
  local producer = h.producer()
  producer:send(topic, nil, "not json", 0)
  producer:flush()
  producer:close()
  local consumer = h.consumer{ value_deserializer = require("cjson").decode }
  consumer:assign{ { topic = topic, partition = 0, offset = "beginning" } }
  local err
  for _ = 1, 150 do
    err = h.error_of(function() return consumer:poll(0.2) end)
    if err then break end
  end
  lu.assertStrContains(err, "value_deserializer failed on " .. topic .. "[0] offset 0")
  consumer:close()
end

function TestKafka:test_bootstrap_list_and_fixed_port()
  local broker = kafkacrypto.broker.start{ topics = { "fixed" }, port = 0 }
  lu.assertStrMatches(broker.bootstrap_servers, "127%.0%.0%.1:%d+")
  -- a list of servers is joined as kafka-python accepts it
  local producer = kafkacrypto.producer{ bootstrap_servers = { broker.bootstrap_servers } }
  producer:send("fixed", "k", "via the relayed port")
  -- fails rather than hanging if the relay is unreachable
  lu.assertEquals(producer:flush(20), 0)
  producer:close(5)
  local consumer = kafkacrypto.consumer{ bootstrap_servers = broker.bootstrap_servers }
  consumer:assign{ topic = "fixed", partition = 0, offset = "beginning" }
  lu.assertEquals(h.collect(consumer, 1)[1].value, "via the relayed port")
  consumer:close()
  broker:stop()
end

function TestKafka:test_embedded_broker_without_bootstrap_servers()
  -- no bootstrap_servers anywhere: the process's embedded broker
  local producer = kafkacrypto.producer{ linger_ms = 1 }
  producer:send("embedded", "k", "v", 0)
  producer:flush()
  producer:close()
  local consumer = kafkacrypto.consumer()
  consumer:assign{ topic = "embedded", partition = 0, offset = "beginning" }
  lu.assertEquals(h.collect(consumer, 1)[1].value, "v")
  consumer:close()
  local embedded = kafkacrypto.broker.embedded()
  lu.assertStrMatches(embedded.bootstrap_servers, "127%.0%.0%.1:%d+")
  lu.assertNotEquals(embedded.bootstrap_servers, h.broker().bootstrap_servers)
  embedded:create_key_topics("emb")
end

-- Issue 11: headers, send fields, consumer control, producer results.
TestKafkaSurface = {}

function TestKafkaSurface:test_headers_round_trip_repeated_binary_and_null()
  local topic = h.topic("hdr")
  local producer = h.producer()
  local binary = "\0\1\255\n"
  producer:send{ topic = topic, partition = 0, key = "k", value = "v", timestamp = 1600000000123,
                 headers = { { "trace", "a" }, { "bin", binary }, { "trace", "b" }, { "none" } } }
  producer:send{ topic = topic, partition = 0, value = "plain" }
  lu.assertEquals(producer:flush(), 0)
  producer:close()
  local consumer = h.consumer()
  consumer:assign{ topic = topic, partition = 0, offset = "beginning" }
  local got = h.collect(consumer, 2)
  lu.assertEquals(got[1].headers, { { "trace", "a" }, { "bin", binary }, { "trace", "b" }, { "none" } })
  lu.assertNil(got[1].headers[4][2])   -- a null header value stays nil
  lu.assertEquals(got[1].timestamp, 1600000000123)
  lu.assertEquals(got[1].timestamp_type, "create")
  lu.assertEquals(got[2].headers, {})
  consumer:close()
end

function TestKafkaSurface:test_unknown_send_fields_and_bad_headers_are_errors()
  local producer = h.producer()
  local err = h.error_of(function() producer:send{ topic = "x", value = "v", header = {} } end)
  lu.assertStrContains(err, "unknown field header")
  err = h.error_of(function() producer:send{ topic = "x", value = "v", headers = { "a" } } end)
  lu.assertStrContains(err, "header 1: expected {name, value}")
  err = h.error_of(function() producer:send{ topic = "x", value = "v", headers = { { 1, "v" } } } end)
  lu.assertStrContains(err, "header 1: name: expected a string")
  err = h.error_of(function() producer:send{ topic = "x", value = "v", timestamp = -1 } end)
  lu.assertStrContains(err, "timestamp")
  err = h.error_of(kafkacrypto.producer, { no_such_option = 1 })
  lu.assertStrContains(err, "no_such_option")
  err = h.error_of(kafkacrypto.consumer, { no_such_option = 1 })
  lu.assertStrContains(err, "no_such_option")
  producer:close()
end

function TestKafkaSurface:test_per_message_delivery_callback_and_rejected_count()
  local topic = h.topic("cb")
  h.broker():create_topic(topic, 1)
  local producer = h.producer{ ["message.max.bytes"] = 2000 }
  local result
  producer:send{ topic = topic, value = "x", on_delivery = function(err, r) result = { err, r.offset } end }
  lu.assertEquals(producer:flush(5), 0)
  lu.assertEquals(result, { nil, 0 })
  -- a value over message.max.bytes is refused at once and counted
  local err = h.error_of(function() producer:send(topic, nil, ("x"):rep(3000)) end)
  lu.assertStrContains(err, "message.max.bytes=2000")
  lu.assertStrContains(err, "75 bytes")
  local s = producer:stats()
  lu.assertEquals(s.rejected, 1)
  lu.assertEquals(s.failed, 1)
  lu.assertEquals(s.delivered, 1)
  producer:close()
end

function TestKafkaSurface:test_statistics_json()
  local producer = h.producer{ ["statistics.interval.ms"] = 100 }
  local deadline = kafkacrypto.clock() + 10
  while not producer:statistics() and kafkacrypto.clock() < deadline do producer:poll(0.05) end
  lu.assertStrContains(producer:statistics() or "", '"type": "producer"')
  producer:close()
end

function TestKafkaSurface:test_seek_position_pause_and_eof()
  local topic = h.topic("seek")
  h.broker():create_topic(topic, 1)
  local producer = h.producer()
  for i = 0, 4 do producer:send{ topic = topic, value = "m" .. i, timestamp = 1700000000000 + i * 1000 } end
  producer:flush()
  producer:close()
  local consumer = h.consumer{ enable_partition_eof = true }
  consumer:assign{ topic = topic, partition = 0, offset = "beginning" }
  local got = h.collect(consumer, 5)
  lu.assertEquals(got[5].value, "m4")
  local eof = consumer:poll(5)
  lu.assertEquals({ eof.eof, eof.topic, eof.partition, eof.offset }, { true, topic, 0, 5 })
  lu.assertEquals(consumer:position(), { { topic = topic, partition = 0, offset = 5 } })
  lu.assertEquals(consumer:assignment(), { { topic = topic, partition = 0, offset = "beginning" } })
  lu.assertEquals({ consumer:watermarks(topic, 0) }, { 0, 5 })
  consumer:seek(topic, 0, 2)
  lu.assertEquals(h.collect(consumer, 1)[1].value, "m2")
  -- by timestamp: the embedded (mock) broker answers every time lookup with
  -- the end, so only the call path is tested here
  consumer:seek(topic, 0, { timestamp = 1700000003000 })
  consumer:seek(topic, 0, "beginning")
  lu.assertEquals(h.collect(consumer, 1)[1].value, "m0")
  -- paused: nothing arrives until resumed
  consumer:pause{ topic = topic, partition = 0 }
  local m = consumer:poll(0.3)
  lu.assertTrue(m == nil or m.eof == nil and m.value == "m1" or m.eof)   -- at most one in flight
  consumer:resume{ topic = topic, partition = 0 }
  local batch = consumer:poll_batch(10, 2)
  lu.assertTrue(#batch >= 1)
  lu.assertEquals(batch[#batch].eof, true)
  local err = h.error_of(function() consumer:seek(topic, 0, "stored") end)
  lu.assertStrContains(err, "seek: expected an offset")
  err = h.error_of(function() consumer:poll_batch(0) end)
  lu.assertStrContains(err, "max")
  consumer:close()
end

function TestKafkaSurface:test_commit_explicit_offsets_and_committed()
  local topic = h.topic("commit")
  h.broker():create_topic(topic, 2)
  local group = h.topic("group")
  local consumer = h.consumer{ group_id = group, enable_auto_commit = false }
  consumer:assign{ { topic = topic, partition = 0, offset = "beginning" },
                   { topic = topic, partition = 1, offset = "beginning" } }
  lu.assertEquals(consumer:committed(), { { topic = topic, partition = 0 }, { topic = topic, partition = 1 } })
  consumer:commit{ { topic = topic, partition = 0, offset = 3 } }
  consumer:commit({ { topic = topic, partition = 1, offset = 7 } }, true)   -- asynchronous
  local deadline, c = kafkacrypto.clock() + 10, nil
  repeat
    consumer:poll(0.05)   -- serves the asynchronous commit's result
    c = consumer:committed()
  until c[2].offset == 7 or kafkacrypto.clock() > deadline
  lu.assertEquals(c, { { topic = topic, partition = 0, offset = 3 }, { topic = topic, partition = 1, offset = 7 } })
  local err = h.error_of(function() consumer:commit{ { topic = topic, partition = 0, offset = "end" } } end)
  lu.assertStrContains(err, "expected an offset >= 0")
  consumer:close()
end

function TestKafkaSurface:test_pattern_subscription_leaves_out_key_topics()
  local root = h.topic("pat")
  local producer = h.producer()
  for _, t in ipairs{ root .. ".data", root .. ".reqs", root .. ".keys", root .. ".subs" } do
    h.broker():create_topic(t, 1)
    producer:send(t, nil, t)
  end
  producer:flush()
  producer:close()
  local function read(extra)
    local consumer = h.consumer(extra)
    consumer:subscribe{ pattern = "^" .. root .. "\\..*" }
    local seen, deadline = {}, kafkacrypto.clock() + 20
    while kafkacrypto.clock() < deadline do
      local m = consumer:poll(0.2)
      if m then seen[#seen + 1] = m.value end
      if #seen == (extra.key_topics and 4 or 1) then
        local more = consumer:poll(0.5)
        if more then seen[#seen + 1] = more.value end
        break
      end
    end
    consumer:close()
    table.sort(seen)
    return seen
  end
  lu.assertEquals(read{ group_id = h.topic("g"), auto_offset_reset = "earliest" }, { root .. ".data" })
  lu.assertTrue(kafkacrypto.is_key_topic("x.reqs"))
  lu.assertTrue(kafkacrypto.is_key_topic("chains"))
  lu.assertFalse(kafkacrypto.is_key_topic("x.data"))
end

function TestKafkaSurface:test_admin_metadata_and_create_topics_as_far_as_the_mock_goes()
  local topic = h.topic("adm")
  h.broker():create_topic(topic, 3)
  local admin = kafkacrypto.admin{ bootstrap_servers = h.broker().bootstrap_servers }
  local md = admin:metadata(topic)
  lu.assertEquals(#md.brokers, 1)
  lu.assertEquals(md.topics[1].name, topic)
  lu.assertEquals(#md.topics[1].partitions, 3)
  lu.assertEquals(md.topics[1].partitions[1].replicas, { md.brokers[1].id })
  -- argument checks happen before anything is sent
  local err = h.error_of(admin.create_topics, admin, { { name = "ok", partitions = 0 } })
  lu.assertStrContains(err, "partitions: expected a number >= 1")
  err = h.error_of(admin.create_topics, admin, { { name = "bad name!" } }, { timeout = 1 })
  lu.assertStrContains(err, "entry 1: expected a valid topic name")
  err = h.error_of(admin.create_topics, admin, { { name = "x", config = { a = {} } } })
  lu.assertStrContains(err, "config: expected names and values")
  -- the mock broker names no controller: CreateTopics is refused, and said so
  err = h.error_of(admin.create_key_topics, admin, "root", { timeout = 1 })
  lu.assertStrContains(err, "create topics: ")
  admin:close()
end

local kcat = require "kafkacrypto.tools.kcat"
TestKcatFormats = {}

function TestKcatFormats:test_format_codes_escapes_and_null()
  local f = assert(kcat.formatter("%t %p %o %T [%k] [%s] %S %K %h %%\\n"))
  local msg = { topic = "t", partition = 1, offset = 7, timestamp = 5, key = nil,
                value = "a\nb\\c\0\27\tz", headers = { { "h", "v" }, { "n" } } }
  lu.assertEquals(f(msg), "t 1 7 5 [\\N] [a\\nb\\\\c\\0\\x1b\tz] 9 -1 h=v,n=\\N %\n")
  local raw = assert(kcat.formatter("[%k] [%s] %h", { raw = true }))
  lu.assertEquals(raw(msg), "[] [a\nb\\c\0\27\tz] h=v,n=NULL")
  lu.assertEquals(raw{ key = "", value = "", headers = {} }, "[] [] ")
  local _, why = kcat.formatter("%x")
  lu.assertStrContains(why, "unknown format code %x")
  lu.assertEquals(kcat.unescape("a\\tb\\x01\\\\\\q"), "a\tb\1\\\\q")
end

function TestKcatFormats:test_json_envelope()
  local msg = { topic = "t", partition = 0, offset = 3, timestamp = 9, timestamp_type = "create",
                broker = 1, key = "k\"\n", value = "\255", headers = { { "a", nil }, { "b", "\1" } } }
  lu.assertEquals(kcat.json(msg), '{"topic":"t","partition":0,"offset":3,"tstype":"create","ts":9,'
    .. '"broker":1,"headers":["a",null,"b","\\u0001"],"key":"k\\"\\n",'
    .. '"payload_encoding":"base64","payload":"/w=="}')
  msg.headers, msg.key, msg.value = {}, nil, nil
  lu.assertStrContains(kcat.json(msg), '"broker":1,"key":null,"payload":null}')
  lu.assertTrue(kcat.is_utf8("été €𝄞"))
  lu.assertFalse(kcat.is_utf8("\192\128"))        -- overlong
  lu.assertFalse(kcat.is_utf8("\237\160\128"))    -- a surrogate
  lu.assertEquals(kcat.base64("ab"), "YWI=")
  lu.assertEquals(kcat.base64("abc"), "YWJj")
end

function TestKcatFormats:test_offsets()
  lu.assertEquals(kcat.parse_offset("beginning"), { start = "beginning" })
  lu.assertEquals(kcat.parse_offset("12"), { start = 12 })
  lu.assertEquals(kcat.parse_offset("-3"), { start = { relative = 3 } })
  lu.assertEquals(kcat.parse_offset("s@100"), { start = { timestamp = 100 } })
  lu.assertEquals(kcat.parse_offset("e@100"), { stop_timestamp = 100 })
  lu.assertNil(kcat.parse_offset("soon"))
end
