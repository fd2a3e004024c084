-- wrk script of the benchmarks (tests/bench/bench_suite.py, bench_peers.py).
-- POSTs the JSON body in $WRK_BODY, or the contents of the file
-- $WRK_BODY_FILE (a body too large for the environment: above ~128 KB);
-- $WRK_CONTENT_TYPE sets the Content-Type (default application/json) and
-- $WRK_HEADERS adds headers, one "Name: value" a line (Triton's binary
-- tensor extension needs Inference-Header-Content-Length); with
-- $WRK_DELAY_MS > 0 each connection waits that long between requests (paced
-- load); counts answers that are Clipper default outputs ("default":true)
-- and non-2xx statuses, unless $WRK_COUNT is "0": then no response() hook
-- is defined and wrk does not hand each response to Lua (cheaper for wrk:
-- for floors whose replies need no checking); prints one line
-- "WRKJSON {...}" with the totals and latency percentiles in microseconds.
--
-- $WRK_SLO_US > 0: the summary also gives the share of answers whose
-- latency was at most that, from wrk's latency histogram (one-microsecond
-- buckets up to --timeout): latency:percentile(p) is monotonic in p, so a
-- bisection over p finds it to within one answer. (Debian's wrk 4.1 does
-- not let a script index the histogram itself.) wrk gives response() no
-- timing, so which answers were the fast ones is unknown: bench_peers.py
-- takes defaults and errors off the count within the SLO, a lower bound of
-- the good answers within it.
wrk.method = "POST"
local body_file = os.getenv("WRK_BODY_FILE") or ""
if body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
else
  wrk.body = os.getenv("WRK_BODY") or '{"input":[1.0]}'
end
wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE") or "application/json"
for line in string.gmatch(os.getenv("WRK_HEADERS") or "", "[^\n]+") do
  local name, value = string.match(line, "^%s*([^:]+):%s*(.-)%s*$")
  if name then
    wrk.headers[name] = value
  end
end

local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "0")
local counted = os.getenv("WRK_COUNT") ~= "0"
local slo_us = tonumber(os.getenv("WRK_SLO_US") or "0")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  defaults = 0
  non2xx = 0
end

if counted then
  function response(status, headers, body)
    if status < 200 or status > 299 then
      non2xx = non2xx + 1
    elseif string.find(body, '"default":true', 1, true) then
      defaults = defaults + 1
    end
  end
end

if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end

function done(summary, latency, requests)
  local d, n = 0, 0
  for _, t in ipairs(threads) do
    d = d + t:get("defaults")
    n = n + t:get("non2xx")
  end
  local ds, ns = string.format("%d", d), string.format("%d", n)
  if not counted then
    ds, ns = "null", "null"
  end
  local share = 0
  if slo_us > 0 then
    if latency.max <= slo_us then
      share = 1
    elseif latency.min <= slo_us then
      local lo, hi = 0, 100
      for _ = 1, 40 do
        local mid = (lo + hi) / 2
        if latency:percentile(mid) <= slo_us then lo = mid else hi = mid end
      end
      share = lo / 100
    end
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"rps":%.1f,"p50_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,"defaults":%s,"non2xx":%s,' ..
    '"counted":%s,"delay_ms":%d,"bytes":%d,"slo_us":%d,"share_within_slo":%.6f,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean, ds, ns, tostring(counted), delay_ms,
    #wrk.body, slo_us, share, e.connect, e.read, e.write, e.status, e.timeout))
end
