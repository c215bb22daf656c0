-- wrk script of the soak (scripts/soak.sh): a mix of OFREP single and bulk evaluations, sync
-- fetches and bad requests, with a pause between requests on each connection (bounded rate).
-- Counts answers by status; `done` prints one line: SOAK_WRK {json}.
--
-- Environment: SOAK_KEY (evaluation key), SOAK_FLAGS (number of flags), SOAK_DELAY_MS.

local key = os.getenv("SOAK_KEY") or "soak-eval-key"
local nflags = tonumber(os.getenv("SOAK_FLAGS") or "200")
local pause = tonumber(os.getenv("SOAK_DELAY_MS") or "2")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  counts = {}
  n = 0
  math.randomseed(os.time() + #threads)
end

local function ctx(i)
  return string.format(
    '{"context":{"targetingKey":"user-%d","tenantId":"tenant-%d","env":"production","plan":"pro"}}',
    i % 5000, i % 7)
end

function request()
  n = n + 1
  local slot = n % 20
  local good = { ["Content-Type"] = "application/json", ["X-API-Key"] = key }
  if slot < 14 then
    local flag = string.format("flag-%04d", math.random(0, nflags - 1))
    return wrk.format("POST", "/ofrep/v1/evaluate/flags/" .. flag, good, ctx(n))
  elseif slot < 16 then
    return wrk.format("POST", "/ofrep/v1/evaluate/flags", good, ctx(n))
  elseif slot == 16 then
    return wrk.format("POST", "/ofrep/v1/evaluate/flags/flag-0001", good, '{"context": {"targetingKey": ')
  elseif slot == 17 then
    return wrk.format("POST", "/ofrep/v1/evaluate/flags/no-such-flag-" .. n, good, ctx(n))
  elseif slot == 18 then
    local bad = { ["Content-Type"] = "application/json", ["X-API-Key"] = "soak-wrong-key" }
    return wrk.format("POST", "/ofrep/v1/evaluate/flags/flag-0002", bad, ctx(n))
  else
    return wrk.format("GET", "/v1/flags", { ["Authorization"] = "Bearer " .. key }, nil)
  end
end

function delay()
  return pause
end

function response(status, headers, body)
  local k = tostring(status)
  counts[k] = (counts[k] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for k, v in pairs(c) do
      total[k] = (total[k] or 0) + v
    end
  end
  local parts = {}
  for k, v in pairs(total) do
    table.insert(parts, string.format('"%s":%d', k, v))
  end
  local e = summary.errors
  io.write(string.format(
    'SOAK_WRK {"requests":%d,"duration_us":%d,"statuses":{%s},"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f}\n',
    summary.requests, summary.duration, table.concat(parts, ","), e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
