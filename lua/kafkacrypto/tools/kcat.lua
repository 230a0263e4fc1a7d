-- What `kafkacrypto consume` and `produce` share to behave like kcat:
-- kcat's -f format, its -J JSON envelope, its -L metadata listing, its
-- delimiter escapes and offset specifications.
--
-- Differences from kcat, on purpose (README, "kcat compatibility"):
--   * -f escapes key, value and header bytes so that one message is one
--     line: backslash as \\, \n \r \0, other control bytes but tab and DEL
--     as \xHH (tab stays: the default KEY<TAB>VALUE splits at the first), and a null key or value is \N (as in PostgreSQL's text format),
--     so null, empty and any bytes are told apart. raw = true writes bytes
--     unchanged and null as empty (kcat's own behaviour; -Z: NULL).
--   * -J never writes invalid JSON: a key, payload or header value that is
--     not valid UTF-8 is written in base64, flagged by "key_encoding" /
--     "payload_encoding": "base64" before it, and a header value as
--     {"base64": "..."} (kcat copies such bytes into its output unchanged).

local kcat = {}

---------------------------------------------------------------------------
-- Escapes in delimiters and formats: \n \r \t \0 \\ \xHH

function kcat.unescape(text)
  local out, i = {}, 1
  while i <= #text do
    local c = text:sub(i, i)
    if c == "\\" and i < #text then
      local n = text:sub(i + 1, i + 1)
      local simple = ({ n = "\n", r = "\r", t = "\t", ["0"] = "\0", ["\\"] = "\\" })[n]
      local hex = n == "x" and text:sub(i + 2, i + 3):match("^%x%x$")
      if simple then
        out[#out + 1], i = simple, i + 2
      elseif hex then
        out[#out + 1], i = string.char(tonumber(hex, 16)), i + 4
      else
        out[#out + 1], i = c, i + 1
      end
    else
      out[#out + 1], i = c, i + 1
    end
  end
  return table.concat(out)
end

---------------------------------------------------------------------------
-- -f FORMAT

local LINE_ESCAPES = { ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\0"] = "\\0" }

-- Bytes as one line of text (see the top of this file); nil is \N.
function kcat.escape_line(bytes)
  if bytes == nil then return "\\N" end
  return (bytes:gsub("[%z\1-\8\10-\31\\\127]", function(c)
    return LINE_ESCAPES[c] or ("\\x%02x"):format(c:byte())
  end))
end

local FORMAT_CODES = { t = true, p = true, o = true, k = true, s = true, S = true, K = true,
                       T = true, h = true, ["%"] = true }

-- Compiles a kcat -f format into a function(msg) -> text. options.raw:
-- bytes unchanged (null as empty, or options.null_text). Returns nil and a
-- reason for an unknown %-code.
function kcat.formatter(format, options)
  options = options or {}
  format = kcat.unescape(format)
  local raw, null_text = options.raw, options.null_text
  local function bytes(b)
    if b == nil then return null_text or (raw and "" or "\\N") end
    return raw and b or kcat.escape_line(b)
  end
  local parts, i = {}, 1
  while i <= #format do
    local at = format:find("%", i, true)
    if not at then
      parts[#parts + 1] = format:sub(i)
      break
    end
    if at > i then parts[#parts + 1] = format:sub(i, at - 1) end
    local code = format:sub(at + 1, at + 1)
    if not FORMAT_CODES[code] then
      return nil, ("unknown format code %%%s (expected %%t %%p %%o %%k %%s %%S %%K %%T %%h %%%%)")
                  :format(code)
    end
    parts[#parts + 1] = { code }
    i = at + 2
  end
  return function(msg)
    local out = {}
    for n, p in ipairs(parts) do
      if type(p) == "string" then
        out[n] = p
      else
        local c = p[1]
        if c == "t" then out[n] = msg.topic
        elseif c == "p" then out[n] = ("%d"):format(msg.partition)
        elseif c == "o" then out[n] = ("%d"):format(msg.offset)
        elseif c == "k" then out[n] = bytes(msg.key)
        elseif c == "s" then out[n] = bytes(msg.value)
        elseif c == "S" then out[n] = msg.value and ("%d"):format(#msg.value) or "-1"
        elseif c == "K" then out[n] = msg.key and ("%d"):format(#msg.key) or "-1"
        elseif c == "T" then out[n] = ("%d"):format(msg.timestamp or -1)
        elseif c == "h" then
          local hs = {}
          for j, hd in ipairs(msg.headers or {}) do
            hs[j] = (raw and hd[1] or kcat.escape_line(hd[1])) .. "="
                    .. (hd[2] == nil and raw and "NULL" or bytes(hd[2]))   -- kcat: NULL
          end
          out[n] = table.concat(hs, ",")
        else out[n] = "%" end
      end
    end
    return table.concat(out)
  end
end

---------------------------------------------------------------------------
-- -J

-- True when s is valid UTF-8 (no overlong forms, no surrogates, <= U+10FFFF).
function kcat.is_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len, min
    if c < 0x80 then len, min = 1, 0
    elseif c >= 0xc2 and c <= 0xdf then len, min = 2, 0x80
    elseif c >= 0xe0 and c <= 0xef then len, min = 3, 0x800
    elseif c >= 0xf0 and c <= 0xf4 then len, min = 4, 0x10000
    else return false end
    if i + len - 1 > n then return false end
    local cp = len == 1 and c or c % (2 ^ (7 - len))
    for j = i + 1, i + len - 1 do
      local b = s:byte(j)
      if b < 0x80 or b > 0xbf then return false end
      cp = cp * 64 + b % 64
    end
    if cp < min or cp > 0x10ffff or (cp >= 0xd800 and cp <= 0xdfff) then return false end
    i = i + len
  end
  return true
end

local JSON_ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
                       ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

-- A JSON string of valid UTF-8 text, escaped as kcat (yajl) does.
function kcat.json_string(s)
  return '"' .. s:gsub('[%z\1-\31"\\]', function(c)
    return JSON_ESCAPES[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
function kcat.base64(s)
  return (s:gsub("..?.?", function(chunk)
    local a, b, c = chunk:byte(1, 3)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local out = {}
    for k = 1, 4 do
      local idx = math.floor(n / 2 ^ (6 * (4 - k))) % 64
      out[k] = B64:sub(idx + 1, idx + 1)
    end
    if not b then out[3], out[4] = "=", "=" elseif not c then out[4] = "=" end
    return table.concat(out)
  end))
end

-- "name": value (with a preceding "name_encoding" for non-UTF-8 bytes)
local function json_bytes_field(name, s)
  if s == nil then return ('"%s":null'):format(name) end
  if kcat.is_utf8(s) then return ('"%s":%s'):format(name, kcat.json_string(s)) end
  return ('"%s_encoding":"base64","%s":"%s"'):format(name, name, kcat.base64(s))
end

-- kcat's -J envelope of a message: topic, partition, offset, tstype, ts,
-- broker, headers (when there are any: name, value, name, value, ...),
-- key, payload.
function kcat.json(msg)
  local f = {
    '"topic":' .. kcat.json_string(msg.topic),
    ('"partition":%d'):format(msg.partition),
    ('"offset":%d'):format(msg.offset),
  }
  local tstype = msg.timestamp_type == "create" and "create"
                 or msg.timestamp_type == "log_append" and "logappend" or "unknown"
  f[#f + 1] = ('"tstype":"%s"'):format(tstype)
  f[#f + 1] = ('"ts":%d'):format(msg.timestamp or -1)
  f[#f + 1] = ('"broker":%d'):format(msg.broker or -1)
  if msg.headers and #msg.headers > 0 then
    local hs = {}
    for _, hd in ipairs(msg.headers) do
      local v = hd[2]
      hs[#hs + 1] = kcat.is_utf8(hd[1]) and kcat.json_string(hd[1])
                    or ('{"base64":"%s"}'):format(kcat.base64(hd[1]))
      hs[#hs + 1] = v == nil and "null" or kcat.is_utf8(v) and kcat.json_string(v)
                    or ('{"base64":"%s"}'):format(kcat.base64(v))
    end
    f[#f + 1] = '"headers":[' .. table.concat(hs, ",") .. "]"
  end
  f[#f + 1] = json_bytes_field("key", msg.key)
  f[#f + 1] = json_bytes_field("payload", msg.value)
  return "{" .. table.concat(f, ",") .. "}"
end

---------------------------------------------------------------------------
-- -o OFFSET

-- Parses one -o value: {start = "beginning"|"end"|"stored"|N|{relative = N}|
-- {timestamp = ms}} or {stop_timestamp = ms} (e@TS), or nil and a reason.
function kcat.parse_offset(text)
  if text == "beginning" or text == "end" or text == "stored" then return { start = text } end
  local n = text:match("^%d+$")
  if n then return { start = tonumber(n) } end
  n = text:match("^%-(%d+)$")
  if n then return { start = { relative = tonumber(n) } } end
  n = text:match("^s@(%d+)$")
  if n then return { start = { timestamp = tonumber(n) } } end
  n = text:match("^e@(%d+)$")
  if n then return { stop_timestamp = tonumber(n) } end
  return nil, "expected beginning, end, stored, N, -N, s@TIMESTAMP_MS or e@TIMESTAMP_MS"
end

---------------------------------------------------------------------------
-- -L

-- kcat -L's listing of admin:metadata(topic).
function kcat.metadata_text(md, topic)
  local out = {}
  local function say(fmt, ...) out[#out + 1] = fmt:format(...) end
  say("Metadata for %s (from broker %d: %s):", topic or "all topics", md.orig_broker_id,
      md.orig_broker_name)
  say(" %d brokers:", #md.brokers)
  for _, b in ipairs(md.brokers) do
    say("  broker %d at %s:%d%s", b.id, b.host, b.port,
        b.id == md.controller_id and " (controller)" or "")
  end
  say(" %d topics:", #md.topics)
  for _, t in ipairs(md.topics) do
    say('  topic "%s" with %d partitions:%s', t.name, #t.partitions,
        t.error and (" " .. t.error) or "")
    for _, p in ipairs(t.partitions) do
      say("    partition %d, leader %d, replicas: %s, isrs: %s%s", p.id, p.leader,
          table.concat(p.replicas, ","), table.concat(p.isrs, ","),
          p.error and (", " .. p.error) or "")
    end
  end
  return table.concat(out, "\n") .. "\n"
end

return kcat
