-- Logging, like upstream's use of Python logging: lines "LEVEL:logger:message"
-- on stderr, WARNING and above by default. Upstream's troubleshooting advice
--   logging.getLogger("kafkacrypto").setLevel(logging.INFO)
-- becomes
--   kafkacrypto.log.set_level("INFO")      -- or "DEBUG" for more
-- (also log_level in kafkacrypto.cfg, or --log-level on the command line).

local core = require "kafkacrypto.core"

local log = {
  DEBUG = "DEBUG", INFO = "INFO", WARNING = "WARNING", ERROR = "ERROR", CRITICAL = "CRITICAL",
}

function log.set_level(level)
  core.log_set_level(level)
end

function log.get_level()
  return core.log_get_level()
end

-- A logger for your own lines: log.logger("myapp"):info("sent %d messages", n)
function log.logger(name)
  local logger = { name = name }
  for _, level in ipairs { "debug", "info", "warning", "error", "critical" } do
    logger[level] = function(_, fmt, ...)
      core.log(level:upper(), name, select("#", ...) > 0 and fmt:format(...) or tostring(fmt))
    end
  end
  return logger
end

-- Captures log lines instead of printing them, e.g. in tests:
--   local cap = log.capture()
--   ... 
--   cap:stop()
--   assert(cap:find("WARNING:kafkacrypto"))
-- Lines logged by any thread are collected; one capture at a time.
function log.capture()
  core.log_capture_start()
  local cap = { lines = {} }
  local function collect(new)
    for _, line in ipairs(new) do cap.lines[#cap.lines + 1] = line end
    return cap.lines
  end
  -- The lines so far (without stopping).
  function cap:get() return collect(core.log_capture_take()) end
  -- Stops capturing (lines go to stderr again); returns all lines.
  function cap:stop() return collect(core.log_capture_stop()) end
  -- The first line containing `text` (plain text, not a pattern), or nil.
  function cap:find(text)
    for _, line in ipairs(self:get()) do
      if line:find(text, 1, true) then return line end
    end
  end
  return cap
end

return log
