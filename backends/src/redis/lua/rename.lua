-- rename (standalone): move a session to a fresh key, leaving an alias for the grace window.
-- KEYS[1] from; KEYS[2] to
-- ARGV: 1 now, 2 prefix, 3 to hex, 4 grace (1/0), 5 grace until, 6 token, 7 tombstone ms
-- Without grace the old key keeps a tombstone (`m:dead`): it loads as absent, but a delete
-- through it reports where the session went.
-- Returns 1 when moved, 0 when `from` holds no live session, 2 when `to` is taken.
local from, to = KEYS[1], KEYS[2]
local now = tonumber(ARGV[1])
local exp = live_exp(from, now)
if not exp or redis.call('HEXISTS', from, 'm:to') == 1 then return 0 end
if taken(to, now) then return 2 end
redis.call('RENAME', from, to)
if ARGV[4] == '1' then
  local till = ARGV[5]
  if tonumber(exp) < tonumber(till) then till = exp end
  if tonumber(till) > now then
    redis.call('HSET', from, 'm:v', '1', 'm:exp', till, 'm:to', ARGV[3], 'm:tok', ARGV[6])
    redis.call('PEXPIREAT', from, till)
  end
else
  tombstone(from, ARGV[3], exp, now, ARGV[7])
end
local oh = redis.call('HGET', to, 'm:oh')
if oh then index(ARGV[2] .. 'owner:{' .. oh .. '}', ARGV[3], exp, now) end
return 1
