-- create: store a session only if no live session or alias holds the key.
-- KEYS[1] session; KEYS[2] the owner's set (standalone only, when the record has an owner)
-- ARGV: now, expiry, member hex, has owner (1/0), owner, owner hash, then f:name/value pairs
-- Returns 1 when stored, 0 when the key is taken.
local key = KEYS[1]
local now = tonumber(ARGV[1])
if taken(key, now) then return 0 end
redis.call('DEL', key)
if tonumber(ARGV[2]) <= now then return 1 end
redis.call('HSET', key, 'm:v', '1', 'm:exp', ARGV[2], 'm:rev', '0')
if ARGV[4] == '1' then
  redis.call('HSET', key, 'm:own', ARGV[5], 'm:oh', ARGV[6])
  if KEYS[2] then index(KEYS[2], ARGV[3], ARGV[2], now) end
end
each_batch('HSET', key, ARGV, 7, #ARGV, 512)
redis.call('PEXPIREAT', key, ARGV[2])
return 1
