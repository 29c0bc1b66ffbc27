-- Take every claim of one event on its mechanic's limits, each all or nothing.
--
-- The rule is domain/limits.py's: a claim already recorded for (event, mechanic) is taken
-- (a retry reuses it); otherwise the per-customer cap first (a customer at their cap must
-- not use up the quota), then the quota, then the budget; only if all allow is anything
-- changed. Money is integer cents, so no float ever decides a budget.
--
-- KEYS[1] ready marker, KEYS[2] granted hash (mechanic -> grants),
-- KEYS[3] spent hash (mechanic -> cents); then for claim i (0-based):
-- KEYS[4 + 2i] the mechanic's claims hash (event id -> claim record, JSON),
-- KEYS[5 + 2i] the customer's hash (see observe.lua).
-- ARGV, 9 per claim: mechanic, event, customer, cost cents, quota or '', budget cents or '',
-- cap or '', cap bucket, perks joined by ','.
-- Returns one outcome per claim, in order.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('NOTREADY the limit book is not initialised; run reconcile')
end
local clock = redis.call('TIME')
-- Server time, so that reconcile's grace period does not depend on workers' clocks.
local now_ms = string.format('%d', tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000))
local outcomes = {}
for i = 0, #ARGV / 9 - 1 do
  local a = i * 9
  local mechanic, event, customer = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local cost, quota, budget = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
  local cap, bucket, perks = ARGV[a + 7], ARGV[a + 8], ARGV[a + 9]
  local claims_key, customer_key = KEYS[4 + 2 * i], KEYS[5 + 2 * i]
  local cap_field = 'x|' .. mechanic .. '|' .. bucket
  local record = redis.call('HGET', claims_key, event)
  if record then
    -- The sender retried an event whose claim is still here: reuse it, and mark it as
    -- in use now so that reconcile does not release it as an orphan under the retry.
    local claim = cjson.decode(record)
    claim.t = now_ms
    redis.call('HSET', claims_key, event, cjson.encode(claim))
    outcomes[i + 1] = 'taken'
  elseif cap ~= '' and (tonumber(redis.call('HGET', customer_key, cap_field)) or 0) >= tonumber(cap) then
    outcomes[i + 1] = 'cap_reached'
  elseif quota ~= '' and (tonumber(redis.call('HGET', KEYS[2], mechanic)) or 0) >= tonumber(quota) then
    outcomes[i + 1] = 'quota_exhausted'
  elseif budget ~= ''
      and (tonumber(redis.call('HGET', KEYS[3], mechanic)) or 0) + tonumber(cost) > tonumber(budget) then
    outcomes[i + 1] = 'budget_exhausted'
  else
    redis.call('HINCRBY', KEYS[2], mechanic, 1)
    redis.call('HINCRBY', KEYS[3], mechanic, cost)
    if cap ~= '' then
      redis.call('HINCRBY', customer_key, cap_field, 1)
    end
    for perk in string.gmatch(perks, '[^,]+') do
      -- The first event to grant a perk holds it; release only drops perks it holds.
      redis.call('HSETNX', customer_key, 'k|' .. perk, event)
    end
    redis.call('HSET', claims_key, event, cjson.encode({
      c = customer, m = cost, b = bucket, k = perks, x = cap, t = now_ms,
    }))
    outcomes[i + 1] = 'taken'
  end
end
return outcomes
