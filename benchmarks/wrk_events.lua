-- wrk script: every request is a POST /v1/events with a unique event id.
--
--   wrk -t1 -c64 -d10s -s benchmarks/wrk_events.lua http://127.0.0.1:8000 -- \
--       RUN_TAG N_CUSTOMERS API_KEY AT [SEED]
--
-- RUN_TAG     prefix of every event id; use a new one per run so no event is a replay
-- N_CUSTOMERS customer ids are drawn from c0000000 .. c{N-1:07d}, as
--             benchmarks/workload.py customers(N) makes them (create them first)
-- API_KEY     sent as "Authorization: Bearer API_KEY" (a producer or admin key)
-- AT          the events' instant, e.g. 2026-11-03T19:59:00+08:00: inside the warm-up
--             phase, just before the server's --now (workload.WARMUP_NOW)
-- SEED        optional; each thread seeds its generator with SEED + thread number
--
-- The mix follows workload.event_bodies: 40% reservation, 20% risk_assessment
-- (level C3), 30% checkin, 10% deposit of 20000.00, 60000.00 or 150000.00.
-- Event ids are RUN_TAG-THREAD-COUNTER, unique across threads and requests.
-- done() prints one line "WRK_JSON {...}" with the totals, for bench_http.py.

local threads = {}
local next_thread = 1

function setup(thread)
   thread:set("thread_no", next_thread)
   next_thread = next_thread + 1
   table.insert(threads, thread)
end

local tag, n_customers, at, headers
local counter = 0
local deposits = { "20000.00", "60000.00", "150000.00" }

function init(args)
   tag = args[1] or "wrk"
   n_customers = tonumber(args[2] or "1000")
   local key = args[3] or ""
   at = args[4] or "2026-11-03T19:59:00+08:00"
   local seed = tonumber(args[5] or "11")
   math.randomseed(seed + thread_no)
   headers = {
      ["Authorization"] = "Bearer " .. key,
      ["Content-Type"] = "application/json",
   }
   tag = tag .. "-" .. thread_no .. "-"
end

function request()
   counter = counter + 1
   local customer = string.format("c%07d", math.random(0, n_customers - 1))
   local roll = math.random()
   local kind, data
   if roll < 0.4 then
      kind, data = "reservation", "{}"
   elseif roll < 0.6 then
      kind, data = "risk_assessment", '{"level":"C3"}'
   elseif roll < 0.9 then
      kind, data = "checkin", "{}"
   else
      kind, data = "deposit", '{"amount":"' .. deposits[math.random(1, 3)] .. '"}'
   end
   local body = '{"id":"' .. tag .. counter .. '","type":"' .. kind
      .. '","customer_id":"' .. customer .. '","at":"' .. at .. '","data":' .. data .. '}'
   return wrk.format("POST", "/v1/events", headers, body)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end
