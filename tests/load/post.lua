-- wrk script: POST /click2dial/calls with a unique contact_ref per request, so every
-- request is a new call (idempotency claim in Redis, Originate to the PBX simulator).
-- Agent 1404 makes the simulator answer like Asterisk for an unreachable endpoint (one
-- OriginateResponse, then a `failed` notification): the create-call path in full, without
-- the simulator replaying dozens of events per call on the same two cores. WRK_AGENT (env)
-- picks another agent: capacity.sh uses 1001, a whole answered call (a_success, 94 events).
-- WRK_DELAY_MS (env) spaces each connection's requests, for a rate below the peak.
local counter = 0
local thread_id = 0
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "0")
local agent = os.getenv("WRK_AGENT") or "1404"
-- WRK_PREFIX (env) starts every contact_ref: two wrk runs at once need different ones.
local prefix = os.getenv("WRK_PREFIX") or "load"

function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. (os.getenv("WRK_API_KEY") or "")
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"agent":"%s","callee":"0820001234","outbound_id":"27820001234","contact_ref":"%s-%d-%d-%d"}',
    agent, prefix, id, counter, os.time())
  return wrk.format(nil, "/click2dial/calls", nil, body)
end

function delay()
  return delay_ms
end

function done(summary, latency, requests)
  io.write(string.format("latency_ms p50=%.2f p99=%.2f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
