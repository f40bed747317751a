-- wrk script for benchmarks/serving.py: POST the JSON body in the file named by $WRK_BODY to every
-- request, and print one machine-readable line (prefix "WRKJSON ") with the counts and latency
-- percentiles (microseconds) when the run ends. No per-response hook: it would slow wrk down.

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local path = os.getenv("WRK_BODY")
assert(path, "set WRK_BODY to the file holding the request body")
local fh = assert(io.open(path, "rb"))
wrk.body = fh:read("*a")
fh:close()

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, "non2xx": %d, "connect": %d, ' ..
    '"read": %d, "write": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write,
    e.timeout, latency:percentile(50.0), latency:percentile(90.0), latency:percentile(99.0),
    latency.max, latency.mean))
end
