-- wrk: every request is a new, valid limit order.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"type":"limit","side":"buy","instrument":"US0378331005","limit_price":"120.50","quantity":10}'
