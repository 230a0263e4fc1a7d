-- bound_reply: a key-exchange variant whose replies are bound to the
-- requester's signing key (see README.md in this directory).
--
-- Request  = mp(["bound-reply/1", bin(chain), bin(sign(body))])
--   body   = mp(["bound-reply/1", root, bin(E_c), bin(nonce), expires])
-- Reply    = mp(["bound-reply/1", bin(chain), bin(sign(body'))])
--   body'  = mp(["bound-reply/1", root, bin(fp), bin(nonce), bin(E_p), bin(box), expires])
-- where chain is the sender's own certificate chain (checked against the
-- receiver's trust lists for the root and for usage key-encrypt-request,
-- resp. key-encrypt), fp = BLAKE2b-256 of the requester's signing public
-- key, and box = secretbox of the producer keys under
--   K = BLAKE2b(mp(["bound-reply/1", root, fp, E_c, E_p, nonce]), key = X25519(e_p, E_c)).
-- A reply only opens for the holder of e_c whose signing key has
-- fingerprint fp: the transcript binds the keys to that identity.
--
-- Everything secret stays behind crypto handles: the ephemeral secrets, the
-- derived keys and the producer keys (req.keys, a keyset).

local TAG = "bound-reply/1"
local MAX_PENDING = 64        -- outstanding requests remembered (oldest dropped)
local MAX_MESSAGE = 65536

local pending, order = {}, {} -- nonce -> { e, root, fp }, oldest first

local function fingerprint(pk) return crypto.blake2b(pk, 32) end

-- The first signing key that has a chain: (key handle, chain) or nil.
local function identity(ctx)
  for i, sk in ipairs(ctx.signing_keys) do
    local chain = ctx.own_chain(i)
    if chain then return sk, chain end
  end
end

-- Envelope: checks the tag and the sender's chain, returns the signed body
-- as a list and the sender's verified public key.
local function open_envelope(ctx, bytes, usage, fields)
  local msg = crypto.unpack(bytes, MAX_MESSAGE)
  if type(msg) ~= "table" or msg[1] ~= TAG or #msg ~= 3 or type(msg[2]) ~= "string"
      or type(msg[3]) ~= "string" then
    return nil, "not a " .. TAG .. " message"
  end
  local sender, why = ctx.check_chain(msg[2], usage)
  if not sender then return nil, "sender's chain: " .. why end
  local signed = crypto.verify(sender.key, msg[3])
  if not signed then return nil, "signature does not verify with the chain's key" end
  local body = crypto.unpack(signed, MAX_MESSAGE)
  if type(body) ~= "table" or #body ~= fields or body[1] ~= TAG or body[2] ~= ctx.root then
    return nil, "body is not a " .. TAG .. " body for root " .. ctx.root
  end
  local expires = body[fields]
  if type(expires) ~= "number" or expires < ctx.now then return nil, "expired" end
  return body, sender.key
end

local function envelope(sk, chain, body)
  return crypto.pack { TAG, crypto.bin(chain), crypto.bin(sk:sign(crypto.pack(body))) }
end

local function transcript(root, fp, e_c, e_p, nonce)
  return crypto.pack { TAG, root, crypto.bin(fp), crypto.bin(e_c), crypto.bin(e_p), crypto.bin(nonce) }
end

local function remember(nonce, entry)
  pending[nonce] = entry
  order[#order + 1] = nonce
  if #order > MAX_PENDING then
    local old = table.remove(order, 1)
    if pending[old] then pending[old].e:wipe() end
    pending[old] = nil
  end
end

local variant = {}

function variant.make_request(ctx)
  local sk, chain = identity(ctx)
  if not sk then return nil, "this node has no certificate chain to prove who it is" end
  local e, nonce = crypto.x25519(), crypto.random(32)
  remember(nonce, { e = e, root = ctx.root, fp = fingerprint(sk:public()) })
  return envelope(sk, chain, { TAG, ctx.root, crypto.bin(e:public()), crypto.bin(nonce),
                               ctx.now + ctx.maxage })
end

function variant.answer_request(ctx, req)
  local body, requester = open_envelope(ctx, req.value, "key-encrypt-request", 5)
  if not body then return nil, "request: " .. requester end
  local e_c, nonce = body[3], body[4]
  if type(e_c) ~= "string" or #e_c ~= 32 or type(nonce) ~= "string" or #nonce ~= 32 then
    return nil, "request: malformed ephemeral key or nonce"
  end
  local sk, chain = identity(ctx)
  if not sk then return nil, "this node has no certificate chain to prove who it is" end
  local fp = fingerprint(requester)
  local e = crypto.x25519()
  local k = e:shared(e_c):derive(transcript(ctx.root, fp, e_c, e:public(), nonce))
  local reply = envelope(sk, chain, { TAG, ctx.root, crypto.bin(fp), crypto.bin(nonce),
                                      crypto.bin(e:public()), crypto.bin(crypto.seal_keys(k, req.keys)),
                                      ctx.now + ctx.maxage })
  k:wipe()
  e:wipe()
  return reply
end

function variant.accept_reply(ctx, reply)
  local body, why = open_envelope(ctx, reply.value, "key-encrypt", 7)
  if not body then return nil, "reply: " .. why end
  local fp, nonce, e_p, box = body[3], body[4], body[5], body[6]
  local p = type(nonce) == "string" and pending[nonce]
  if not p or p.root ~= ctx.root then return nil, "reply: not for an outstanding request of ours" end
  if type(fp) ~= "string" or not crypto.equal(fp, p.fp) then
    return nil, "reply: bound to another requester's key"
  end
  if type(e_p) ~= "string" or #e_p ~= 32 or type(box) ~= "string" then
    return nil, "reply: malformed ephemeral key or box"
  end
  local k = p.e:shared(e_p):derive(transcript(ctx.root, fp, p.e:public(), e_p, nonce))
  local keys, err = crypto.open_keys(k, box)
  k:wipe()
  if not keys then return nil, "reply: " .. err end
  p.e:wipe()
  pending[nonce] = nil   -- a replay of this reply now finds nothing
  return keys
end

return variant
