-- sessionkit RedisStore: helpers shared by every script (prepended at build time).
-- A session is a hash: `m:*` meta fields and `f:<name>` field map entries.

-- The expiry (as the stored string) of the live session or alias under `key`, or nil.
local function live_exp(key, now)
  local e = redis.call('HGET', key, 'm:exp')
  if e then
    local n = tonumber(e)
    if n and n > now then return e end
  end
  return nil
end

-- Adds `member` to an owner set and keeps the set alive at least until `exp`.
local function index(set, member, exp, now)
  redis.call('SADD', set, member)
  local n = exp and tonumber(exp)
  if n and n > now then
    local ttl = redis.call('PTTL', set)
    if ttl < 0 or now + ttl < n then
      redis.call('PEXPIREAT', set, exp)
    end
  end
end

-- Runs `cmd key list[first..last]` in slices, so huge sessions stay under Lua's stack limit.
local function each_batch(cmd, key, list, first, last, step)
  local i = first
  while i <= last do
    local j = math.min(i + step - 1, last)
    redis.call(cmd, key, unpack(list, i, j))
    i = j + 1
  end
end

-- Whether `key` holds a live session or alias (a tombstone does not hold its key).
local function taken(key, now)
  return live_exp(key, now) ~= nil and redis.call('HEXISTS', key, 'm:dead') == 0
end

-- Leaves a tombstone under the old key of a move without grace: it names the new key for a
-- delete to follow, for `ms` but never past the session's expiry `exp`, and never resolves.
local function tombstone(key, to_hex, exp, now, ms)
  local till = now + tonumber(ms)
  if tonumber(exp) < till then till = tonumber(exp) end
  if till > now then
    redis.call('HSET', key, 'm:v', '1', 'm:exp', tostring(till), 'm:to', to_hex, 'm:dead', '1')
    redis.call('PEXPIREAT', key, till)
  end
end

local function is_hex_key(s)
  return string.len(s) == 64 and not string.find(s, '[^0-9a-f]')
end

