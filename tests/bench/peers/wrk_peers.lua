-- wrk script of the peer benchmark (tests/bench/bench_peers.py), a copy of
-- tests/bench/wrk_post.lua that also takes
--   $WRK_BODY_FILE     the body, read from this file (a body in the
--                      environment breaks above ~128 KB); else $WRK_BODY;
--   $WRK_CONTENT_TYPE  the Content-Type (default application/json);
--   $WRK_HEADERS       more headers, one "Name: value" a line (Triton's
--                      binary tensor extension needs
--                      Inference-Header-Content-Length);
--   $WRK_SLO_US        a latency bound: the summary also counts the answers
--                      whose latency was at most this many microseconds.
-- Counts non-2xx statuses and Clipper default outputs ("default":true) as
-- wrk_post.lua does, and prints one line "WRKJSON {...}" with the totals and
-- latency percentiles (p99.9 too) in microseconds.
--
-- The share within the SLO comes from wrk's latency histogram (one-
-- microsecond buckets up to --timeout): latency:percentile(p) is monotonic
-- in p, so a bisection over p finds the largest share of answers whose
-- latency is at most $WRK_SLO_US, to within one answer. (Debian's wrk 4.1
-- does not let a script index the histogram itself.) wrk gives response()
-- no timing, so which answers were the fast ones is unknown: bench_peers.py
-- takes defaults and errors off the count within the SLO, a lower bound of
-- the good answers within it.
wrk.method = "POST"
local body_file = os.getenv("WRK_BODY_FILE")
if body_file and body_file ~= "" then
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

local slo_us = tonumber(os.getenv("WRK_SLO_US") or "0")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  defaults = 0
  non2xx = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  elseif string.find(body, '"default":true', 1, true) then
    defaults = defaults + 1
  end
end

function done(summary, latency, requests)
  local d, n = 0, 0
  for _, t in ipairs(threads) do
    d = d + t:get("defaults")
    n = n + t:get("non2xx")
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
    '"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,"defaults":%d,"non2xx":%d,' ..
    '"slo_us":%d,"share_within_slo":%.6f,"body_bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean, d, n, slo_us, share,
    #wrk.body, e.connect, e.read, e.write, e.status, e.timeout))
end
