-- kafkacrypto.wait_for_signal, catch_signals and clock.
local lu = require "luaunit"
local kafkacrypto = require "kafkacrypto"
local h = require "helpers"

-- os.execute runs `sh -c`, whose parent is this process. system() ignores
-- SIGINT in the caller until the command ends, so `later` sends from a
-- child left running in the background.
local function signal_self(name)
  lu.assertTrue(os.execute("kill -" .. name .. " $PPID") == 0)
end
local function later(name)
  lu.assertTrue(os.execute("(sleep 0.2; kill -" .. name .. " $PPID) >/dev/null 2>&1 &") == 0)
end

TestSignal = {}

function TestSignal:tearDown() kafkacrypto.catch_signals(false) end

function TestSignal:test_clock_is_monotonic_and_fine()
  local a = kafkacrypto.clock()
  local b = kafkacrypto.clock()
  lu.assertTrue(b >= a)
  lu.assertNotEquals(a, math.floor(a))   -- sub-second
end

function TestSignal:test_timeout_returns_nil_after_the_time()
  local t0 = kafkacrypto.clock()
  lu.assertNil(kafkacrypto.wait_for_signal(0.15))
  local waited = kafkacrypto.clock() - t0
  lu.assertTrue(waited >= 0.15 and waited < 1, "waited " .. waited)
  lu.assertNil(kafkacrypto.wait_for_signal(0))
end

function TestSignal:test_caught_signals_are_returned_once_in_order()
  kafkacrypto.catch_signals(true)
  signal_self("TERM")   -- does not end the process: caught
  later("INT")
  lu.assertEquals(kafkacrypto.wait_for_signal(3), "SIGTERM")
  lu.assertEquals(kafkacrypto.wait_for_signal(3), "SIGINT")
  lu.assertNil(kafkacrypto.wait_for_signal(0))
end

function TestSignal:test_a_signal_ends_a_wait_early()
  lu.assertNil(kafkacrypto.wait_for_signal(0))   -- starts catching
  later("TERM")   -- delivered while we wait
  local t0 = kafkacrypto.clock()
  lu.assertEquals(kafkacrypto.wait_for_signal(), "SIGTERM")
  lu.assertTrue(kafkacrypto.clock() - t0 < 5)
end

function TestSignal:test_releasing_forgets_caught_signals()
  kafkacrypto.catch_signals(true)
  signal_self("TERM")
  kafkacrypto.catch_signals(false)
  kafkacrypto.catch_signals(true)
  lu.assertNil(kafkacrypto.wait_for_signal(0))
end

function TestSignal:test_bad_arguments()
  lu.assertStrContains(h.error_of(kafkacrypto.wait_for_signal, -1),
                       "wait_for_signal: seconds: expected a number >= 0 or nil")
  lu.assertStrContains(h.error_of(kafkacrypto.wait_for_signal, 0 / 0), "expected a number")
  lu.assertStrContains(h.error_of(kafkacrypto.wait_for_signal, "soon"), "number expected")
  lu.assertStrContains(h.error_of(kafkacrypto.catch_signals, "yes"), "boolean expected")
end
