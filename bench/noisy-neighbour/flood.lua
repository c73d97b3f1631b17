-- wrk script for the flood: POST the file in $RUBRA_BODY (Content-Type $RUBRA_TYPE) to the URL
-- with the key in $RUBRA_KEY as fast as the connections go; counts the answers by status.
local f = assert(io.open(os.getenv("RUBRA_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("RUBRA_TYPE")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("RUBRA_KEY")

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  s2xx, s429, s503, s4xx, s5xx, sother = 0, 0, 0, 0, 0, 0
end

function response(status, headers, body)
  if status >= 200 and status < 300 then s2xx = s2xx + 1
  elseif status == 429 then s429 = s429 + 1
  elseif status == 503 then s503 = s503 + 1
  elseif status >= 400 and status < 500 then s4xx = s4xx + 1
  elseif status >= 500 then s5xx = s5xx + 1
  else sother = sother + 1 end
end

function done(summary, latency, requests)
  local c = { s2xx = 0, s429 = 0, s503 = 0, s4xx = 0, s5xx = 0, sother = 0 }
  for _, t in ipairs(threads) do
    for k, _ in pairs(c) do c[k] = c[k] + (t:get(k) or 0) end
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d s2xx=%d s429=%d s503=%d s4xx=%d s5xx=%d sother=%d timeouts=%d conn_errors=%d " ..
    "seconds=%.2f p50_ms=%.1f p99_ms=%.1f max_ms=%.1f\n",
    summary.requests, c.s2xx, c.s429, c.s503, c.s4xx, c.s5xx, c.sother, e.timeout,
    e.connect + e.read + e.write, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
