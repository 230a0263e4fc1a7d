-- Runs luaunit tests inside kafkacrypto's own runtime:
--   kafkacrypto run tests/lua/run.lua tests/lua/test_*.lua [luaunit options]
-- Each test file defines global Test* tables; other arguments (e.g. -v,
-- -p PATTERN) go to luaunit.
local files, options = {}, {}
for _, a in ipairs(arg) do
  if a:match("%.lua$") then files[#files + 1] = a else options[#options + 1] = a end
end
arg = options   -- luaunit reads its options from the global arg when loaded
local lu = require "luaunit"
for _, f in ipairs(files) do dofile(f) end

io.stdout:setvbuf("line")
local runner = lu.LuaUnit.new()
runner:setOutputType("text")
local failures = runner:runSuite(unpack(options))
local r = runner.result
-- A closing line in the common "N passed, N failed" form.
print(("lua: %d passed, %d failed, %d skipped"):format(
  r.successCount, r.notSuccessCount, r.skippedCount))
os.exit(failures == 0 and 0 or 1)
