-- load: the session hash, and (standalone) the target of an alias in the same trip.
-- KEYS[1] session; ARGV: prefix, follow (1 = read an alias's target here)
-- Returns {} when absent, {hash} or {hash, target hash}; `false` (nil) marks a non-hash key.
local function read(key)
  local t = redis.call('TYPE', key)['ok']
  if t == 'none' then return {} end
  if t ~= 'hash' then return false end
  return redis.call('HGETALL', key)
end
local main = read(KEYS[1])
if ARGV[2] == '1' and main then
  local to = redis.call('HGET', KEYS[1], 'm:to')
  if to and is_hex_key(to) then
    return {main, read(ARGV[1] .. '{' .. to .. '}')}
  end
end
return {main}
