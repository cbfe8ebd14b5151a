-- sessionkit RedisStore: the operations of a save (increment, push, add, remove), following
-- byte for byte the rules of sessionkit's `Op` (session/src/op.rs). Values stay MessagePack
-- bytes: integers are read and written in rmp-serde's compact form and array elements are
-- kept as they are, never decoded and re-encoded. cmsgpack is not used: it turns `bin` into
-- `str`, may re-encode floats, and its numbers are doubles, which cannot add two i64s exactly.
-- Here an i64 is a pair (hi, lo) of 32-bit halves, each exact in a double.

-- Built only by a save that has operations: its tables and functions cost every call that
-- builds them (~2.5 µs of server time per script run, measured with redis-benchmark).
local function operations()
  local P32 = 4294967296
  local P31 = 2147483648

  -- `n` (at most 4) big-endian bytes of `s` from `at`, or nil past its end.
  local function be(s, at, n)
    if at + n - 1 > #s then return nil end
    local v = 0
    for i = at, at + n - 1 do v = v * 256 + string.byte(s, i) end
    return v
  end

  local function u16(v) return string.char(math.floor(v / 256), v % 256) end
  local function u32(v)
    return string.char(math.floor(v / 16777216), math.floor(v / 65536) % 256,
      math.floor(v / 256) % 256, v % 256)
  end

  local INT_WIDTH = {[0xcc] = 1, [0xcd] = 2, [0xce] = 4, [0xcf] = 8,
                     [0xd0] = 1, [0xd1] = 2, [0xd2] = 4, [0xd3] = 8}

  -- `s` as exactly one MessagePack integer: hi, lo; 'big' for a u64 above i64::MAX; nil if
  -- it is not an integer.
  local function read_int(s)
    local m = string.byte(s, 1)
    if not m then return nil end
    if #s == 1 and m < 0x80 then return 0, m end
    if #s == 1 and m >= 0xe0 then return -1, P32 + m - 256 end
    local w = INT_WIDTH[m]
    if not w or #s ~= w + 1 then return nil end
    if w == 8 then
      local hi, lo = be(s, 2, 4), be(s, 6, 4)
      if hi >= P31 then
        if m == 0xcf then return 'big' end
        hi = hi - P32
      end
      return hi, lo
    end
    local v = be(s, 2, w)
    if m >= 0xd0 then
      local half = 2 ^ (8 * w - 1)
      if v >= half then v = v - 2 * half end
    end
    local hi = math.floor(v / P32)
    return hi, v - hi * P32
  end

  -- The integer (hi, lo) in the shortest form, as rmp-serde writes an i64.
  local function write_int(hi, lo)
    if hi == 0 then
      if lo < 0x80 then return string.char(lo) end
      if lo < 0x100 then return string.char(0xcc, lo) end
      if lo < 0x10000 then return string.char(0xcd) .. u16(lo) end
      return string.char(0xce) .. u32(lo)
    end
    if hi > 0 then return string.char(0xcf) .. u32(hi) .. u32(lo) end
    if hi == -1 and lo >= P31 then
      local v = lo - P32
      if v >= -32 then return string.char(256 + v) end
      if v >= -128 then return string.char(0xd0, 256 + v) end
      if v >= -32768 then return string.char(0xd1) .. u16(65536 + v) end
      return string.char(0xd2) .. u32(lo)
    end
    return string.char(0xd3) .. u32(hi + P32) .. u32(lo)
  end

  -- Bytes after the marker of fixed-size values.
  local FIXED = {[0xc0] = 0, [0xc2] = 0, [0xc3] = 0, [0xcc] = 1, [0xd0] = 1, [0xcd] = 2,
                 [0xd1] = 2, [0xca] = 4, [0xce] = 4, [0xd2] = 4, [0xcb] = 8, [0xcf] = 8,
                 [0xd3] = 8, [0xd4] = 2, [0xd5] = 3, [0xd6] = 5, [0xd7] = 9, [0xd8] = 17}
  -- Length-prefixed values: width of the length, bytes between it and the data.
  local SIZED = {[0xc4] = {1, 0}, [0xd9] = {1, 0}, [0xc5] = {2, 0}, [0xda] = {2, 0},
                 [0xc6] = {4, 0}, [0xdb] = {4, 0}, [0xc7] = {1, 1}, [0xc8] = {2, 1},
                 [0xc9] = {4, 1}}
  -- Arrays and maps with a length: its width, elements per entry.
  local NESTED = {[0xdc] = {2, 1}, [0xdd] = {4, 1}, [0xde] = {2, 2}, [0xdf] = {4, 2}}

  -- The position just after the one well-formed value starting at `pos`, or nil.
  local function value_end(s, pos)
    local pending = 1
    while pending > 0 do
      pending = pending - 1
      local m = string.byte(s, pos)
      if not m then return nil end
      pos = pos + 1
      if m < 0x80 or m >= 0xe0 then
        -- a fixint
      elseif m < 0x90 then pending = pending + 2 * (m - 0x80)
      elseif m < 0xa0 then pending = pending + (m - 0x90)
      elseif m < 0xc0 then pos = pos + (m - 0xa0)
      elseif FIXED[m] then pos = pos + FIXED[m]
      elseif SIZED[m] then
        local n = be(s, pos, SIZED[m][1])
        if not n then return nil end
        pos = pos + SIZED[m][1] + SIZED[m][2] + n
      elseif NESTED[m] then
        local n = be(s, pos, NESTED[m][1])
        if not n then return nil end
        pos = pos + NESTED[m][1]
        pending = pending + NESTED[m][2] * n
      else
        return nil
      end
      if pos > #s + 1 then return nil end
    end
    return pos
  end

  -- The elements of `s`, which must be exactly one well-formed array, or nil.
  local function array_items(s)
    local m = string.byte(s, 1)
    local count, pos
    if not m then return nil
    elseif m >= 0x90 and m <= 0x9f then count, pos = m - 0x90, 2
    elseif m == 0xdc then count, pos = be(s, 2, 2), 4
    elseif m == 0xdd then count, pos = be(s, 2, 4), 6
    else return nil end
    if not count then return nil end
    local items = {}
    for i = 1, count do
      local after = value_end(s, pos)
      if not after then return nil end
      items[i] = string.sub(s, pos, after - 1)
      pos = after
    end
    if pos ~= #s + 1 then return nil end
    return items
  end

  local function write_array(items)
    local n = #items
    local head
    if n < 16 then head = string.char(0x90 + n)
    elseif n < 0x10000 then head = string.char(0xdc) .. u16(n)
    else head = string.char(0xdd) .. u32(n) end
    return head .. table.concat(items)
  end

  -- The value after one operation on `cur` (false: absent), or nil and a reply code:
  -- 2 not an integer, 3 not an array, 4 overflow, 5 unknown operation.
  -- Kinds: 'i' increment by (a = high 32 bits, signed; b = low 32 bits), 'p' push a
  -- (b = the bound, or ''), 'a' add a, 'r' remove a.
  local function run_op(cur, kind, a, b)
    if kind == 'i' then
      local hi, lo = 0, 0
      if cur then
        hi, lo = read_int(cur)
        if hi == nil then return nil, 2 end
        if hi == 'big' then return nil, 4 end
      end
      lo = lo + tonumber(b)
      local carry = 0
      if lo >= P32 then lo, carry = lo - P32, 1 end
      hi = hi + tonumber(a) + carry
      if hi >= P31 or hi < -P31 then return nil, 4 end
      return write_int(hi, lo)
    end
    local items = {}
    if cur then
      items = array_items(cur)
      if not items then return nil, 3 end
    end
    if kind == 'p' then
      if b == '' or #items < tonumber(b) then items[#items + 1] = a end
    elseif kind == 'a' then
      for _, item in ipairs(items) do
        if item == a then return write_array(items) end
      end
      items[#items + 1] = a
    elseif kind == 'r' then
      local kept = {}
      for _, item in ipairs(items) do
        if item ~= a then kept[#kept + 1] = item end
      end
      items = kept
    else
      return nil, 5
    end
    return write_array(items)
  end

  return run_op
end
