-- sessionkit RedisStore: helpers shared by every script (prepended at build time).
-- A session is a hash: `m:*` meta fields and `f:<name>` field map entries.

-- The one liveness rule: `exp` (a stored `m:exp`, or false when the field is absent) if it
-- is a time after `now`, else nil.
local function live_at(exp, now)
  local n = exp and tonumber(exp)
  if n and n > now then return exp end
  return nil
end

-- One HMGET of `key`'s `m:exp` and the meta fields named after it: returns the expiry if
-- the key is live at `now` (a session, alias or tombstone; else nil), and the values read
-- (`m[1]` is `m:exp`, then the others in order). A key holding no hash fails the script.
local function meta(key, now, ...)
  local m = redis.call('HMGET', key, 'm:exp', ...)
  return live_at(m[1], now), m
end

-- As `meta`, for keys that may hold something else than a hash: such a key reads as nil.
local function meta_or_nil(key, now, ...)
  local m = redis.pcall('HMGET', key, 'm:exp', ...)
  if type(m) ~= 'table' or m.err then return nil, nil end
  return live_at(m[1], now), m
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
  local exp, m = meta(key, now, 'm:dead')
  return exp ~= nil and not m[2]
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

-- What a move leaves under the old key `from`: with `grace` ('1') an alias to `to_hex`
-- carrying `token`, until `till` but never past the session's expiry `exp`; without it a
-- tombstone (see above).
local function left_by_move(from, to_hex, exp, now, grace, till, token, ms)
  if grace == '1' then
    if tonumber(exp) < tonumber(till) then till = exp end
    if tonumber(till) > now then
      redis.call('HSET', from, 'm:v', '1', 'm:exp', till, 'm:to', to_hex, 'm:tok', token)
      redis.call('PEXPIREAT', from, till)
    end
  else
    tombstone(from, to_hex, exp, now, ms)
  end
end

local function is_hex_key(s)
  return string.len(s) == 64 and not string.find(s, '[^0-9a-f]')
end

