-- put (cluster rename): write a copied session hash under a fresh key.
-- KEYS[1] to; ARGV: 1 now, 2 only if absent (1/0), 3 expiry, then name/value pairs
-- Returns 1 when written, 2 when `to` is taken.
local now = tonumber(ARGV[1])
if ARGV[2] == '1' and taken(KEYS[1], now) then return 2 end
redis.call('DEL', KEYS[1])
each_batch('HSET', KEYS[1], ARGV, 4, #ARGV, 512)
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
