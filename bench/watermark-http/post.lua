-- wrk script: POST the image in $RUBRA_IMAGE to the URL given to wrk (POST /watermark?…)
-- with the key in $RUBRA_KEY; prints one RESULT line for run.sh.
local f = assert(io.open(os.getenv("RUBRA_IMAGE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "image/jpeg"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("RUBRA_KEY")

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors=%d non2xx=%d seconds=%.2f p50_ms=%.1f p99_ms=%.1f\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
