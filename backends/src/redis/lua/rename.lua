-- rename (standalone): move a session to a fresh key, leaving an alias for the grace window.
-- KEYS[1] from; KEYS[2] to
-- ARGV: 1 now, 2 prefix, 3 to hex, 4 grace (1/0), 5 grace until, 6 token, 7 tombstone ms
-- Without grace the old key keeps a tombstone (`m:dead`): it loads as absent, but a delete
-- through it reports where the session went.
-- Returns 1 when moved, 0 when `from` holds no live session, 2 when `to` is taken.
local from, to = KEYS[1], KEYS[2]
local now = tonumber(ARGV[1])
local exp, m = meta(from, now, 'm:to')
if not exp or m[2] then return 0 end
if taken(to, now) then return 2 end
redis.call('RENAME', from, to)
left_by_move(from, ARGV[3], exp, now, ARGV[4], ARGV[5], ARGV[6], ARGV[7])
local oh = redis.call('HGET', to, 'm:oh')
if oh then index(ARGV[2] .. 'owner:{' .. oh .. '}', ARGV[3], exp, now) end
return 1
