-- Count one event into its customer's state and return that state, once per event id.
--
-- KEYS[1]  the ready marker: absent after Redis lost its data, until reconcile rebuilt it
-- KEYS[2]  this event's remembered observation (a string with a TTL)
-- KEYS[3]  the customer's hash: c|TYPE campaign counts, p|PHASE|TYPE phase counts,
--          k|PERK -> event id that granted it, x|MECHANIC|BUCKET per-customer cap counters
-- KEYS[4]  the pending zset: event id -> when it was last observed (server ms), for
--          events not known to be committed; forget.lua undoes the count of one that
--          never is, reconcile drops the ones that are
-- ARGV[1]  event type; ARGV[2] "1" when the event falls in a phase; ARGV[3] the phase;
-- ARGV[4]  seconds to remember the observation; ARGV[5] the event id; ARGV[6] the customer
--
-- Returns JSON {"p": phase counts, "c": campaign counts, "k": {perk: event id},
-- "u": [customer, type, in phase "1"/"0", phase]}; "u" is what forget.lua must undo.
-- Counting against counters that were lost would hand out wrong state, so refuse instead.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('NOTREADY the limit book is not initialised; run reconcile')
end
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local seen = redis.call('GET', KEYS[2])
if seen then
  -- A retry, or a concurrent duplicate, must see the state the first attempt saw; while
  -- it is in flight the observation is not an orphan, so it is not forgotten yet.
  redis.call('ZADD', KEYS[4], 'XX', now_ms, ARGV[5])
  return seen
end
local etype = ARGV[1]
local in_phase = ARGV[2] == '1'
local phase_prefix = 'p|' .. ARGV[3] .. '|'
redis.call('HINCRBY', KEYS[3], 'c|' .. etype, 1)
if in_phase then
  redis.call('HINCRBY', KEYS[3], phase_prefix .. etype, 1)
end
local phase_counts, campaign_counts, perks = {}, {}, {}
local flat = redis.call('HGETALL', KEYS[3])
for i = 1, #flat, 2 do
  local field, value = flat[i], flat[i + 1]
  local kind = string.sub(field, 1, 2)
  if kind == 'c|' then
    campaign_counts[string.sub(field, 3)] = tonumber(value)
  elseif kind == 'k|' then
    perks[string.sub(field, 3)] = value
  elseif in_phase and kind == 'p|' and string.sub(field, 1, #phase_prefix) == phase_prefix then
    phase_counts[string.sub(field, #phase_prefix + 1)] = tonumber(value)
  end
end
local undo = {ARGV[6], etype, ARGV[2], ARGV[3]}
local state = cjson.encode({p = phase_counts, c = campaign_counts, k = perks, u = undo})
redis.call('SET', KEYS[2], state, 'EX', ARGV[4])
redis.call('ZADD', KEYS[4], now_ms, ARGV[5])
return state
