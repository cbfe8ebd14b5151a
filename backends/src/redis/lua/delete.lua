-- delete: remove a session, saying what the key held, so a logout can follow an alias.
-- KEYS[1] session; ARGV: 1 now
-- Returns 0 when nothing live was there, 1 for a session (removed), or the target hex of an
-- alias or tombstone: an alias becomes a tombstone (`m:dead`, same target and expiry), so
-- every logout through this key, not only the first, follows the move.
local key = KEYS[1]
local now = tonumber(ARGV[1])
if redis.call('TYPE', key)['ok'] ~= 'hash' then
  redis.call('DEL', key)
  return 0
end
local exp = live_exp(key, now)
local to = redis.call('HGET', key, 'm:to')
if exp and to then
  redis.call('HDEL', key, 'm:tok')
  redis.call('HSET', key, 'm:dead', '1')
  return to
end
redis.call('DEL', key)
if not exp then return 0 end
return 1
