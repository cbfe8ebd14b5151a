-- delete: remove a session, saying what the key held, so a logout can follow an alias.
-- KEYS[1] session; ARGV: 1 now
-- Returns 0 when nothing live was there, 1 for a session (removed), or the target hex of an
-- alias or tombstone: an alias becomes a tombstone (`m:dead`, same target and expiry), so
-- every logout through this key, not only the first, follows the move.
local key = KEYS[1]
local now = tonumber(ARGV[1])
-- One read; a key that does not hold a hash answers it with an error, and is removed.
local live, m = meta_or_nil(key, now, 'm:to')
if not m then
  redis.call('DEL', key)
  return 0
end
if live and m[2] then
  redis.call('HDEL', key, 'm:tok')
  redis.call('HSET', key, 'm:dead', '1')
  return m[2]
end
redis.call('DEL', key)
if live then return 1 end
return 0
