-- Put back committed claims that Redis lost, each only if it is absent (so restoring is
-- idempotent and cannot race a worker into counting a claim twice). No limit is checked:
-- the ledger already granted these, and the counters must say so.
--
-- KEYS[1] granted hash, KEYS[2] spent hash; for claim i (0-based): KEYS[3 + 2i] the
-- mechanic's claims hash, KEYS[4 + 2i] the customer's hash.
-- ARGV, 8 per claim: mechanic, event, customer, cost cents, cap or '', cap bucket,
-- perks joined by ',', taken-at ms.
-- Returns the number of claims restored.
local restored = 0
for i = 0, #ARGV / 8 - 1 do
  local a = i * 8
  local mechanic, event, customer = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local cost, cap, bucket, perks, taken = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8]
  local claims_key, customer_key = KEYS[3 + 2 * i], KEYS[4 + 2 * i]
  if redis.call('HEXISTS', claims_key, event) == 0 then
    redis.call('HINCRBY', KEYS[1], mechanic, 1)
    redis.call('HINCRBY', KEYS[2], mechanic, cost)
    if cap ~= '' then
      redis.call('HINCRBY', customer_key, 'x|' .. mechanic .. '|' .. bucket, 1)
    end
    for perk in string.gmatch(perks, '[^,]+') do
      redis.call('HSETNX', customer_key, 'k|' .. perk, event)
    end
    redis.call('HSET', claims_key, event, cjson.encode({
      c = customer, m = cost, b = bucket, k = perks, x = cap, t = taken,
    }))
    restored = restored + 1
  end
end
return restored
