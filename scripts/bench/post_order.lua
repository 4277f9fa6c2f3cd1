-- wrk: every request is a new, valid limit order, sent with the benchmark client's API key
-- (BENCH_API_KEY, which scripts/bench.sh registers through the runner's LOCAL_API_KEY).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("BENCH_API_KEY")
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
wrk.body = '{"type":"limit","side":"buy","instrument":"US0378331005","limit_price":"120.50","quantity":10}'
