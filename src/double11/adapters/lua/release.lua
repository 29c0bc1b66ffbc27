-- Give back taken claims, exactly undoing what take.lua (or restore.lua) did.
--
-- A claim is released only if its record is still here (so releasing twice, or releasing a
-- claim never taken, changes nothing) and, when ARGV[1] is not '', only if it was last
-- taken or reused at or before ARGV[1] (server ms): reconcile passes its cutoff so that a
-- claim a retry has just reused is left alone.
--
-- KEYS[1] granted hash, KEYS[2] spent hash; for claim i (0-based): KEYS[3 + 2i] the
-- mechanic's claims hash, KEYS[4 + 2i] the customer's hash.
-- ARGV[1] cutoff ms or ''; then 2 per claim: mechanic, event.
-- Returns the number of claims released.
local cutoff = ARGV[1]
local released = 0
for i = 0, (#ARGV - 1) / 2 - 1 do
  local mechanic, event = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  local claims_key, customer_key = KEYS[3 + 2 * i], KEYS[4 + 2 * i]
  local record = redis.call('HGET', claims_key, event)
  if record then
    local claim = cjson.decode(record)
    if cutoff == '' or tonumber(claim.t) <= tonumber(cutoff) then
      redis.call('HINCRBY', KEYS[1], mechanic, -1)
      if claim.m ~= '0' then
        redis.call('HINCRBY', KEYS[2], mechanic, string.format('%d', -tonumber(claim.m)))
      end
      if claim.x ~= '' then
        redis.call('HINCRBY', customer_key, 'x|' .. mechanic .. '|' .. claim.b, -1)
      end
      for perk in string.gmatch(claim.k, '[^,]+') do
        if redis.call('HGET', customer_key, 'k|' .. perk) == event then
          redis.call('HDEL', customer_key, 'k|' .. perk)
        end
      end
      redis.call('HDEL', claims_key, event)
      released = released + 1
    end
  end
end
return released
