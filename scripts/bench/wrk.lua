-- wrk script for scripts/bench-load.sh. Environment:
--   BENCH_MODE  single | bulk | health
--   BENCH_FLAG  flag key for single evaluations (default flag-000042)
--   BENCH_KEYS  how many targeting keys to rotate through (default 10000)
-- Every request is prebuilt in init(), so wrk's Lua costs one table index per request.
-- done() prints one line: WRK_RESULT rps=… p50_us=… p99_us=… requests=… non2xx=… socket_errors=…

local mode = os.getenv("BENCH_MODE") or "single"
local flag = os.getenv("BENCH_FLAG") or "flag-000042"
local nkeys = tonumber(os.getenv("BENCH_KEYS") or "10000")

local reqs = {}
local n = 0
local i = 0
local threads = 0

-- Runs in the main Lua state once per thread, before the thread's init().
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  local headers = { ["Content-Type"] = "application/json" }
  if mode == "health" then
    reqs[1] = wrk.format("GET", "/health")
    n = 1
    return
  end
  local path = "/ofrep/v1/evaluate/flags/" .. flag
  if mode == "bulk" then
    path = "/ofrep/v1/evaluate/flags"
  end
  for k = 0, nkeys - 1 do
    local body = string.format(
      '{"context":{"targetingKey":"user-%d","tenantId":"tenant-%d","env":"production","plan":"pro"}}',
      k, k % 50)
    reqs[k + 1] = wrk.format("POST", path, headers, body)
  end
  n = nkeys
  -- Threads start at different keys so they do not send the same sequence.
  i = ((tid or 0) * 7919) % n
end

function request()
  i = i + 1
  if i > n then i = 1 end
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT rps=%.1f p50_us=%d p99_us=%d max_us=%d requests=%d non2xx=%d socket_errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency.max,
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout))
end
