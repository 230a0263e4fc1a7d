-- kafkacrypto.log: levels, own loggers, capture.
local lu = require "luaunit"
local kafkacrypto = require "kafkacrypto"
local h = require "helpers"
local log = kafkacrypto.log

TestLog = {}

function TestLog:setUp() self.level = log.get_level() end
function TestLog:tearDown() log.set_level(self.level) end

function TestLog:test_default_level_is_warning()
  -- the runner is started without --log-level, as upstream defaults
  lu.assertEquals(self.level, "WARNING")
  lu.assertEquals(kafkacrypto.settings().log_level, "WARNING")
end

function TestLog:test_capture_and_levels()
  local app = log.logger("kafkacrypto.test")
  local cap = log.capture()
  app:info("hidden at %s", "WARNING")
  app:warning("shown: %d", 42)
  log.set_level("INFO")
  app:info("now shown")
  log.set_level(log.DEBUG)
  app:debug("debug too")
  app:error("plain text with %% and no arguments")
  local lines = cap:stop()
  lu.assertEquals(lines, {
    "WARNING:kafkacrypto.test:shown: 42",
    "INFO:kafkacrypto.test:now shown",
    "DEBUG:kafkacrypto.test:debug too",
    "ERROR:kafkacrypto.test:plain text with %% and no arguments",
  })
  lu.assertEquals(log.get_level(), "DEBUG")
  -- after stop, lines are no longer captured
  local again = log.capture()
  lu.assertEquals(again:get(), {})
  again:stop()
end

function TestLog:test_library_lines_are_captured()
  -- a line written by the C core (dropping a kafka-python-only option)
  local cap = log.capture()
  local producer = h.producer{ api_version = "2.0" }
  producer:close()
  cap:stop()
  lu.assertNotNil(cap:find("WARNING:kafkacrypto.confluent_kafka_wrapper:Warning: Unsupported "
                           .. "kafka-python parameter passed to confluent wrapper: api_version, 2.0"))
  lu.assertNil(cap:find("no such line"))
end

function TestLog:test_bad_level_is_an_error()
  lu.assertStrContains(h.error_of(log.set_level, "LOUD"), "expected DEBUG, INFO, WARNING")
  lu.assertEquals(log.get_level(), self.level)
  log.set_level(20)   -- Python's numeric levels work too
  lu.assertEquals(log.get_level(), "INFO")
end
