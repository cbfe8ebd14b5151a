-- index (cluster): add a session to its owner's set, which lives in another slot.
-- KEYS[1] owner set; ARGV: now, member hex, the session's expiry
-- The set is kept alive until the expiry (never added to without one), so every owner set
-- has a TTL. A session already expired is not added.
local now = tonumber(ARGV[1])
local exp = tonumber(ARGV[3])
if not exp or exp <= now then return 0 end
index(KEYS[1], ARGV[2], ARGV[3], now)
return 1
