-- create: store a session only if no live session or alias holds the key.
-- KEYS[1] session; KEYS[2] the owner's set (standalone only, when the record has an owner)
-- ARGV: now, expiry, member hex, has owner (1/0), owner, owner hash, then f:name/value pairs
-- Returns 1 when stored, 0 when the key is taken.
-- Commands on a free key: one HMGET, one HSET (meta and fields together), one PEXPIREAT.
local key = KEYS[1]
local now = tonumber(ARGV[1])
local live, held = meta(key, now, 'm:dead', 'm:v')
if live and not held[2] then return 0 end
-- Whatever else the key holds (an expired hash Redis has not dropped yet, a tombstone, a
-- hash of another layout version) goes; a free key has nothing to delete. Every hash the
-- scripts write carries `m:v` and `m:exp`.
if held[1] or held[2] or held[3] then redis.call('DEL', key) end
if tonumber(ARGV[2]) <= now then return 1 end
local head = {'m:v', '1', 'm:exp', ARGV[2], 'm:rev', '0'}
if ARGV[4] == '1' then
  head[#head + 1] = 'm:own'
  head[#head + 1] = ARGV[5]
  head[#head + 1] = 'm:oh'
  head[#head + 1] = ARGV[6]
  if KEYS[2] then index(KEYS[2], ARGV[3], ARGV[2], now) end
end
for i = 7, #ARGV do head[#head + 1] = ARGV[i] end
each_batch('HSET', key, head, 1, #head, 512)
redis.call('PEXPIREAT', key, ARGV[2])
return 1
