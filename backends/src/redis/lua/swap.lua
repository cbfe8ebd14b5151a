-- swap (cluster rename): replace the old key by its alias, only if no save landed since the copy.
-- KEYS[1] from; ARGV: 1 now, 2 revision copied, 3 grace (1/0), 4 grace until, 5 to hex, 6 token,
--       7 tombstone ms (kept under the old key of a move without grace)
-- Returns 1 when swapped, 0 when `from` is gone, 3 when it changed since the copy.
local from = KEYS[1]
local now = tonumber(ARGV[1])
local exp, m = meta(from, now, 'm:to', 'm:rev')
if not exp or m[2] then return 0 end
if (m[3] or '') ~= ARGV[2] then return 3 end
redis.call('DEL', from)
left_by_move(from, ARGV[5], exp, now, ARGV[3], ARGV[4], ARGV[6], ARGV[7])
return 1
