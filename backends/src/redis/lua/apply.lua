-- apply: merge a change set into a live session; never touches an absent key or an alias.
-- KEYS[1] session; KEYS[2] the new owner's set (standalone only, when the owner changes)
-- ARGV: 1 now, 2 prefix, 3 index here (1/0), 4 clear (1/0), 5 expiry or '', 6 owner op
--       ('' keep, '-' remove, '=' set), 7 owner, 8 owner hash, 9 member hex, 10 removal count,
--       11 operation count, then the f:names to remove, then the operations (f:name, kind,
--       a, b: see run_op), then f:name/value pairs to set
-- Returns 0 when gone, 1 when applied, {owner hash, expiry} when the caller must index, or
-- {code, name} when an operation failed (see run_op), having written nothing.
-- Commands: one HMGET reads the meta fields and every value an operation starts from, one
-- HSET writes every value and meta field, PEXPIREAT runs only when the expiry moves.
-- The owner index (standalone): `m:ox` records until when this session last made its owner
-- set live. While the session's expiry stays at or below it, a save leaves the set alone (no
-- SADD/PTTL/PEXPIREAT); past it, the set is extended to twice the session's remaining life
-- and `m:ox` moves with it, so a busy session pays for its index about once per lifetime.
local key = KEYS[1]
local now = tonumber(ARGV[1])
local removals = tonumber(ARGV[10])
local first_op = 12 + removals
local first_set = first_op + 4 * tonumber(ARGV[11])
local clear = ARGV[4] == '1'
-- What the one read asks for: the meta fields, then the stored value of each field an
-- operation runs on (unless the change set sets, removes or clears it first).
local want = {'m:exp', 'm:to', 'm:rev', 'm:oh', 'm:ox'}
local sets, removed, slot = {}, {}, {}
if first_set > first_op then
  for i = first_set, #ARGV, 2 do sets[ARGV[i]] = ARGV[i + 1] end
  for i = 12, first_op - 1 do removed[ARGV[i]] = true end
  if not clear then
    for i = first_op, first_set - 1, 4 do
      local name = ARGV[i]
      if sets[name] == nil and not removed[name] and slot[name] == nil then
        want[#want + 1] = name
        slot[name] = #want
      end
    end
  end
end
local got = {}
for i = 1, #want, 512 do
  local part = redis.call('HMGET', key, unpack(want, i, math.min(i + 511, #want)))
  for j = 1, #part do got[i + j - 1] = part[j] end
end
local stored_exp = got[1]
if not live_at(stored_exp, now) or got[2] then return 0 end
-- Every operation is worked out before anything is written: a failing one writes nothing.
local writes = {}
if first_set > first_op then
  local run_op = operations()
  local values, order = {}, {}
  for i = first_op, first_set - 1, 4 do
    local name = ARGV[i]
    local cur = values[name]
    if cur == nil then
      order[#order + 1] = name
      cur = sets[name]
      if cur == nil then
        if clear or removed[name] then cur = false else cur = got[slot[name]] end
      end
    end
    local value, code = run_op(cur, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
    if not value then return {code, string.sub(name, 3)} end
    values[name] = value
  end
  for _, name in ipairs(order) do
    writes[#writes + 1] = name
    writes[#writes + 1] = values[name]
  end
end
if clear then
  local doomed = {}
  for _, name in ipairs(redis.call('HKEYS', key)) do
    if string.sub(name, 1, 2) == 'f:' then doomed[#doomed + 1] = name end
  end
  each_batch('HDEL', key, doomed, 1, #doomed, 512)
end
if ARGV[6] == '-' then
  local doomed = {'m:own', 'm:oh', 'm:ox'}
  for i = 12, first_op - 1 do doomed[#doomed + 1] = ARGV[i] end
  each_batch('HDEL', key, doomed, 1, #doomed, 512)
else
  each_batch('HDEL', key, ARGV, 12, first_op - 1, 512)
end
-- The meta fields go with the set values, in the same HSET (one for up to 256 pairs).
local exp = stored_exp
local head = {'m:rev', string.format('%d', (tonumber(got[3]) or 0) + 1)}
if ARGV[5] ~= '' then
  exp = ARGV[5]
  head[#head + 1] = 'm:exp'
  head[#head + 1] = exp
end
if ARGV[6] == '=' then
  head[#head + 1] = 'm:own'
  head[#head + 1] = ARGV[7]
  head[#head + 1] = 'm:oh'
  head[#head + 1] = ARGV[8]
end
-- The owner index: decided before the write, so `m:ox` goes in the same HSET.
local result = 1
local oh = got[4]
if ARGV[6] == '-' then oh = nil elseif ARGV[6] == '=' then oh = ARGV[8] end
local index_till = nil
if oh and (ARGV[5] ~= '' or ARGV[6] == '=') then
  if ARGV[3] == '1' then
    local ox = tonumber(got[5])
    local e = tonumber(exp)
    if ARGV[6] == '=' or not ox or e > ox then
      index_till = string.format('%d', now + 2 * (e - now))
      head[#head + 1] = 'm:ox'
      head[#head + 1] = index_till
    end
  else
    -- Cluster: the client indexes in the owner's slot, after this script; `m:ox` is not
    -- used there (the script cannot know that trip succeeded).
    result = {oh, exp}
  end
end
-- Set values, then operation results (they start from a set value and win over it).
for i = first_set, #ARGV do head[#head + 1] = ARGV[i] end
for i = 1, #writes do head[#head + 1] = writes[i] end
each_batch('HSET', key, head, 1, #head, 512)
if index_till then
  index(KEYS[2] or (ARGV[2] .. 'owner:{' .. oh .. '}'), ARGV[9], index_till, now)
end
if exp ~= stored_exp then redis.call('PEXPIREAT', key, exp) end
return result
