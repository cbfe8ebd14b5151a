-- delete: remove whatever a key holds, saying what it was, so a logout can follow an alias.
-- KEYS[1] session; ARGV: 1 now
-- Returns 0 when nothing live was there, 1 for a session, or the target hex of an alias.
local key = KEYS[1]
local now = tonumber(ARGV[1])
if redis.call('TYPE', key)['ok'] ~= 'hash' then
  redis.call('DEL', key)
  return 0
end
local exp = live_exp(key, now)
local to = redis.call('HGET', key, 'm:to')
redis.call('DEL', key)
if not exp then return 0 end
if to then return to end
return 1
