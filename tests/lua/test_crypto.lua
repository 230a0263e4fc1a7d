-- kafkacrypto.crypto: primitives over opaque handles. Secrets are made in C
-- (or read from the node's files) and never come out; a script cannot put
-- chosen bytes into a key either. (tests/unit/test_variant.c checks that
-- producer keys with known bytes do not leak through a variant's hooks.)
local lu = require "luaunit"
local kafkacrypto = require "kafkacrypto"
local crypto = require "kafkacrypto.crypto"
local h = require "helpers"

TestCrypto = {}

local function provisioned(dir, node, role)
  local cap = kafkacrypto.log.capture()
  local ok, err = pcall(kafkacrypto.provision, { node_id = node, role = role, dir = dir,
    rot_password = "a root password for tests", provisioning_password = "provisioning" })
  cap:stop()
  assert(ok, err)
  return dir .. "/" .. node
end

-- Every string reachable from the values (tables walked).
local function strings_of(values, out)
  out = out or {}
  for _, v in pairs(values) do
    if type(v) == "string" then out[#out + 1] = v
    elseif type(v) == "table" then strings_of(v, out) end
  end
  return out
end

local function assert_no_secret(outputs, secrets)
  for _, s in ipairs(strings_of(outputs)) do
    for name, secret in pairs(secrets) do
      lu.assertNil(s:find(secret, 1, true), "an output contains " .. name)
    end
  end
end

function TestCrypto:test_x25519_agreement_and_secretbox()
  local a, b = crypto.x25519(), crypto.x25519()
  lu.assertEquals(#a:public(), 32)
  lu.assertNotEquals(a:public(), b:public())
  local ka, kb = a:shared(b:public()), b:shared(a:public())
  local sealed = crypto.secretbox_seal(ka, "payload")
  lu.assertEquals(#sealed, 24 + 16 + 7)
  lu.assertEquals(crypto.secretbox_open(kb, sealed), "payload")
  -- derived keys agree on both sides and differ by context
  local da, db = ka:derive("ctx"), kb:derive("ctx")
  lu.assertEquals(crypto.secretbox_open(db, crypto.secretbox_seal(da, "x")), "x")
  local other = crypto.secretbox_open(kb:derive("other"), crypto.secretbox_seal(da, "x"))
  lu.assertNil(other)
  -- keyed BLAKE2b agrees too (a MAC, not the key)
  lu.assertEquals(crypto.blake2b("m", 32, ka), crypto.blake2b("m", 32, kb))
  lu.assertNotEquals(crypto.blake2b("m", 32, ka), crypto.blake2b("m"))
end

function TestCrypto:test_tampered_or_wrong_key_boxes_fail()
  local k = crypto.key()
  local sealed = crypto.secretbox_seal(k, "payload")
  for i = 1, #sealed, 7 do
    local t = sealed:sub(1, i - 1) .. string.char((sealed:byte(i) + 1) % 256) .. sealed:sub(i + 1)
    local p, why = crypto.secretbox_open(k, t)
    lu.assertNil(p)
    lu.assertStrContains(why, "does not open")
  end
  lu.assertNil(crypto.secretbox_open(crypto.key(), sealed))
  local p, why = crypto.secretbox_open(k, sealed:sub(1, 39))
  lu.assertNil(p)
  lu.assertStrContains(why, "too short")
  -- the same for sealed keys and keysets
  local inner = crypto.key()
  local sk = crypto.seal_key(k, inner)
  lu.assertNil(crypto.open_key(k, sk:sub(1, -2) .. "x"))
  lu.assertNil(crypto.open_key(crypto.key(), sk))
  local ks = crypto.keyset { 7 }
  local sks = crypto.seal_keys(k, ks)
  -- a byte changed (set to 0 it would be unchanged 1 time in 256)
  lu.assertNil(crypto.open_keys(k, sks:sub(1, 30) .. string.char((sks:byte(31) + 1) % 256)
                                   .. sks:sub(32)))
end

function TestCrypto:test_key_material_boxes_are_apart_from_data_boxes()
  -- sealed keys and keysets never open as data (their bytes would show) ...
  local k, inner, ks = crypto.key(), crypto.key(), crypto.keyset { 1, 2 }
  lu.assertNil(crypto.secretbox_open(k, crypto.seal_key(k, inner)))
  lu.assertNil(crypto.secretbox_open(k, crypto.seal_keys(k, ks)))
  lu.assertNil(crypto.secretbox_open(k:derive(""), crypto.seal_keys(k, ks)))
  -- ... and data a script sealed never opens as key material (chosen bytes)
  local pairs_ = crypto.pack { 1, crypto.bin(("a"):rep(32)) }
  lu.assertNil(crypto.open_keys(k, crypto.secretbox_seal(k, pairs_)))
  lu.assertNil(crypto.open_key(k, crypto.secretbox_seal(k, ("K"):rep(32))))
  -- a key sealed as a key opens as a key, not as a keyset, and vice versa
  local as_keyset, why = crypto.open_keys(k, crypto.seal_key(k, inner))
  lu.assertNil(as_keyset)
  lu.assertStrContains(why, "opened, but")
  local as_key, why2 = crypto.open_key(k, crypto.seal_keys(k, ks))
  lu.assertNil(as_key)
  lu.assertStrContains(why2, "not a 32-byte key")
end

function TestCrypto:test_keys_and_keysets_travel_sealed()
  local k = crypto.key()
  local inner = crypto.key()
  local reopened = crypto.open_key(k, crypto.seal_key(k, inner))
  -- same key: same MAC
  lu.assertEquals(crypto.blake2b("m", 32, reopened), crypto.blake2b("m", 32, inner))
  lu.assertNotEquals(crypto.blake2b("m", 32, crypto.key()), crypto.blake2b("m", 32, inner))
  -- an opened key is released like any other (wipe, then the collector)
  reopened:wipe()
  reopened = crypto.open_key(k, crypto.seal_key(k, inner))
  reopened = nil
  collectgarbage()
  local ks = crypto.keyset { 5, ("i"):rep(32), -3 }
  lu.assertEquals(#ks, 3)
  lu.assertEquals(ks:indices(), { 5, ("i"):rep(32), -3 })
  local back = crypto.open_keys(k, crypto.seal_keys(k, ks))
  lu.assertEquals(back:indices(), ks:indices())
  -- the box holds nonce || secretbox(mp([ki, bin(S), ...])): 3 x (1 + 2 + 32) + indices
  lu.assertEquals(#crypto.seal_keys(k, ks), 24 + 16 + 1 + 3 * 34 + 1 + 34 + 1)
  ks:wipe()
  lu.assertEquals(#ks, 0)
  lu.assertStrContains(h.error_of(crypto.seal_keys, k, ks), "argument 2 (keyset): it is empty")
end

function TestCrypto:test_signing_keys_of_a_crypto_file_and_a_node()
  local dir = h.tmpdir()
  local base = provisioned(dir, "signer", "producer")
  local cap = kafkacrypto.log.capture()   -- the .crypto file's PQ entries draw warnings
  local before = h.read_file(base .. ".crypto")
  local keys = crypto.signing_keys(base .. ".crypto")
  lu.assertEquals(h.read_file(base .. ".crypto"), before)   -- only read
  lu.assertEquals(#keys, 1)
  local pk = keys[1]:public()
  lu.assertEquals(#pk, 32)
  lu.assertEquals(keys[1]:index(), 1)
  local signed = keys[1]:sign("message")
  lu.assertEquals(#signed, 64 + 7)
  lu.assertEquals(crypto.verify(pk, signed), "message")
  local bad, why = crypto.verify(pk, signed:sub(1, 10) .. "X" .. signed:sub(12))
  lu.assertNil(bad)
  lu.assertStrContains(why, "does not verify")
  lu.assertNil(crypto.verify(crypto.x25519():public(), signed))
  -- the node's own handles are the same keys, and die with the node
  local node = kafkacrypto.new { config = base .. ".config" }
  local nkeys = crypto.signing_keys(node)
  lu.assertEquals(nkeys[1]:public(), pk)
  lu.assertEquals(crypto.verify(pk, nkeys[1]:sign("m")), "m")
  node:close()
  cap:stop()
  lu.assertStrContains(h.error_of(nkeys[1].sign, nkeys[1], "m"), "closed")
  h.rmtree(dir)
end

function TestCrypto:test_no_function_returns_secret_bytes()
  local dir = h.tmpdir()
  local base = provisioned(dir, "secretive", "prodcon")
  -- the test may read the file; scripts never need to
  local file = crypto.unpack(h.read_file(base .. ".crypto"))
  local secrets = {}
  for i, sk in ipairs(file[2]) do
    if type(sk) == "string" and #sk == 64 then
      secrets["signing secret " .. i] = sk
      secrets["seed " .. i] = sk:sub(1, 32)
    end
  end
  secrets["opaque-value key"] = file[3]
  lu.assertNotNil(secrets["seed 1"])
  local k = crypto.key()
  local ks = crypto.keyset { 1, 2 }
  local cap = kafkacrypto.log.capture()
  local sk = crypto.signing_keys(base .. ".crypto")[1]
  cap:stop()
  local x = crypto.x25519()
  local outputs = {
    sk:public(), sk:sign("m"), sk:sign(""), tostring(sk),
    x:public(), tostring(x), tostring(x:shared(crypto.x25519():public())),
    tostring(k), tostring(k:derive("c")), crypto.seal_key(k, k), crypto.seal_key(k:derive("c"), k),
    crypto.secretbox_seal(k, ""), crypto.blake2b("", 64, k),
    crypto.seal_keys(k, ks), tostring(ks), ks:indices(), #ks,
    crypto.pack { 1, "a" }, crypto.random(64),
  }
  assert_no_secret(outputs, secrets)
  -- and tostring never shows bytes: it is the same text for any key
  lu.assertEquals(tostring(k), tostring(crypto.key()))
  lu.assertEquals(tostring(x), tostring(crypto.x25519()))
  -- the handles are closed boxes from Lua
  lu.assertEquals(getmetatable(k), "kafkacrypto.crypto handle")
  lu.assertStrContains(h.error_of(setmetatable, k, {}), "table expected")
  lu.assertNil(k.k)
  k:wipe()
  lu.assertEquals(tostring(k), "kafkacrypto key (wiped)")
  lu.assertStrContains(h.error_of(crypto.secretbox_seal, k, "x"), "argument 1 (key): the key handle has been wiped")
  x:wipe()
  lu.assertStrContains(h.error_of(x.public, x), "wiped")
  h.rmtree(dir)
end

function TestCrypto:test_wrong_types_and_lengths_name_the_argument()
  local k, x = crypto.key(), crypto.x25519()
  local cases = {
    { crypto.secretbox_seal, { "k", "p" }, "crypto.secretbox_seal: argument 1 (key): expected a key handle, got string" },
    { crypto.secretbox_seal, { k, 5 }, "argument 2 (plaintext): expected a string, got number" },
    { crypto.secretbox_open, { x, "s" }, "argument 1 (key): expected a key handle, got an x25519 handle" },
    { crypto.seal_key, { k, "raw key bytes" }, "argument 2 (sealed_key): expected a key handle" },
    { crypto.seal_keys, { k, k }, "argument 2 (keyset): expected a keyset handle, got a key handle" },
    { x.shared, { x, ("p"):rep(31) }, "argument 2 (peer_public): expected 32 bytes, got 31" },
    { x.shared, { k, ("p"):rep(32) }, "argument 1 (self): expected an x25519 handle, got a key handle" },
    { x.shared, { x, ("\0"):rep(32) }, "low-order point" },
    { k.derive, { k, nil }, "argument 2 (context): expected a string, got nil" },
    { crypto.verify, { ("p"):rep(31), "s" }, "argument 1 (public_key)" },
    { crypto.verify, { ("p"):rep(32), {} }, "argument 2 (signed): expected a string, got table" },
    { crypto.blake2b, { "d", 65 }, "argument 2 (size): expected an integer from 16 to 64" },
    { crypto.blake2b, { "d", 32, "a string key" }, "argument 3 (key): expected a key handle" },
    { crypto.random, { 0 }, "argument 1 (n): expected an integer from 1 to 65536" },
    { crypto.random, { "8" }, "argument 1 (n): expected a number, got string" },
    { crypto.signing_keys, { 42 }, "argument 1 (source): expected a kafkacrypto node or a .crypto file name" },
    { crypto.signing_keys, { "/nonexistent/dir/x.crypto" }, "crypto.signing_keys: file /nonexistent/dir/x.crypto: cannot open" },
    { crypto.pack, { { f = print } }, "argument 1 (value.f: cannot pack function)" },
    { crypto.pack, { { k } }, "value[1]: cannot pack a key handle" },
    { crypto.unpack, { 5 }, "argument 1 (data): expected a string, got number" },
    { crypto.keyset, { {} }, "argument 1 (indices): expected 1 to 256 key indices, got 0" },
    { crypto.keyset, { { 1, 1 } }, "entry 2: expected an integer or a string of at most 64 bytes, each once" },
    { crypto.keyset, { { 1.5 } }, "entry 1: expected an integer" },
    { crypto.keyset, { "1" }, "argument 1 (indices): expected a list of key indices, got string" },
  }
  for i, c in ipairs(cases) do
    local msg = h.error_of(c[1], unpack(c[2], 1, 3))
    lu.assertNotNil(msg, "case " .. i .. " did not fail")
    lu.assertStrContains(msg, c[3])
  end
  -- a cycle is caught by the depth limit
  local t = {}
  t[1] = t
  lu.assertStrContains(h.error_of(crypto.pack, t), "nested deeper than")
  -- a table shared at every level (100^20 elements) is refused once the
  -- output passes the limit, not after building it
  local shared = { "x" }
  for level = 1, 20 do
    local up = {}
    for i = 1, 100 do up[i] = shared end
    shared = up
  end
  local t0 = os.clock()
  lu.assertStrContains(h.error_of(crypto.pack, shared), "larger than 16777216 bytes")
  lu.assertTrue(os.clock() - t0 < 5)
end

function TestCrypto:test_msgpack_strict_and_upstream_typed()
  -- strings are str, crypto.bin / kafkacrypto.bytes are bin, null is nil
  lu.assertEquals(crypto.pack("ab"), "\162ab")
  lu.assertEquals(crypto.pack(crypto.bin("ab")), "\196\2ab")
  lu.assertEquals(crypto.pack(kafkacrypto.bytes("ab")), "\196\2ab")
  lu.assertEquals(crypto.pack { 1, -1, 2.5, true, crypto.null }, "\149\1\255\203\64\4\0\0\0\0\0\0\195\192")
  lu.assertEquals(crypto.pack {}, "\144")
  lu.assertEquals(crypto.pack { a = 1 }, "\129\161a\1")
  -- raw=True: str and bin both come back as strings; nil as crypto.null
  local v = crypto.unpack("\147\162ab\196\2cd\192")
  lu.assertEquals(v, { "ab", "cd", crypto.null })
  lu.assertEquals(crypto.unpack(crypto.pack { a = { 1, 2 } }), { a = { 1, 2 } })
  -- strict: one object, no truncation, size guards, no ext, exact integers
  local bad = {
    { "\145\1\1", "unexpected bytes after" }, { "\146\1", nil }, { "\221\255\255\255\255", nil },
    { "\212\1\0", "ext" }, { "\207\255\255\255\255\255\255\255\255", "2^53" },
    { "", nil }, { "\129\144\1", "map key" }, { "\129\203\127\248\0\0\0\0\0\0\1", "NaN" },
  }
  for _, b in ipairs(bad) do
    local r, why = crypto.unpack(b[1])
    lu.assertNil(r)
    lu.assertIsString(why)
    if b[2] then lu.assertStrContains(why, b[2]) end
  end
  local r, why = crypto.unpack(crypto.pack(("x"):rep(100)), 50)
  lu.assertNil(r)
  lu.assertStrContains(why, "more than the limit of 50")
end

function TestCrypto:test_hashes_and_random()
  -- SHA-256("abc") and BLAKE2b-256("") (FIPS 180-2, RFC 7693 test values)
  local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end
  lu.assertEquals(hex(crypto.sha256("abc")),
                  "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
  lu.assertEquals(hex(crypto.blake2b("")),
                  "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8")
  lu.assertEquals(#crypto.blake2b("", 64), 64)
  lu.assertEquals(#crypto.random(17), 17)
  lu.assertNotEquals(crypto.random(32), crypto.random(32))
  lu.assertTrue(crypto.equal("abc", "abc"))
  lu.assertFalse(crypto.equal("abc", "abd"))
  lu.assertFalse(crypto.equal("abc", "ab"))
end
