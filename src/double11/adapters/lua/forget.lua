-- Undo the counts of observed events that were never committed, exactly as observe.lua
-- made them, and forget their observations (a retry then counts afresh, once).
--
-- An event is forgotten only while it is pending (so forgetting twice, or forgetting an
-- event reconcile found committed, changes nothing) and, when ARGV[1] is not '', only if
-- it was last observed at or before ARGV[1] (server ms): reconcile passes its cutoff, so
-- an event a retry has just observed again is left alone.
--
-- KEYS[1] the pending zset; for event i (0-based): KEYS[2 + 2i] its observation,
-- KEYS[3 + 2i] its customer's hash.
-- ARGV[1] cutoff ms or ''; then one per event: its id.
-- Returns the number of events forgotten.
local cutoff = ARGV[1]
local forgotten = 0
for i = 0, #ARGV - 2 do
  local event = ARGV[2 + i]
  local observed_key, customer_key = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  local score = redis.call('ZSCORE', KEYS[1], event)
  if score and (cutoff == '' or tonumber(score) <= tonumber(cutoff)) then
    local raw = redis.call('GET', observed_key)
    if raw then
      local undo = cjson.decode(raw).u
      local etype = undo[2]
      local fields = {'c|' .. etype}
      if undo[3] == '1' then
        fields[2] = 'p|' .. undo[4] .. '|' .. etype
      end
      for _, field in ipairs(fields) do
        -- A count back at zero goes, as if the event had never been counted.
        if redis.call('HINCRBY', customer_key, field, -1) <= 0 then
          redis.call('HDEL', customer_key, field)
        end
      end
      redis.call('DEL', observed_key)
    end
    redis.call('ZREM', KEYS[1], event)
    forgotten = forgotten + 1
  end
end
return forgotten
