-- swap (cluster rename): replace the old key by its alias, only if no save landed since the copy.
-- KEYS[1] from; ARGV: 1 now, 2 revision copied, 3 grace (1/0), 4 grace until, 5 to hex, 6 token,
--       7 tombstone ms (kept under the old key of a move without grace)
-- Returns 1 when swapped, 0 when `from` is gone, 3 when it changed since the copy.
local from = KEYS[1]
local now = tonumber(ARGV[1])
local exp = live_exp(from, now)
if not exp or redis.call('HEXISTS', from, 'm:to') == 1 then return 0 end
if (redis.call('HGET', from, 'm:rev') or '') ~= ARGV[2] then return 3 end
redis.call('DEL', from)
if ARGV[3] == '1' then
  local till = ARGV[4]
  if tonumber(exp) < tonumber(till) then till = exp end
  if tonumber(till) > now then
    redis.call('HSET', from, 'm:v', '1', 'm:exp', till, 'm:to', ARGV[5], 'm:tok', ARGV[6])
    redis.call('PEXPIREAT', from, till)
  end
else
  tombstone(from, ARGV[5], exp, now, ARGV[7])
end
return 1
