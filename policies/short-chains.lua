-- policies/short-chains.lua — a chain server policy: issue one-day chains,
-- never with more rights than the node's certificate had, and never a
-- pathlen (the nodes it serves cannot delegate further).

local LIFETIME = 86400

return {
  issue_chain = function(req)
    local g = req.grant
    g.lifetime = math.min(g.lifetime, LIFETIME)
    g.pathlen = nil
    return g
  end,
}
