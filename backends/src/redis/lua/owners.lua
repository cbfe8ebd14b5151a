-- owners (standalone): one batch of an owner set, pruning the batch's stale members.
-- KEYS[1] owner set; ARGV: now, prefix, owner, SSCAN cursor, batch size, max hops
-- Returns {next cursor, live session hexes…}: the cursor is '0' once the walk is complete.
-- A call touches only what one SSCAN step returns (and the moves they lead through), so no
-- call holds the server for long, however many members the set has; the client calls
-- again with the cursor.
local now = tonumber(ARGV[1])

-- The hex of the live session of the owner that member `hex` leads to: itself, or where
-- the session moved since it was indexed (an alias or tombstone names it), or nil.
local function lead(hex)
  for _ = 1, tonumber(ARGV[6]) do
    if not is_hex_key(hex) then return nil end
    local k = ARGV[2] .. '{' .. hex .. '}'
    -- A member whose key holds something else than a hash is stale.
    local live, m = meta_or_nil(k, now, 'm:own', 'm:to')
    if not live then return nil end
    if not m[3] then
      if m[2] == ARGV[3] then return hex end
      return nil
    end
    hex = m[3]
  end
  return nil
end

local step = redis.call('SSCAN', KEYS[1], ARGV[4], 'COUNT', ARGV[5])
local out = {step[1]}
local stale = {}
for _, hex in ipairs(step[2]) do
  local live = lead(hex)
  if live then out[#out + 1] = live end
  if live ~= hex then stale[#stale + 1] = hex end
end
each_batch('SREM', KEYS[1], stale, 1, #stale, 512)
return out
