-- owners (standalone): the live sessions of an owner set, pruning every stale member.
-- KEYS[1] owner set; ARGV: now, prefix, owner
local now = tonumber(ARGV[1])
local keep = {}
for _, hex in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local ok = false
  if is_hex_key(hex) then
    local k = ARGV[2] .. '{' .. hex .. '}'
    if redis.call('TYPE', k)['ok'] == 'hash' then
      local m = redis.call('HMGET', k, 'm:own', 'm:exp', 'm:to')
      local e = m[2] and tonumber(m[2]) or nil
      ok = m[1] == ARGV[3] and e ~= nil and e > now and not m[3]
    end
  end
  if ok then keep[#keep + 1] = hex else redis.call('SREM', KEYS[1], hex) end
end
return keep
