-- index (cluster): add a session to its owner's set, which lives in another slot.
-- KEYS[1] owner set; ARGV: now, member hex, expiry or '' (unknown yet)
index(KEYS[1], ARGV[2], ARGV[3] ~= '' and ARGV[3] or nil, tonumber(ARGV[1]))
return 1
