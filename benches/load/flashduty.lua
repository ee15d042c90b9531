-- wrk request generator: one Flashduty incident webhook (~720 bytes) per request, with a
-- unique event_id and an event_time that grows with every request. Incident ids cycle
-- over BENCH_ENTITIES entities of this run, so each entity's events arrive in increasing
-- time order and the gateway's order check passes (none is stale), while dedup sees only
-- new ids. A warm-up run and the measured run use different BENCH_RUN values.
--
-- Environment: BENCH_PATH (default /hooks/flashduty), BENCH_TOKEN (bearer token),
-- BENCH_RUN (makes the ids of one run distinct from every other run's), BENCH_ENTITIES.
local path = os.getenv("BENCH_PATH") or "/hooks/flashduty"
local token = os.getenv("BENCH_TOKEN") or "bench-token"
local run = os.getenv("BENCH_RUN") or tostring(os.time())
local entities = tonumber(os.getenv("BENCH_ENTITIES") or "4096")
local t0 = os.time() * 1000
local n = 0

local headers = {
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Bearer " .. token,
}

local head = '{"event_id":"'
local fmt = '","event_time":%d,"event_type":"i_assign","incident":{"account_id":74058170041504,'
  .. '"alert_cnt":3,"channel_id":1840312623504,"channel_name":"Payments API",'
  .. '"created_at":1717416301,"description":"p99 latency above 800ms for 5 minutes",'
  .. '"detail_url":"https://console.flashcat.cloud/incident/detail/%s","group_method":"p",'
  .. '"incident_id":"%s","incident_severity":"Critical","incident_status":"Critical",'
  .. '"labels":{"check":"latency_p99","env":"prod","region":"eu-west-1","resource":"payments-api",'
  .. '"team":"payments"},"progress":"Triggered","start_time":1717416001,'
  .. '"title":"[P1] payments-api p99 latency > 800ms","updated_at":1717416312},'
  .. '"person":{"email":"lead@acme.example","person_id":1552048792777,"person_name":"Team Lead"}}'

request = function()
  n = n + 1
  local entity = run .. string.format("-%06d", n % entities)
  local body = head .. run .. string.format("-%012d", n)
    .. string.format(fmt, t0 + n, entity, entity)
  return wrk.format("POST", path, headers, body)
end
