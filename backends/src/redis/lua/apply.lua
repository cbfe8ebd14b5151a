-- apply: merge a change set into a live session; never touches an absent key or an alias.
-- KEYS[1] session; KEYS[2] the new owner's set (standalone only, when the owner changes)
-- ARGV: 1 now, 2 prefix, 3 index here (1/0), 4 clear (1/0), 5 expiry or '', 6 owner op
--       ('' keep, '-' remove, '=' set), 7 owner, 8 owner hash, 9 member hex, 10 removal count,
--       11 operation count, then the f:names to remove, then the operations (f:name, kind,
--       a, b: see run_op), then f:name/value pairs to set
-- Returns 0 when gone, 1 when applied, {owner hash, expiry} when the caller must index, or
-- {code, name} when an operation failed (see run_op), having written nothing.
local key = KEYS[1]
local now = tonumber(ARGV[1])
if not live_exp(key, now) or redis.call('HEXISTS', key, 'm:to') == 1 then return 0 end
local removals = tonumber(ARGV[10])
local first_op = 12 + removals
local first_set = first_op + 4 * tonumber(ARGV[11])
-- Every operation is worked out before anything is written: a failing one writes nothing.
local results = {}
if first_set > first_op then
  local sets, removed, values, order = {}, {}, {}, {}
  for i = first_set, #ARGV, 2 do sets[ARGV[i]] = ARGV[i + 1] end
  for i = 12, first_op - 1 do removed[ARGV[i]] = true end
  for i = first_op, first_set - 1, 4 do
    local name = ARGV[i]
    local cur = values[name]
    if cur == nil then
      order[#order + 1] = name
      cur = sets[name]
      if cur == nil then
        if ARGV[4] == '1' or removed[name] then cur = false
        else cur = redis.call('HGET', key, name) end
      end
    end
    local value, code = run_op(cur, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
    if not value then return {code, string.sub(name, 3)} end
    values[name] = value
  end
  for _, name in ipairs(order) do
    results[#results + 1] = name
    results[#results + 1] = values[name]
  end
end
if ARGV[4] == '1' then
  local doomed = {}
  for _, name in ipairs(redis.call('HKEYS', key)) do
    if string.sub(name, 1, 2) == 'f:' then doomed[#doomed + 1] = name end
  end
  each_batch('HDEL', key, doomed, 1, #doomed, 512)
end
each_batch('HDEL', key, ARGV, 12, first_op - 1, 512)
each_batch('HSET', key, ARGV, first_set, #ARGV, 512)
each_batch('HSET', key, results, 1, #results, 512)
redis.call('HINCRBY', key, 'm:rev', 1)
local exp = redis.call('HGET', key, 'm:exp')
if ARGV[5] ~= '' then
  exp = ARGV[5]
  redis.call('HSET', key, 'm:exp', exp)
end
if ARGV[6] == '-' then
  redis.call('HDEL', key, 'm:own', 'm:oh')
elseif ARGV[6] == '=' then
  redis.call('HSET', key, 'm:own', ARGV[7], 'm:oh', ARGV[8])
end
local result = 1
local oh = redis.call('HGET', key, 'm:oh')
if oh and (ARGV[5] ~= '' or ARGV[6] == '=') then
  if ARGV[3] == '1' then
    index(KEYS[2] or (ARGV[2] .. 'owner:{' .. oh .. '}'), ARGV[9], exp, now)
  else
    result = {oh, exp}
  end
end
if ARGV[5] ~= '' then redis.call('PEXPIREAT', key, exp) end
return result
