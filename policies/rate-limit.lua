-- policies/rate-limit.lua — at most MAX re-signings (or key answers) per
-- requester and root in any WINDOW seconds, and only during the UTC hours
-- FROM_HOUR <= hour < TO_HOUR.
--
-- Meant for a controller (reencrypt): a consumer normally asks once per new
-- producer key, so a flood of requests from one key is either a fault or an
-- attempt to use the controller as a signing oracle. Counts live in memory
-- (they restart with the process) and are bounded by MAX_TRACKED.

local MAX = 20
local WINDOW = 3600
local FROM_HOUR, TO_HOUR = 0, 24
local MAX_TRACKED = 10000

local seen = {}      -- "fingerprint root" -> list of times
local tracked = 0

local function prune(list, now)
  local kept = {}
  for _, t in ipairs(list) do
    if now - t < WINDOW and t <= now then kept[#kept + 1] = t end
  end
  return kept
end

local function check(req)
  local now = req.time
  local hour = tonumber(os.date("!%H", math.floor(now)))
  if hour < FROM_HOUR or hour >= TO_HOUR then
    return false, string.format("outside the hours %02d:00-%02d:00 UTC", FROM_HOUR, TO_HOUR)
  end
  local key = tostring(req.fingerprint) .. " " .. tostring(req.root)
  local list = seen[key]
  if not list then
    if tracked >= MAX_TRACKED then   -- forget everyone rather than grow without bound
      seen, tracked = {}, 0
    end
    list, tracked = {}, tracked + 1
  end
  list = prune(list, now)
  if #list >= MAX then
    seen[key] = list
    return false, string.format("rate limit: %d requests from %s for root %s in %d s",
                                #list, tostring(req.fingerprint), tostring(req.root), WINDOW)
  end
  list[#list + 1] = now
  seen[key] = list
  return true
end

return {
  reencrypt = check,
  key_request = check,
}
