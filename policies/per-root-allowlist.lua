-- policies/per-root-allowlist.lua — who may get the keys of each root,
-- from a data file that can change without touching the policy.
--
-- The file DATA (next to this policy) has one line per root topic:
--
--   # root     fingerprints of the signing keys allowed (any number)
--   sensors    3b1f...e0 77aa...19
--   billing    3b1f...e0
--   *          c0ff...ee            # every root
--
-- Requests for a root that no line names (and no "*" line) are refused.
-- The file is read again when it has been RELOAD seconds since the last
-- read, so edits apply without a restart. A file that cannot be read
-- refuses everything (and says why).

local DATA = "root-allowlist.txt"
local RELOAD = 30

local allowed, loaded_at, load_error = nil, nil, nil

local function parse(text)
  local roots = {}
  local n = 0
  for line in text:gmatch("[^\n]+") do
    n = n + 1
    line = line:gsub("#.*", "")
    local root, rest = line:match("^%s*(%S+)%s*(.*)$")
    if root then
      local set = roots[root] or {}
      for fp in rest:gmatch("%S+") do
        if not fp:match("^%x+$") or #fp ~= 64 then
          error(DATA .. ":" .. n .. ": expected 64 hex digits, got " .. fp, 0)
        end
        set[fp:lower()] = true
      end
      roots[root] = set
    end
  end
  return roots
end

local function current(now)
  if not loaded_at or now - loaded_at >= RELOAD or now < loaded_at then
    loaded_at = now
    local text, why = read_file(DATA)
    if text then
      local ok, roots = pcall(parse, text)
      allowed, load_error = ok and roots or nil, not ok and roots or nil
    else
      allowed, load_error = nil, why
    end
    if load_error then log.warning(load_error) end
  end
  return allowed
end

local function check(req)
  local roots = current(req.time)
  if not roots then
    return false, "no allow list: " .. tostring(load_error)
  end
  local who = req.fingerprint or "?"
  for _, key in ipairs({ req.root, "*" }) do
    local set = roots[key]
    if set and set[who] then return true end
  end
  return false, "signing key " .. who .. " is not allowed for root " .. tostring(req.root)
end

return {
  key_request = check,
  reencrypt = check,
}
